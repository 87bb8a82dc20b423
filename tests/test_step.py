"""One GAN step: what it changes, what it returns, and that the fast paths compute the same."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.optim import Adam

from models import Discriminator, Generator
from utils.training import (
    STAT_NAMES,
    FastStep,
    amp_supported,
    gan_step,
    resolve_device,
    stats_to_dict,
)


def make_gan(seed: int = 0) -> tuple:
    torch.manual_seed(seed)
    netG, netD = Generator(), Discriminator()
    return netG, netD, Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999)), Adam(
        netD.parameters(), 2e-4, betas=(0.5, 0.999))


def step(netG, netD, opt_G, opt_D, real) -> dict[str, float]:  # noqa: ANN001
    return stats_to_dict(gan_step(netG, netD, opt_G, opt_D, real, nz=100))


def test_step_updates_both_networks_and_returns_finite_numbers() -> None:
    netG, netD, opt_G, opt_D = make_gan()
    before_G = [p.detach().clone() for p in netG.parameters()]
    before_D = [p.detach().clone() for p in netD.parameters()]
    stats = step(netG, netD, opt_G, opt_D, torch.rand(8, 1, 28, 28) * 2 - 1)
    assert tuple(stats) == STAT_NAMES
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    assert stats["D_loss"] > 0 and stats["G_loss"] > 0
    for name in ("D(x)", "D(G(z))", "D(G(z))_post"):
        assert 0 < stats[name] < 1
    assert all(not torch.equal(a, b) for a, b in zip(before_G, netG.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before_D, netD.parameters(), strict=True))
    assert all(p.requires_grad for p in netD.parameters())  # switched back on after G's step


def test_discriminator_learns_to_separate_a_fixed_real_batch() -> None:
    netG, netD, opt_G, opt_D = make_gan()
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    first = step(netG, netD, opt_G, opt_D, real)
    for _ in range(10):
        last = step(netG, netD, opt_G, opt_D, real)
    assert last["D(x)"] > first["D(x)"]
    assert last["D_loss"] < first["D_loss"]


def textbook_step(netG, netD, opt_G, opt_D, real) -> list[float]:  # noqa: ANN001
    """The PyTorch DCGAN tutorial's step, written out: the reference for the math."""
    criterion = nn.BCELoss()
    noise = torch.randn(real.size(0), 100, 1, 1)
    netD.zero_grad()
    label = torch.full((real.size(0),), 1.0)
    output = netD(real).view(-1)
    err_real = criterion(output, label)
    err_real.backward()
    fake = netG(noise)
    label.fill_(0.0)
    output_fake = netD(fake.detach()).view(-1)
    err_fake = criterion(output_fake, label)
    err_fake.backward()
    opt_D.step()
    netG.zero_grad()
    label.fill_(1.0)
    output_post = netD(fake).view(-1)
    err_G = criterion(output_post, label)
    err_G.backward()
    opt_G.step()
    return [(err_real + err_fake).item(), err_G.item(), output.mean().item(),
            output_fake.mean().item(), output_post.mean().item()]


BATCHES = torch.rand(5, 32, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_gan_step_is_the_textbook_step_bit_for_bit() -> None:
    reference, ours = make_gan(), make_gan()
    for real in BATCHES:
        torch.manual_seed(42)
        expected = textbook_step(*reference, real)
        torch.manual_seed(42)
        assert gan_step(*ours, real, nz=100).tolist() == expected
    for net_ref, net_ours in zip(reference[:2], ours[:2], strict=True):
        for a, b in zip(net_ref.state_dict().values(), net_ours.state_dict().values(),
                        strict=True):
            assert torch.equal(a, b)


def test_fast_step_matches_the_textbook_step_to_rounding() -> None:
    # Channels-last convolutions round differently in the last float digits; Adam's first
    # steps, normalising tiny gradients, magnify that: 2e-6 after one step, 1e-3 after five.
    reference, ours = make_gan(), make_gan()
    fast = FastStep(*ours, nz=100, device=torch.device("cpu"))
    tolerance = [1e-5, 1e-5, 1e-3, 5e-3, 5e-3]
    for real, tol in zip(BATCHES, tolerance, strict=True):
        torch.manual_seed(42)
        expected = textbook_step(*reference, real)
        torch.manual_seed(42)
        assert fast(real).tolist() == pytest.approx(expected, rel=tol, abs=tol)


@pytest.mark.skipif(not amp_supported(torch.device("cpu")), reason="no native bfloat16 here")
def test_amp_keeps_float32_weights_statistics_and_losses() -> None:
    netG, netD, opt_G, opt_D = make_gan()
    twin = copy.deepcopy((netG, netD))
    real = torch.rand(32, 1, 28, 28) * 2 - 1
    torch.manual_seed(0)
    amp = FastStep(netG, netD, opt_G, opt_D, nz=100, device=torch.device("cpu"), amp=True)(real)
    torch.manual_seed(0)
    plain = FastStep(*twin, *make_gan()[2:], nz=100, device=torch.device("cpu"))
    plain.optimizers = (Adam(twin[0].parameters(), 2e-4, betas=(0.5, 0.999)),
                        Adam(twin[1].parameters(), 2e-4, betas=(0.5, 0.999)))
    fp32 = plain(real)
    assert amp.dtype == torch.float32
    assert amp.tolist() == pytest.approx(fp32.tolist(), rel=0.05)  # bfloat16: ~3 digits
    for tensor in [*netG.state_dict().values(), *netD.state_dict().values()]:
        assert tensor.dtype in (torch.float32, torch.int64)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
