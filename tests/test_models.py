"""The two networks against the DCGAN paper (sections 3 and 4), layer by layer."""

import pytest
import torch
from torch import nn

from models import Discriminator, Generator, Judge, init_dcgan_weights

# (type, in, out, kernel, stride, padding, then: BatchNorm?, activation) docs/training.md
GENERATOR_SPEC = [
    (nn.ConvTranspose2d, 100, 512, 4, 1, 0, True, nn.ReLU),
    (nn.ConvTranspose2d, 512, 256, 4, 2, 1, True, nn.ReLU),
    (nn.ConvTranspose2d, 256, 128, 4, 2, 2, True, nn.ReLU),
    (nn.ConvTranspose2d, 128, 1, 4, 2, 1, False, nn.Tanh),
]
DISCRIMINATOR_SPEC = [
    (nn.Conv2d, 1, 64, 4, 2, 1, False, nn.LeakyReLU),
    (nn.Conv2d, 64, 128, 4, 2, 1, True, nn.LeakyReLU),
    (nn.Conv2d, 128, 256, 3, 2, 1, True, nn.LeakyReLU),
    (nn.Conv2d, 256, 1, 4, 1, 0, False, nn.Sigmoid),
]
GENERATOR_SHAPES = [(512, 4, 4), (256, 8, 8), (128, 14, 14), (1, 28, 28)]
DISCRIMINATOR_SHAPES = [(64, 14, 14), (128, 7, 7), (256, 4, 4), (1, 1, 1)]


def blocks(net: nn.Module) -> list[list[nn.Module]]:
    """Split ``net.main`` into blocks, each starting at a convolution."""
    result: list[list[nn.Module]] = []
    for layer in net.main:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            result.append([])
        result[-1].append(layer)
    return result


@pytest.mark.parametrize(("net", "spec"), [(Generator(), GENERATOR_SPEC),
                                           (Discriminator(), DISCRIMINATOR_SPEC)])
def test_layers_match_spec(net, spec):
    found = blocks(net)
    assert len(found) == len(spec)
    for block, (kind, c_in, c_out, k, s, p, has_bn, act) in zip(found, spec, strict=True):
        conv = block[0]
        assert type(conv) is kind and (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((k, k), (s, s), (p, p))
        assert conv.bias is None
        norms = [m for m in block if isinstance(m, nn.BatchNorm2d)]
        assert len(norms) == int(has_bn)
        for norm in norms:
            assert norm.affine is False and norm.num_features == c_out
        assert type(block[-1]) is act and len(block) == 2 + int(has_bn)
        if act is nn.LeakyReLU:
            assert block[-1].negative_slope == 0.2


def intermediate_shapes(net: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape (without the batch) of the activation ending each block."""
    shapes: list[tuple[int, ...]] = []
    for block in blocks(net):
        block[-1].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    net(x)
    return shapes


def test_shapes_range_and_parameter_counts_of_the_three_networks():
    netG, netD = Generator(), Discriminator()
    z = torch.randn(5, 100, 1, 1)
    assert intermediate_shapes(netG, z) == GENERATOR_SHAPES
    images = netG(z)
    assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert intermediate_shapes(netD, images) == DISCRIMINATOR_SHAPES
    scores = netD(images)
    assert scores.shape == (5,) and ((scores > 0) & (scores < 1)).all()
    assert sum(p.numel() for p in netG.parameters()) == 3_442_688
    assert sum(p.numel() for p in netD.parameters()) == 431_104
    small = Discriminator(ndf=8)(Generator(nz=16, ngf=8)(torch.randn(3, 16, 1, 1)))
    assert small.shape == (3,)  # other widths: 28 x 28 images still
    judge = Judge()
    assert judge.features(images).shape == (5, Judge.num_features)
    assert judge(images).shape == (5, 10)
    assert sum(p.numel() for p in judge.parameters()) == 454_922  # as README.md says


@pytest.mark.parametrize("net", [Generator(), Discriminator()])
def test_init_is_normal_0_002_for_convolutions_only(net):
    torch.manual_seed(0)
    net.apply(init_dcgan_weights)
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    linear = nn.Linear(100, 100)
    before = linear.weight.detach().clone()
    init_dcgan_weights(linear)
    assert torch.equal(linear.weight, before)
