"""One GAN step: what it changes, what it returns, and that the fast paths compute the same."""

import contextlib
import copy

import pytest
import torch
from torch import nn
from torch.optim import Adam

from models import Discriminator, Generator, Judge
from utils.averaging import GeneratorAverage
from utils.device import resolve_device
from utils.errors import ArgumentError
from utils.metrics import generate_images
from utils.step import FAKE, STAT_NAMES, bce, gan_step
from utils.visualize import (
    digit_endpoints,
    generate_fixed_noise_grid,
    sample_digit,
    save_interpolation_grid,
)


def make_gan(seed: int = 0) -> tuple:
    torch.manual_seed(seed)
    netG, netD = Generator(), Discriminator()
    return netG, netD, Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999)), Adam(
        netD.parameters(), 2e-4, betas=(0.5, 0.999))


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


@pytest.mark.parametrize(("layout", "tolerances"), [
    (torch.contiguous_format, [0] * 5),  # bit for bit
    # as train.py builds the networks for the CPU: channels-last convolutions round
    # differently, which Adam's first steps (each weight moved by +-lr) magnify, by as much as
    # 1e-3 after one step and 5e-3 after five on some CPUs
    (torch.channels_last, [1e-3, 2e-3, 1e-2, 1e-2, 1e-2]),
])
def test_gan_step_is_the_textbook_step(layout, tolerances):
    # over 5 batches: a wrong label, loss or update, or D's gradients left off, is off by more
    reference, ours = make_gan(), make_gan()
    for net in ours[:2]:
        net.to(memory_format=layout)
    for real, tol in zip(BATCHES, tolerances, strict=True):
        torch.manual_seed(42)
        expected = textbook_step(*reference, real)
        torch.manual_seed(42)
        stats = gan_step(*ours, real.to(memory_format=layout), nz=100)
        assert stats.tolist() == pytest.approx(expected, rel=tol, abs=tol)
    for a, b in zip([*reference[0].state_dict().values(), *reference[1].state_dict().values()],
                    [*ours[0].state_dict().values(), *ours[1].state_dict().values()], strict=True):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_amp_step_matches_float32_on_a_trained_discriminator():
    netG, netD, opt_G, opt_D = make_gan()
    for real in BATCHES[:3]:  # a few float32 steps: D's logits grow away from 0
        gan_step(netG, netD, opt_G, opt_D, real, nz=100)
    twin = copy.deepcopy((netG, netD, opt_G, opt_D))  # the optimisers follow their copies
    torch.manual_seed(0)
    amp = gan_step(netG, netD, opt_G, opt_D, BATCHES[3], nz=100,  # as --amp does, on the CPU
                   autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)  # the same noise
    fp32 = gan_step(*twin, BATCHES[3], nz=100)
    assert amp.dtype == torch.float32
    assert amp.tolist() == pytest.approx(fp32.tolist(), rel=0.02)  # bfloat16: ~3 digits
    for tensor in [*netG.state_dict().values(), *netD.state_dict().values()]:
        assert tensor.dtype in (torch.float32, torch.int64)


def test_large_logits_under_amp_keep_the_float32_loss_and_a_gradient():
    torch.manual_seed(3)  # the counts below depend on the initial weights: fixed ones
    netD = Discriminator().eval()  # running BatchNorm statistics: logits scale with weights
    fakes = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():  # logits of about 8 in magnitude: D sure, float32 not saturated
        netD.main[-2].weight.mul_(8 / netD.main[:-1](fakes).abs().mean())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = netD(fakes)
        logits = netD.main[:-1](fakes).view(-1)
    assert scores.dtype == torch.float32 and logits.abs().mean() > 6
    torch.testing.assert_close(scores, torch.sigmoid(logits.float()), rtol=0, atol=0)
    # What a bfloat16 Sigmoid did: far more scores exactly 1 (from a logit of ~6.2 on, not
    # ~17 as in float32), where BCE saturates and the gradient is 0.
    saturated_bf16, saturated = (torch.sigmoid(logits) == 1).sum(), (scores == 1).sum()
    assert saturated_bf16 >= 3 * saturated + 10
    loss = bce(scores, FAKE)
    loss.backward()
    expected = bce(torch.sigmoid(logits.detach().float()), FAKE)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-3)
    assert netD.main[-2].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("cuda", "mps", "auto"), [(True, True, "cuda"), (False, True, "mps"),
                                                   (False, False, "cpu")])
def test_resolve_device_prefers_cuda_then_mps_then_cpu(cuda, mps, auto, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(auto)
    assert resolve_device("cpu") == torch.device("cpu")
    for device, there in (("cuda", cuda), ("mps", mps)):
        if not there:
            with pytest.raises(ArgumentError, match=f"--device {device}: PyTorch sees no {device}"):
                resolve_device(device)


def test_discriminator_gradients_come_back_after_a_failed_generator_step():
    netG, netD, opt_G, opt_D = make_gan()
    calls = []

    def autocast_failing_in_g_update() -> contextlib.AbstractContextManager:
        calls.append(1)  # 1: G's forward, 2: D's update, 3: G's update through D
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return contextlib.nullcontext()

    with pytest.raises(RuntimeError, match="out of memory"):
        gan_step(netG, netD, opt_G, opt_D, torch.rand(4, 1, 28, 28), nz=100,
                 autocast=autocast_failing_in_g_update)
    assert len(calls) == 3 and all(p.requires_grad for p in netD.parameters())


# --- the device of every tensor, without a GPU: networks on PyTorch's meta device, which
# raises with a CPU tensor as a GPU does; a path that keeps to it runs until it copies out ---
META = torch.device("meta")
COPIED_OUT = "Cannot copy out of meta tensor"


def test_the_step_and_the_average_make_their_tensors_on_the_networks_device():
    netG, netD = Generator(16, 8).to(META), Discriminator(8).to(META)
    with pytest.raises(RuntimeError, match="meta"):  # what a CPU tensor in the step would do
        netG(torch.randn(2, 16, 1, 1))
    stats = gan_step(netG, netD, Adam(netG.parameters()), Adam(netD.parameters()),
                     torch.empty(4, 1, 28, 28, device=META), 16)
    assert stats.device == META and stats.shape == (len(STAT_NAMES),)
    average = GeneratorAverage(netG, 0.999, seed=0)
    average.update(netG)
    assert average.updates == 1 and next(average.model.parameters()).device == META


@pytest.mark.parametrize("sample", ["grid", "interpolation", "digit endpoints", "one digit",
                                    "evaluation"])
def test_sampling_feeds_each_network_on_its_own_device(sample, tmp_path):
    netG, judge = Generator(16, 8).to(META).eval(), Judge().to(META).eval()
    calls = {
        "grid": lambda: generate_fixed_noise_grid(netG, torch.randn(4, 16, 1, 1),
                                                  tmp_path / "grid.png"),
        "interpolation": lambda: save_interpolation_grid(
            netG, torch.randn(2, 3, 16, 1, 1), tmp_path / "path.png", n_steps=4),
        "digit endpoints": lambda: digit_endpoints(netG, judge, seed=0),
        "one digit": lambda: sample_digit(netG, judge, 7, 2, 16, torch.Generator()),
        "evaluation": lambda: generate_images(netG, 8, seed=0, nz=16),
    }
    with pytest.raises(NotImplementedError, match=COPIED_OUT):  # not a device mismatch
        calls[sample]()
