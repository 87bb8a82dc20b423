"""The two DCGAN networks. Importing this package builds nothing and reads no data."""

from models.discriminator import Discriminator
from models.generator import Generator
from models.init import init_dcgan_weights

__all__ = ["Discriminator", "Generator", "init_dcgan_weights"]
