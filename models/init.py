"""DCGAN weight initialisation."""

from torch import nn


def init_dcgan_weights(module: nn.Module) -> None:
    """Draw the weights of every (transposed) convolution from N(0, 0.02), in place.

    DCGAN paper, section 4: "All weights were initialized from a zero-centered Normal
    distribution with standard deviation 0.02". BatchNorm layers here have
    ``affine=False`` and so no weights to initialise. Use as ``net.apply(init_dcgan_weights)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
