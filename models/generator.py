"""The DCGAN generator for 28 x 28 MNIST digits."""

from torch import Tensor, nn

from models.init import init_dcgan_weights


class Generator(nn.Module):
    """Map noise ``(N, nz, 1, 1)`` to images ``(N, 1, 28, 28)`` in [-1, 1].

    Four transposed convolutions, each hidden one followed by BatchNorm without
    scale and shift (``affine=False``) and ReLU, the last one by Tanh (DCGAN paper,
    section 3: ReLU in the generator, Tanh at its output).

    Args:
        nz: length of the noise vector.
        ngf: base width; the hidden layers have ngf*8, ngf*4 and ngf*2 channels.
    """

    def __init__(self, nz: int = 100, ngf: int = 64) -> None:
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            # nz x 1 x 1 -> (ngf*8) x 4 x 4
            nn.ConvTranspose2d(nz, ngf * 8, kernel_size=4, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(ngf * 8, affine=False),
            nn.ReLU(inplace=True),
            # -> (ngf*4) x 8 x 8; k4/s2/p1 (a k3 layer here gave 7 x 7 and checkerboard artefacts)
            nn.ConvTranspose2d(ngf * 8, ngf * 4, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(ngf * 4, affine=False),
            nn.ReLU(inplace=True),
            # -> (ngf*2) x 14 x 14; padding 2 because (8 - 1) * 2 - 2 * 2 + 4 = 14
            nn.ConvTranspose2d(ngf * 4, ngf * 2, kernel_size=4, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(ngf * 2, affine=False),
            nn.ReLU(inplace=True),
            # -> 1 x 28 x 28, in [-1, 1] like the normalised MNIST images
            nn.ConvTranspose2d(ngf * 2, 1, kernel_size=4, stride=2, padding=1, bias=False),
            nn.Tanh(),
        )
        self.apply(init_dcgan_weights)

    def forward(self, z: Tensor) -> Tensor:
        """Draw images ``(N, 1, 28, 28)`` from noise ``z`` of shape ``(N, nz, 1, 1)``."""
        return self.main(z)
