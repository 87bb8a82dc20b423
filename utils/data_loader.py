"""MNIST, decoded and normalised once, served a batch at a time.

The whole set is one tensor with the values of ``ToTensor()`` + ``Normalize(0.5, 0.5)``, so
no PIL or transform work is redone for each image of each epoch; a batch is one indexing.
"""

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from utils.errors import ArgumentError, UserError


def to_model_range(images: Tensor) -> Tensor:
    """uint8 images ``(N, 28, 28)`` as float32 ``(N, 1, 28, 28)`` in [-1, 1], the Tanh's range.

    The same operations as ``ToTensor()`` then ``Normalize(0.5, 0.5)``: the same values.
    """
    return images.unsqueeze(1).float().div(255).sub(0.5).div(0.5)


def load_mnist(data_dir: str | Path = "data", train: bool = True) -> tuple[Tensor, Tensor]:
    """MNIST from ``data_dir/MNIST/raw``: images ``(N, 1, 28, 28)`` in [-1, 1], labels ``(N,)``.

    Missing files are made by ``torchvision.datasets.MNIST``, from their ``.gz`` files there
    (offline, checksums checked) or downloaded; files there are never downloaded over. A
    file that is missing, damaged or not MNIST is a ``UserError`` naming it.
    """
    raw = Path(data_dir) / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    files = {raw / f"{prefix}-images-idx3-ubyte": read_image_file,
             raw / f"{prefix}-labels-idx1-ubyte": read_label_file}
    for path in files:
        if os.path.lexists(path) and not path.is_file():
            raise UserError(f"{path} is not a file (a folder, or a link to nothing); put the "
                            "MNIST file there")
    if not all(path.is_file() for path in files):
        try:
            MNIST(str(data_dir), train=train, download=True)
        except Exception as error:  # torchvision's download raises many types
            reason = [line for line in str(error).splitlines() if line.strip()] or ["?"]
            raise UserError(f"MNIST is not in {raw} and could not be downloaded "
                            f"({reason[-1].strip()}); put the files "
                            f"{' and '.join(p.name for p in files)} (or their .gz files) there, or "
                            "point --data_dir at the folder that holds MNIST/raw") from None
    images, labels = (read_idx(path, read) for path, read in files.items())
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise UserError(f"{raw} holds {len(images)} {prefix} images of shape "
                        f"{tuple(images.shape[1:])} and {len(labels)} labels; MNIST has 28 x 28 "
                        "images, one label each: replace them with the original MNIST files")
    return to_model_range(images), labels


def read_idx(path: Path, read: Callable[[str], Tensor]) -> Tensor:
    """An IDX file, read by torchvision's ``read_image_file`` or ``read_label_file``."""
    try:
        return read(str(path))
    except (AssertionError, KeyError, RuntimeError, TypeError, ValueError):  # torchvision's
        raise UserError(f"{path} ({path.stat().st_size} bytes) is truncated, corrupt or not an "
                        "MNIST IDX file; replace it with the original file") from None


def make_loader(images: Tensor, batch_size: int, generator: torch.Generator) -> DataLoader:
    """Batches of ``images`` in a new order each epoch, drawn from ``generator``.

    The last, smaller batch is kept. Each batch is one indexing of ``images`` (the sampler
    hands over a list of indices at a time), so it stays on ``images``' device.
    """
    if batch_size > len(images):
        raise ArgumentError(f"--batch_size {batch_size} is larger than the {len(images)} "
                            f"training images; give at most {len(images)}")
    sampler = BatchSampler(RandomSampler(images, generator=generator), batch_size, False)
    return DataLoader(images, batch_size=None, sampler=sampler, generator=generator)
