"""The benchmark scripts run and report their numbers (their timings are not checked)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_loader_vs_step_reports_each_loader_share(mnist_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.loader_vs_step", "--data_dir", str(mnist_root),
         "--steps", "1", "--batch_size", "64"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"GAN step: \d+ ms/batch -> \d+ s for 4 batches", result.stdout)
    shares = re.findall(r"s/epoch = +([\d.]+)% of an epoch", result.stdout)
    assert len(shares) == 3 and all(0 <= float(s) < 100 for s in shares)


def test_bench_train_quick_reports_each_mode() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_train", "--quick",
                             "--device", "cpu"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| (\S+) \| (\d+) \| ([\d.]+) \|", result.stdout, re.MULTILINE)
    modes = [mode for mode, *_ in rows]
    assert modes[:3] == ["textbook-0", "textbook-2", "default"]
    assert all(int(speed) > 0 for _, speed, _ in rows)
    assert max(float(ratio) for mode, _, ratio in rows if mode.startswith("textbook")) == 1.0
    assert "appended" not in result.stdout  # --quick leaves RESULTS.md alone
