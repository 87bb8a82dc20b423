"""The two DCGAN networks and the judge. Importing this package builds nothing, reads no data."""

from models.discriminator import Discriminator
from models.generator import Generator
from models.init import init_dcgan_weights
from models.judge import Judge

__all__ = ["Discriminator", "Generator", "Judge", "init_dcgan_weights"]
