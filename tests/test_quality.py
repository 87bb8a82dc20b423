"""Sample-quality metrics, and drawing chosen digits with the judge (generate.py --digit)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from tests.conftest import RUN, run_script, synthetic_digits
from utils.checkpoint import load_generator, load_judge
from utils.data_loader import to_model_range
from utils.metrics import (
    frechet_distance,
    inception_score,
    judge_images,
    make_reference,
    score_images,
)
from utils.visualize import digit_probabilities, sample_digit


def digits(n: int, seed: int, label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic_digits(n, np.random.default_rng(seed), label)
    return to_model_range(torch.from_numpy(images).to(torch.uint8)), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def judge(tiny_judge: Path) -> torch.nn.Module:
    return load_judge(tiny_judge)


def test_fid_is_zero_against_itself_and_grows_with_blur_and_noise(judge):
    images, _ = digits(1000, seed=1)
    real, _ = judge_images(judge, images)
    assert abs(frechet_distance(real, real)) < 1e-6

    def fid_of(corrupted: torch.Tensor) -> float:
        return frechet_distance(real, judge_images(judge, corrupted.clamp(-1, 1))[0])

    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    blurred = [fid_of(gaussian_blur(images, 9, sigma)) for sigma in (0.5, 1.5, 3.0)]
    noised = [fid_of(images + level * noise) for level in (0.1, 0.4, 1.0)]
    for series in (blurred, noised):
        assert 1e-3 < series[0] < series[1] < series[2]


def test_inception_score_of_even_confident_and_of_one_class():
    sure = torch.full((1000, 10), 1e-6).scatter_(1, torch.arange(1000)[:, None] % 10, 1 - 9e-6)
    assert inception_score(sure) == pytest.approx(10, rel=0.001)
    one_class = torch.full((1000, 10), 1e-6)
    one_class[:, 3] = 1 - 9e-6
    assert inception_score(one_class) == pytest.approx(1, abs=1e-6)
    unsure = torch.full((1000, 10), 0.1)  # every image an even guess: no better than one class
    assert inception_score(unsure) == pytest.approx(1, abs=1e-6)


def test_a_collapsed_generator_is_flagged(judge):
    test_images, test_labels = digits(500, seed=2)
    train_images, _ = digits(1000, seed=3)
    reference = make_reference(judge, test_images, test_labels, train_images)
    varied = score_images(digits(500, seed=4)[0], judge, reference)
    collapsed = score_images(digits(500, seed=5, label=3)[0], judge, reference)
    assert varied["digit_kl"] < 0.1 and varied["min_digit_ratio"] > 0.5
    assert collapsed["digit_shares"][3] > 0.9 and collapsed["min_digit_ratio"] == 0
    assert collapsed["digit_kl"] > 2  # log(1 / share of 3s among the real) is about 2.3
    assert collapsed["coverage"] < 0.3 < 0.8 < varied["coverage"]
    assert collapsed["inception_score"] < 1.5 < 3 < varied["inception_score"]
    assert varied["fid"] < collapsed["fid"]


def test_digit_sampling_returns_that_digit(short_run, judge, tiny_judge, tmp_path):
    weights = short_run / "weights" / RUN / "generator_final.pth"
    netG = load_generator(weights)
    # A digit this barely trained generator draws, and a confidence it reaches now and then.
    probe = digit_probabilities(netG, judge, torch.randn(1000, 100, 1, 1))
    digit = int(torch.bincount(probe.argmax(1), minlength=10).argmax())
    level = probe[probe.argmax(1) == digit, digit].quantile(0.8).item()
    noise = sample_digit(netG, judge, digit, 20, 100, torch.Generator().manual_seed(0),
                         min_confidence=level)
    probabilities = digit_probabilities(netG, judge, noise)
    assert noise.shape == (20, 100, 1, 1)
    assert (probabilities.argmax(1) == digit).all() and (probabilities[:, digit] >= level).all()
    run_script("generate.py", "--weights", str(weights), "--judge", str(tiny_judge),
               "--digit", str(digit), "--min_confidence", str(level), "--n", "4",
               "--out", str(tmp_path / "d.png"), "--device", "cpu")
    rare = int(probe.max(0).values.argmin())  # the digit it is least sure to draw
    impossible = run_script("generate.py", "--weights", str(weights), "--judge",
                            str(tiny_judge), "--digit", str(rare), "--min_confidence", "0.999999",
                            "--n", "5", "--max_draws", "1500", "--out", str(tmp_path / "e.png"),
                            "--device", "cpu", code=1)
    assert impossible.stderr.strip().splitlines()[-1].endswith(
        f" of 1500 samples were a {rare} with confidence >= 0.999999; lower --min_confidence or "
        "ask for fewer")
