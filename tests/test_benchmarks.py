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
