"""One GAN step: what it changes and what it returns."""

import math

import torch
from torch.optim import Adam

from models import Discriminator, Generator
from utils.training import STAT_NAMES, gan_step, resolve_device


def make_gan(nz: int = 100) -> tuple:
    torch.manual_seed(0)
    netG, netD = Generator(nz=nz, ngf=16), Discriminator(ndf=16)
    return netG, netD, Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999)), Adam(
        netD.parameters(), 2e-4, betas=(0.5, 0.999))


def test_step_updates_both_networks_and_returns_finite_numbers() -> None:
    netG, netD, opt_G, opt_D = make_gan()
    before_G = [p.detach().clone() for p in netG.parameters()]
    before_D = [p.detach().clone() for p in netD.parameters()]
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    stats = gan_step(netG, netD, opt_G, opt_D, real, nz=100)
    assert tuple(stats) == STAT_NAMES
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    assert stats["D_loss"] > 0 and stats["G_loss"] > 0
    for name in ("D(x)", "D(G(z))", "D(G(z))_post"):
        assert 0 < stats[name] < 1
    assert all(not torch.equal(a, b) for a, b in zip(before_G, netG.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before_D, netD.parameters(), strict=True))


def test_step_losses_are_the_bce_of_the_reported_scores_at_the_start() -> None:
    # With D's scores near 0.5 at initialisation, both losses are about 2 log 2 and log 2.
    netG, netD, opt_G, opt_D = make_gan()
    stats = gan_step(netG, netD, opt_G, opt_D, torch.rand(16, 1, 28, 28) * 2 - 1, nz=100)
    assert abs(stats["D(x)"] - 0.5) < 0.2 and abs(stats["D(G(z))"] - 0.5) < 0.2
    # D_loss is -log D(x) - log(1 - D(G(z))) averaged per image: Jensen bounds it below
    assert stats["D_loss"] >= -math.log(stats["D(x)"]) - math.log(1 - stats["D(G(z))"]) - 1e-5
    assert stats["G_loss"] >= -math.log(stats["D(G(z))_post"]) - 1e-5


def test_discriminator_learns_to_separate_a_fixed_real_batch() -> None:
    netG, netD, opt_G, opt_D = make_gan()
    real = torch.rand(16, 1, 28, 28) * 2 - 1
    first = gan_step(netG, netD, opt_G, opt_D, real, nz=100)
    for _ in range(10):
        last = gan_step(netG, netD, opt_G, opt_D, real, nz=100)
    assert last["D(x)"] > first["D(x)"]
    assert last["D_loss"] < first["D_loss"]


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
