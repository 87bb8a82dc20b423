"""MNIST, decoded and normalised once, served a batch at a time.

torchvision's IDX readers give the whole set as one uint8 tensor. Converting it once
with the same arithmetic as ``ToTensor()`` + ``Normalize(0.5, 0.5)`` gives the values the
textbook pipeline gives, without redoing PIL and transform work for every image of every
epoch; a batch is then one tensor indexing operation.
"""

import gzip
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from utils.errors import ArgumentError, UserError
from utils.files import atomic_path

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def to_model_range(images: Tensor) -> Tensor:
    """Map uint8 images ``(N, 28, 28)`` to float32 ``(N, 1, 28, 28)`` in [-1, 1].

    The same operations as ``ToTensor()`` (divide by 255) then ``Normalize(0.5, 0.5)``,
    so the values match the textbook pipeline exactly; [-1, 1] is the range of the
    generator's Tanh.
    """
    return images.unsqueeze(1).float().div(255).sub(0.5).div(0.5)


def load_mnist(data_dir: str | Path = "data", train: bool = True) -> tuple[Tensor, Tensor]:
    """Load MNIST from ``data_dir/MNIST/raw``, downloading it there on first use.

    Args:
        data_dir: the folder that holds (or will hold) ``MNIST/raw``.
        train: the 60,000 training images if True, else the 10,000 test images.

    Returns:
        images ``(N, 1, 28, 28)`` float32 in [-1, 1] and labels ``(N,)`` int64.

    Raises:
        UserError: the files are missing and the download failed, or one is truncated,
            corrupt or not MNIST (naming it).
    """
    raw_dir = Path(data_dir) / "MNIST" / "raw"
    if not has_mnist(raw_dir):
        download_mnist(Path(data_dir), train)
    prefix = "train" if train else "t10k"
    images = read_idx(raw_dir / f"{prefix}-images-idx3-ubyte", read_image_file)
    labels = read_idx(raw_dir / f"{prefix}-labels-idx1-ubyte", read_label_file)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        size = " x ".join(map(str, images.shape[1:]))
        raise UserError(f"{raw_dir} holds {len(images)} {prefix} images of {size} pixels but "
                        f"{len(labels)} labels; MNIST has 28 x 28 images, one label each: "
                        "replace the files with the original MNIST files")
    return to_model_range(images), labels


def read_idx(path: Path, read: Callable[[str], Tensor]) -> Tensor:
    """An IDX file, read by torchvision's ``read_image_file`` or ``read_label_file``.

    Raises:
        UserError: naming the file, if it is truncated, corrupt or not an MNIST IDX file.
    """
    try:
        return read(str(path))
    except (AssertionError, KeyError, RuntimeError, TypeError, ValueError):  # torchvision's
        raise UserError(f"{path} ({path.stat().st_size} bytes) is truncated, corrupt or not an "
                        "MNIST IDX file; delete it so that it is downloaded again, or replace it "
                        "with the original file") from None


def has_mnist(folder: Path) -> bool:
    """Whether ``folder`` holds the four MNIST files, extracting their ``.gz`` files if need be.

    The MNIST site and most mirrors hand out the ``.gz`` files; they are extracted here,
    offline, as torchvision would after a download.
    """
    for name in RAW_FILES:
        packed = folder / f"{name}.gz"
        if not (folder / name).is_file() and packed.is_file():
            try:
                data = gzip.decompress(packed.read_bytes())
            except (OSError, EOFError) as error:
                raise UserError(f"{packed} is not a complete gzip file ({error}); "
                                "replace it with the original file") from None
            with atomic_path(folder / name) as tmp:
                tmp.write_bytes(data)
    return all((folder / name).is_file() for name in RAW_FILES)


def download_mnist(data_dir: Path, train: bool) -> None:
    """Download MNIST into ``data_dir/MNIST/raw`` with torchvision.

    MNIST files one or two levels off (``--data_dir`` naming ``MNIST/raw`` or ``MNIST``
    itself) are pointed out instead; a failed download leaves no empty folders behind.

    Raises:
        UserError: the files are elsewhere, or the download failed.
    """
    raw_dir, here = data_dir / "MNIST" / "raw", data_dir.resolve()
    for folder, root in ((here, here.parent.parent), (here / "raw", here.parent)):
        if has_mnist(folder):
            at_home = folder == root / "MNIST" / "raw"  # both resolved already
            hint = f"give --data_dir {root}" if at_home else f"move them into {raw_dir}"
            raise UserError(f"MNIST is not in {raw_dir}, but its files are in {folder}: "
                            f"{hint} (--data_dir is the folder that holds MNIST/raw)")
    missing = [f for f in (data_dir, data_dir / "MNIST", raw_dir) if not f.exists()]
    try:
        MNIST(str(data_dir), train=train, download=True)
    except (OSError, RuntimeError) as error:
        for folder in reversed(missing):  # only the empty folders that the attempt made
            with suppress(OSError):
                folder.rmdir()
        reason = [line for line in str(error).splitlines() if line.strip()] or ["?"]
        raise UserError(
            f"MNIST is not in {raw_dir} and could not be downloaded ({reason[-1].strip()}); "
            f"put the four files {', '.join(RAW_FILES)} (or their .gz files) there, or point "
            "--data_dir at the folder that holds MNIST/raw"
        ) from error


def make_loader(images: Tensor, batch_size: int, generator: torch.Generator) -> DataLoader:
    """Batches of ``images`` in a new random order each epoch, drawn from ``generator``.

    The last batch of an epoch is kept even if smaller. Each batch is one indexing of
    ``images`` (the batch sampler hands the loader a list of indices at a time), so it
    stays on ``images``' device. Saving and restoring ``generator``'s state restores the
    order of the epochs that follow.

    Raises:
        ArgumentError: ``batch_size`` is larger than the set (``--batch_size``).
    """
    if batch_size > len(images):
        raise ArgumentError(f"--batch_size {batch_size} is larger than the {len(images)} "
                            f"training images; give at most {len(images)}")
    sampler = BatchSampler(RandomSampler(images, generator=generator), batch_size, False)
    return DataLoader(images, batch_size=None, sampler=sampler, generator=generator)
