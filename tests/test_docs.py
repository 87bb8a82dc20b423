"""README.md and docs/: every link resolves, the numbers they state are the files'."""

import re
import stat
from pathlib import Path

import pytest

from tests.conftest import NARROW, REPO, output_flags, run_train

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves_and_no_path_of_the_machine_is_named(page):
    assert "shared/data" not in page.read_text() and "/work/" not in page.read_text()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"https?://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link}"
        if anchor:
            assert anchor in anchors(path), f"{page.name}: {link}"


def test_the_readmes_line_counts_are_the_files():
    table = (REPO / "README.md").read_text().split("## Reading the code")[1]
    rows = re.findall(r"^\| \[`([\w/.]+\.py)`\]\([\w/.]+\) \| (\d+) \|", table, re.MULTILINE)
    assert [name for name, _ in rows] == ["models/generator.py", "models/discriminator.py",
                                          "utils/step.py", "train.py"]
    for name, lines in rows:
        assert int(lines) == len((REPO / name).read_text().splitlines()), name


def test_an_nvidia_gpu_that_this_pytorch_cannot_use_is_named(mnist_root, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI 550.54'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = run_train(*NARROW, "--n_epochs", "1", "--limit_batches", "1", "--batch_size", "16",
                       "--eval_interval", "0", "--data_dir", str(mnist_root),
                       *output_flags(tmp_path))
    notes = [line for line in result.stderr.splitlines() if line.startswith("train.py: note")]
    assert len(notes) == 1
    assert "this machine has an NVIDIA GPU, but this PyTorch" in notes[0]
    assert "see README.md, 'Installing PyTorch for your hardware'" in notes[0]
    assert "## Installing PyTorch for your hardware" in (REPO / "README.md").read_text()
    monkeypatch.setenv("PATH", f"{Path('/usr/bin')}:{Path('/bin')}")  # no GPU: no note
    again = run_train("--resume", "auto", "--n_epochs", "2", "--data_dir", str(mnist_root),
                      *output_flags(tmp_path))
    assert "train.py: note" not in again.stderr or Path("/proc/driver/nvidia/version").exists()
