"""The generator's moving average: its warm-up, its arithmetic, its BatchNorm statistics."""

import math

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from models import Generator
from utils.averaging import BN_SAMPLES, GeneratorAverage


def small_generator(seed: int) -> Generator:
    torch.manual_seed(seed)
    return Generator(nz=16, ngf=8)


def weights(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_the_warm_up_ramps_the_decay_up_and_forgets_the_first_weights():
    early, late = small_generator(1), small_generator(2)
    average = GeneratorAverage(early, decay=0.999, seed=0)
    assert average.decay_at(0) == pytest.approx(0.1) and average.decay_at(90) == pytest.approx(0.91)
    assert average.decay_at(8990) == pytest.approx(0.999)  # (1 + n) / (10 + n) reaches it
    assert average.decay_at(100_000) == 0.999
    for _ in range(10):
        average.update(early)
    for _ in range(90):
        average.update(late)
    # The share of the early weights left after updates 11 to 100: the product of their
    # decays, (11 * 12 * ... * 100) / (20 * 21 * ... * 109) = (11 * ... * 19) / (101 * ... * 109).
    kept = math.prod(range(11, 20)) / math.prod(range(101, 110))  # 2.2e-8; without the
    # warm-up, 0.999 ** 90 = 91% of them would be left
    expected = weights(late) + kept * (weights(early) - weights(late))
    torch.testing.assert_close(weights(average.model), expected, rtol=0, atol=1e-6)


def test_after_the_warm_up_it_is_pytorchs_exponential_moving_average():
    netG = small_generator(3)
    ours = GeneratorAverage(netG, decay=0.6, seed=0)
    for _ in range(20):  # the ramp (1 + n) / (10 + n) passes 0.6 at n = 12.5
        ours.update(netG)
    reference = AveragedModel(netG, multi_avg_fn=get_ema_multi_avg_fn(0.6))
    reference.update_parameters(netG)  # the first update copies
    for seed in range(4, 9):
        with torch.no_grad():
            for p, q in zip(netG.parameters(), small_generator(seed).parameters(), strict=True):
                p.copy_(q)
        ours.update(netG)
        reference.update_parameters(netG)
    torch.testing.assert_close(weights(ours.model), weights(reference.module), rtol=0, atol=1e-7)


def test_batchnorm_statistics_are_estimated_for_the_averaged_weights():
    netG = small_generator(0)
    with torch.no_grad():  # running statistics of its own, which must not be the average's
        netG(torch.randn(64, 16, 1, 1))
    average = GeneratorAverage(netG, decay=0.9, seed=5)
    for seed in (1, 2):
        average.update(small_generator(seed))
    state = torch.get_rng_state()
    model = average.generator()
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is not used
    assert not model.training
    # The first BatchNorm's running mean is the mean of the first convolution's outputs on
    # the noise, drawn from seed + 1, the evaluations' noise being seed's.
    noise = torch.randn(BN_SAMPLES, 16, 1, 1, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = model.main[0](noise).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.main[1].running_mean, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model.main[1].running_mean, netG.main[1].running_mean)
