"""hubconf.py: torch.hub.load(<clone>, "generator", source="local") gives the shipped generator."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, RUN

CHECK = """
import sys, torch
clone, shipped = sys.argv[1], sys.argv[2:]
for ema, name in ((False, "generator_final.pth"), (True, "generator_ema.pth")):
    if name not in shipped:
        continue
    netG = torch.hub.load(clone, "generator", source="local", ema=ema)
    stored = torch.load(f"{clone}/weights/{name}", weights_only=True)
    state = netG.state_dict()
    assert state.keys() == stored.keys(), name
    assert all(torch.equal(state[k], stored[k]) for k in stored), name
    assert not netG.training and netG.nz == 100, name
    assert netG(torch.randn(5, 100, 1, 1)).shape == (5, 1, 28, 28)
untrained = torch.hub.load(clone, "generator", source="local", pretrained=False, nz=16, ngf=8)
assert untrained.training and untrained.nz == 16
assert untrained.main[0].weight.shape == (16, 64, 4, 4)
print("checked", clone)
"""


def check(clone: Path, *shipped: str) -> None:
    """Run CHECK in a new interpreter, outside the clone."""
    result = subprocess.run([sys.executable, "-c", CHECK, str(clone), *shipped],
                            cwd=clone.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"checked {clone}"


def test_torch_hub_loads_the_shipped_generator() -> None:
    check(REPO, "generator_final.pth")


def test_torch_hub_loads_the_generator_and_its_average(short_run: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"  # a clone whose weights/ holds a test run's generators
    for part in ("models", "utils"):
        shutil.copytree(REPO / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", clone)
    shutil.copytree(short_run / "weights" / RUN, clone / "weights",
                    ignore=shutil.ignore_patterns("checkpoint_*", ".train.lock"))
    check(clone, "generator_final.pth", "generator_ema.pth")
