"""README.md and docs/: every link resolves, the numbers they state are the files'."""

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

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
