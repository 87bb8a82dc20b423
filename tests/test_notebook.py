"""notebooks/dcgan_mnist.ipynb: runs top to bottom, shows its images, stays small and honest.

The committed file keeps the outputs of one run on real MNIST; to redo them:
``DATA_DIR=<folder holding MNIST/raw> python -m tests.test_notebook``.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]  # not conftest's: importing it sets one thread
NOTEBOOK = REPO / "notebooks" / "dcgan_mnist.ipynb"
MAX_BYTES = 2_000_000  # cheap to clone, quick for GitHub to render
IMAGE_TAG = "image"  # a cell tagged so must output an image
SHIPPED_CODE = [REPO / "train.py", REPO / "evaluate.py", REPO / "hubconf.py",
                *sorted(REPO.glob("models/*.py")), *sorted(REPO.glob("utils/*.py"))]


def execute(notebook: nbformat.NotebookNode, timeout: int) -> None:
    """Run ``notebook`` in place, from notebooks/, in ipykernel's kernel of this Python."""
    manager = AsyncKernelManager(kernel_name="python3",
                                 kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    assert manager.kernel_spec.argv[0] == sys.executable
    NotebookClient(notebook, km=manager, timeout=timeout, record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()


def image_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if IMAGE_TAG in cell.metadata.get("tags", [])]


def has_image(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def test_it_runs_top_to_bottom_and_shows_its_images(mnist_root, monkeypatch):
    committed = NOTEBOOK.read_bytes()
    notebook = nbformat.reads(committed.decode(), as_version=4)
    for cell in notebook.cells:  # so that only this run's outputs count
        if cell.cell_type == "code":
            cell.outputs = []
    monkeypatch.setenv("DATA_DIR", str(mnist_root))  # synthetic MNIST
    monkeypatch.setenv("DCGAN_NOTEBOOK_QUICK", "1")  # a few batches, a few samples
    execute(notebook, timeout=300)  # raises CellExecutionError, naming the cell, if one fails
    missing = [cell.source.splitlines()[0] for cell in image_cells(notebook)
               if not has_image(cell)]
    assert not missing, f"cells without their image: {missing}"
    assert NOTEBOOK.read_bytes() == committed  # the run changed nothing in the repository


def test_the_committed_notebook_holds_one_clean_run():
    assert NOTEBOOK.stat().st_size < MAX_BYTES
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    tagged = image_cells(notebook)
    assert len(tagged) >= 7 and all(has_image(cell) for cell in tagged)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = [output for cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert not [output for output in outputs if output.get("name") == "stderr"]
    from tests.test_docs import anchors  # imported here: it imports conftest, which would
    # set one thread for the kernel of ``python -m tests.test_notebook`` below too

    prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    for link in re.findall(r"\]\((?!https?://)([^)\s]+)\)", prose):
        target, _, anchor = link.partition("#")
        assert (NOTEBOOK.parent / target).is_file(), link
        assert not anchor or anchor in anchors(NOTEBOOK.parent / target), link
    text = NOTEBOOK.read_text()
    assert "/work/" not in text and "shared/data" not in text  # no path of the machine it ran on
    shipped = {line.strip() for path in SHIPPED_CODE for line in path.read_text().splitlines()}
    lines = {line.strip() for cell in code for line in cell.source.splitlines()}
    copied = {line for line in lines & shipped  # it calls the repository instead of copying it
              if len(line) > 30 and not line.startswith(("from ", "import ", "#"))}
    assert not copied


if __name__ == "__main__":  # redo the committed outputs: one run on real MNIST
    if "DATA_DIR" not in os.environ:
        sys.exit("set DATA_DIR to the folder that holds MNIST/raw")
    run = nbformat.read(NOTEBOOK, as_version=4)
    execute(run, timeout=1200)
    nbformat.write(run, NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({NOTEBOOK.stat().st_size:,} bytes)")
