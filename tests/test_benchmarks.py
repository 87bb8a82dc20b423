"""The benchmark scripts run and report their numbers (their timings are not checked)."""

import re

import pytest
import torch

from tests.conftest import run_python
from utils.device import amp_supported


def test_loader_vs_step_reports_each_loader_share(mnist_root):
    result = run_python("-m", "benchmarks.loader_vs_step", "--data_dir", str(mnist_root),
                        "--steps", "1", "--batch_size", "64")
    step_ms, train = map(float, re.search(
        r"GAN step: ([\d.]+) ms/batch -> ([\d.]+) s for 4 batches", result.stdout).groups())
    assert train == pytest.approx(4 * step_ms / 1000, abs=0.005 + 4 * 0.05 / 1000)
    rows = re.findall(r"([\d.]+) s/epoch = +([\d.]+)% of an epoch", result.stdout)
    assert len(rows) == 3
    for seconds, share in ((float(a), float(b)) for a, b in rows):
        # the share is loading / (loading + training), whatever the printed rounding
        low = 100 * max(seconds - 0.005, 0) / (max(seconds - 0.005, 0) + train + 0.005)
        high = 100 * (seconds + 0.005) / (seconds + 0.005 + max(train - 0.005, 1e-9))
        assert low - 0.005 <= share <= high + 0.005


def test_bench_train_quick_reports_each_mode():
    result = run_python("-m", "benchmarks.bench_train", "--quick", "--device", "cpu")
    rows = re.findall(r"^\| (\S+) \| (\d+) \| ([\d.]+) \|", result.stdout, re.MULTILINE)
    modes = [mode for mode, *_ in rows]
    # --quick drops the compiled modes, and --amp where the CPU has no bfloat16
    amp = ["amp"] if amp_supported(torch.device("cpu")) else []
    assert modes == ["textbook-0", "textbook-2", "default", *amp]
    speeds = {mode: int(speed) for mode, speed, _ in rows}
    baseline = max(speeds["textbook-0"], speeds["textbook-2"])
    for _, speed, ratio in rows:  # each ratio is to the faster textbook loop
        # the table rounds speeds to whole images/s and ratios to 0.01, so a slow CPU's
        # 10 and 3 images/s may truly be 10.4 and 3.2 (ratio 3.25): bound what they allow
        low = (int(speed) - 0.5) / (baseline + 0.5)
        high = (int(speed) + 0.5) / max(baseline - 0.5, 1e-9)
        assert low - 0.005 <= float(ratio) <= high + 0.005
    assert max(ratio for mode, _, ratio in rows if mode.startswith("textbook")) == "1.00"
    assert "appended" not in result.stdout  # --quick leaves RESULTS.md alone
