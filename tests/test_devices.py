"""Every path on every device: the per-epoch outputs at epoch 1, and the CUDA-only checks.

Tests marked ``cuda`` run where ``torch.cuda.is_available()`` and are skipped elsewhere
(tests/conftest.py); ``python -m pytest -m cuda`` runs only them. They use the flags that
run every per-epoch path within seconds: ``--save_interval 1 --eval_interval 1``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import NARROW, REPO, RUN, output_flags, run_script, run_train, short_run_flags
from tests.test_train import readme_snippets, run_snippet
from utils.checkpoint import load_generator, load_judge
from utils.visualize import digit_probabilities

EVERY_PATH = [*NARROW, "--save_interval", "1", "--eval_interval", "1", "--sample_interval",
              "2", "--eval_samples", "64", "--batch_size", "16"]


def train_on(device: str, mnist_root: Path, judge: Path, out: Path, *args: str) -> None:
    result = run_train(*EVERY_PATH, "--data_dir", str(mnist_root), "--judge", str(judge),
                       "--device", device, *output_flags(out), *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.cuda
def test_every_per_epoch_path_runs_at_epoch_1_on_cuda(mnist_root: Path, tiny_judge: Path,
                                                      tmp_path: Path) -> None:
    train_on("cuda", mnist_root, tiny_judge, tmp_path, "--n_epochs", "1", "--limit_batches", "3")
    results, weights = tmp_path / "results" / RUN, tmp_path / "weights" / RUN
    with Image.open(results / "interpolation_epoch_1.png") as grid:  # digit endpoints
        assert grid.size == (10 * 30 + 2, 8 * 30 + 2)
    history = pd.read_csv(results / "evaluation_history.csv")
    assert history["epoch"].tolist() == [1, 1] and history["fid"].gt(0).all()
    assert history["generator"].tolist() == ["raw", "ema"]
    best = torch.load(weights / "generator_best.pth", weights_only=True)
    epoch_1 = torch.load(weights / "generator_epoch_1.pth", weights_only=True)
    assert all(torch.equal(best[k], epoch_1[k]) for k in epoch_1)
    averaged = torch.load(weights / "generator_ema.pth", weights_only=True)
    assert all(v.device.type == "cpu" for v in [*best.values(), *averaged.values()])  # anywhere
    assert {"sample_step_2.png", "epoch_1_final.png", "epoch_1_ema.png",
            "training_progress.gif"} <= {
        p.name for p in results.iterdir()}


# --- CUDA only ---

@pytest.fixture(scope="module")
def cuda_run(mnist_root: Path, tiny_judge: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs on CUDA with every output, deterministic cuDNN."""
    out = tmp_path_factory.mktemp("cuda_run")
    result = run_train(*short_run_flags(mnist_root, tiny_judge, out), "--device", "cuda",
                       "--deterministic")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.cuda
def test_two_epochs_on_cuda_write_what_the_cpu_writes(cuda_run: Path, short_run: Path) -> None:
    for kind in ("results", "weights"):
        names = {p.name for p in (cuda_run / kind / RUN).iterdir()}
        assert names == {p.name for p in (short_run / kind / RUN).iterdir()}, kind
    rows = pd.read_csv(cuda_run / "results" / RUN / "training_data.csv")
    assert rows["step"].tolist() == list(range(1, 7)) and rows.notna().all().all()


@pytest.mark.cuda
def test_resume_on_cuda_equals_an_unbroken_cuda_run(cuda_run: Path, mnist_root: Path,
                                                    tiny_judge: Path, tmp_path: Path) -> None:
    flags = [*short_run_flags(mnist_root, tiny_judge, tmp_path), "--device", "cuda",
             "--deterministic"]
    first = run_train(*flags, "--n_epochs", "1")
    assert first.returncode == 0, first.stderr
    resumed = run_train(*flags, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("training_data.csv", "evaluation_history.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / RUN / name),
                                      pd.read_csv(cuda_run / "results" / RUN / name),
                                      check_exact=True)
    for name in ("generator_final.pth", "discriminator_final.pth", "generator_ema.pth"):
        ours = torch.load(tmp_path / "weights" / RUN / name, weights_only=True)
        theirs = torch.load(cuda_run / "weights" / RUN / name, weights_only=True)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name


@pytest.mark.cuda
def test_a_cuda_checkpoint_resumes_on_the_cpu(cuda_run: Path, mnist_root: Path,
                                              tiny_judge: Path, tmp_path: Path) -> None:
    shutil.copytree(cuda_run, tmp_path, dirs_exist_ok=True)
    checkpoint = tmp_path / "weights" / RUN / "checkpoint_step_00000003.pth"
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--device", "cpu",
                        "--resume", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr
    rows = pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")
    assert rows["step"].tolist() == list(range(1, 7)) and rows.notna().all().all()


@pytest.mark.cuda
def test_evaluate_generate_and_the_readme_snippet_on_cuda(cuda_run: Path, tiny_judge: Path,
                                                          mnist_root: Path,
                                                          tmp_path: Path) -> None:
    weights = cuda_run / "weights" / RUN / "generator_final.pth"
    evaluated = run_script("evaluate.py", "--weights", str(weights), "--judge", str(tiny_judge),
                           "--data_dir", str(mnist_root), "--n", "100", "--device", "cuda",
                           "--out", str(tmp_path / "e.json"))
    assert evaluated.returncode == 0, evaluated.stderr
    probe = digit_probabilities(load_generator(weights), load_judge(tiny_judge),
                                torch.randn(1000, 100, 1, 1))
    digit = int(torch.bincount(probe.argmax(1), minlength=10).argmax())  # one it draws
    drawn = run_script("generate.py", "--weights", str(weights), "--judge", str(tiny_judge),
                       "--digit", str(digit), "--min_confidence", "0.2", "--n", "4",
                       "--out", str(tmp_path / "d.png"), "--device", "cuda")
    assert drawn.returncode == 0, drawn.stderr
    (tmp_path / "weights").mkdir()
    shutil.copy(weights, tmp_path / "weights")
    original, _ = readme_snippets()
    assert 'torch.device("cuda" if torch.cuda.is_available()' in original
    run_snippet(original, tmp_path)
    with Image.open(tmp_path / "my_generated_images.png") as grid:
        assert grid.size == (242, 242)


@pytest.mark.cuda
def test_bench_train_quick_on_cuda() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_train", "--quick",
                             "--device", "cuda"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| default |" in result.stdout and "GiB |" in result.stdout
