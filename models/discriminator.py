"""The DCGAN discriminator for 28 x 28 MNIST digits."""

from torch import Tensor, nn

from models.init import init_dcgan_weights


class Discriminator(nn.Module):
    """Map images ``(N, 1, 28, 28)`` to the probability ``(N,)`` that each is real.

    Four strided convolutions with LeakyReLU(0.2) (DCGAN paper, section 3), BatchNorm
    without scale and shift (``affine=False``) on the middle two (none on the input
    layer, as the paper advises), and a Sigmoid at the output.

    Args:
        ndf: base width; the hidden layers have ndf, ndf*2 and ndf*4 channels.
    """

    def __init__(self, ndf: int = 64) -> None:
        super().__init__()
        self.main = nn.Sequential(
            # 1 x 28 x 28 -> ndf x 14 x 14
            nn.Conv2d(1, ndf, kernel_size=4, stride=2, padding=1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # -> (ndf*2) x 7 x 7
            nn.Conv2d(ndf, ndf * 2, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ndf * 2, affine=False),
            nn.LeakyReLU(0.2, inplace=True),
            # -> (ndf*4) x 4 x 4; kernel 3 takes 7 x 7 to 4 x 4
            nn.Conv2d(ndf * 2, ndf * 4, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ndf * 4, affine=False),
            nn.LeakyReLU(0.2, inplace=True),
            # -> 1 x 1 x 1, a probability
            nn.Conv2d(ndf * 4, 1, kernel_size=4, stride=1, padding=0, bias=False),
            nn.Sigmoid(),
        )
        self.apply(init_dcgan_weights)

    def forward(self, x: Tensor) -> Tensor:
        """Score images ``x`` of shape ``(N, 1, 28, 28)``; returns float32 ``(N,)`` in (0, 1)."""
        *layers, sigmoid = self.main
        for layer in layers:
            x = layer(x)
        # The Sigmoid runs in float32 even under bfloat16 autocast (--amp): in bfloat16 every
        # logit above about 6.2 rounds to exactly 1, where BCE saturates at 100 and the
        # gradient is 0, so D would learn nothing from the fakes it is surest of.
        return sigmoid(x.float()).view(-1)
