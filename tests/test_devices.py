"""Marked ``cuda``: run where ``torch.cuda.is_available()``, skipped elsewhere (``-m cuda``)."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import (
    RUN,
    assert_same_weights,
    run_python,
    run_script,
    run_train,
    short_run_flags,
)
from tests.test_train import readme_snippets
from utils.checkpoint import load_generator, load_judge
from utils.visualize import digit_probabilities

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is false)")]


@pytest.fixture(scope="module")
def cuda_run(mnist_root: Path, tiny_judge: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs on CUDA with every output, deterministic cuDNN."""
    out = tmp_path_factory.mktemp("cuda_run")
    run_train(*short_run_flags(mnist_root, tiny_judge, out), "--device", "cuda", "--deterministic")
    return out


def test_two_epochs_on_cuda_write_what_the_cpu_writes(cuda_run, short_run):
    for kind in ("results", "weights"):
        names = {p.name for p in (cuda_run / kind / RUN).iterdir()}
        assert names == {p.name for p in (short_run / kind / RUN).iterdir()}, kind
    rows = pd.read_csv(cuda_run / "results" / RUN / "training_data.csv")
    assert rows["step"].tolist() == list(range(1, 7)) and rows.notna().all().all()
    history = pd.read_csv(cuda_run / "results" / RUN / "evaluation_history.csv")
    assert history["generator"].tolist() == ["raw", "ema"] * 2 and history["fid"].gt(0).all()
    for name in ("generator_best.pth", "generator_ema.pth"):  # weights that load anywhere
        weights = torch.load(cuda_run / "weights" / RUN / name, weights_only=True)
        assert all(value.device.type == "cpu" for value in weights.values()), name


def test_resume_on_cuda_equals_an_unbroken_cuda_run(cuda_run, mnist_root, tiny_judge, tmp_path):
    flags = [*short_run_flags(mnist_root, tiny_judge, tmp_path), "--device", "cuda",
             "--deterministic"]
    run_train(*flags, "--n_epochs", "1")
    run_train(*flags, "--resume", "auto")
    for name in ("training_data.csv", "evaluation_history.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / RUN / name),
                                      pd.read_csv(cuda_run / "results" / RUN / name),
                                      check_exact=True)
    for name in ("generator_final.pth", "discriminator_final.pth", "generator_ema.pth"):
        assert_same_weights(tmp_path / "weights" / RUN / name, cuda_run / "weights" / RUN / name)


def test_a_cuda_checkpoint_resumes_on_the_cpu(cuda_run, mnist_root, tiny_judge, tmp_path):
    shutil.copytree(cuda_run, tmp_path, dirs_exist_ok=True)
    checkpoint = tmp_path / "weights" / RUN / "checkpoint_step_00000003.pth"
    run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--device", "cpu",
              "--resume", str(checkpoint))
    rows = pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")
    assert rows["step"].tolist() == list(range(1, 7)) and rows.notna().all().all()


def test_evaluate_generate_and_the_readme_snippet_on_cuda(
        cuda_run, tiny_judge, mnist_root, tmp_path):
    weights = cuda_run / "weights" / RUN / "generator_final.pth"
    run_script("evaluate.py", "--weights", str(weights), "--judge", str(tiny_judge), "--data_dir",
               str(mnist_root), "--n", "100", "--device", "cuda", "--out", str(tmp_path / "e.json"))
    probe = digit_probabilities(load_generator(weights), load_judge(tiny_judge),
                                torch.randn(1000, 100, 1, 1))
    digit = int(torch.bincount(probe.argmax(1), minlength=10).argmax())  # one it draws
    run_script("generate.py", "--weights", str(weights), "--judge", str(tiny_judge),
               "--digit", str(digit), "--min_confidence", "0.2", "--n", "4",
               "--out", str(tmp_path / "d.png"), "--device", "cuda")
    (tmp_path / "weights").mkdir()
    shutil.copy(weights, tmp_path / "weights")
    original, _ = readme_snippets()
    assert 'torch.device("cuda" if torch.cuda.is_available()' in original
    run_python("-c", original, cwd=tmp_path)
    with Image.open(tmp_path / "my_generated_images.png") as grid:
        assert grid.size == (242, 242)


def test_bench_train_quick_on_cuda():
    result = run_python("-m", "benchmarks.bench_train", "--quick", "--device", "cuda")
    assert "| default |" in result.stdout and "GiB |" in result.stdout
