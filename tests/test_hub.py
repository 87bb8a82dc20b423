"""hubconf.py: torch.hub.load(<clone>, "generator", source="local") gives the shipped generator."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hubconf
from tests.conftest import REPO

CHECK = """
import sys, torch
clone, shipped = sys.argv[1], sys.argv[2:]
import utils, models  # the caller's own packages of the same names (in the working folder)
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
if "generator_ema.pth" not in shipped:
    try:
        torch.hub.load(clone, "generator", source="local", ema=True)
    except FileNotFoundError as error:
        assert "this clone has no averaged generator; use ema=False" in str(error)
    else:
        raise AssertionError("ema=True loaded a missing file")
import utils, models
assert utils.MINE and models.MINE  # still the caller's
print("checked", clone)
"""


def check(clone: Path, *shipped: str, caller: Path) -> None:
    """Run CHECK in a new interpreter, in a ``caller`` project outside the clone."""
    # the caller's project has packages named like this repository's
    (caller / "utils").mkdir(parents=True, exist_ok=True)
    (caller / "utils" / "__init__.py").write_text("MINE = True\n")
    (caller / "models.py").write_text("MINE = True\n")
    result = subprocess.run([sys.executable, "-c", CHECK, str(clone), *shipped], cwd=caller,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"checked {clone}"


def test_torch_hub_loads_the_shipped_generator_and_its_average(tmp_path):
    check(REPO, "generator_final.pth", "generator_ema.pth", caller=tmp_path / "caller")
    clone = tmp_path / "clone"  # a clone without the average
    for part in ("models", "utils"):
        shutil.copytree(REPO / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", clone)
    (clone / "weights").mkdir()
    shutil.copy(REPO / "weights" / "generator_final.pth", clone / "weights")
    check(clone, "generator_final.pth", caller=tmp_path / "caller")


@pytest.mark.parametrize(("sizes", "message"), [
    ({"ngf": 0}, "ngf: expected an integer in [1, 2**31), got '0'"),
    ({"nz": 2.5}, "nz: expected an integer in [1, 2**31), got '2.5'"),
    ({"nz": "100"}, "nz: expected a number, got '100'"),
    ({"ema": "no"}, "ema: expected True or False, got 'no'"),
])
def test_torch_hub_checks_the_sizes_like_the_flags(sizes, message):
    with pytest.raises(ValueError) as caught:
        hubconf.generator(pretrained=False, **sizes)
    assert str(caught.value) == message
    untrained = hubconf.generator(pretrained=False, nz=np.int64(16), ngf=8)  # NumPy's too
    assert untrained.training and untrained.nz == 16
    assert untrained.main[0].weight.shape == (16, 64, 4, 4)
