"""MNIST, decoded and normalised once, served a batch at a time.

torchvision's ``MNIST`` already holds the whole set as one uint8 tensor. Converting it once
with the same arithmetic as ``ToTensor()`` + ``Normalize(0.5, 0.5)`` gives the values the
textbook pipeline gives, without redoing PIL and transform work for every image of every
epoch; a batch is then one tensor indexing operation.
"""

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import MNIST

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTNotFoundError(RuntimeError):
    """MNIST is not on disk and could not be downloaded."""


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
        MNISTNotFoundError: the files are missing and the download failed.
    """
    raw_dir = Path(data_dir) / "MNIST" / "raw"
    if not all((raw_dir / name).is_file() for name in RAW_FILES):
        try:
            MNIST(str(data_dir), train=train, download=True)
        except (OSError, RuntimeError) as error:
            reason = str(error).splitlines()[0]
            raise MNISTNotFoundError(
                f"MNIST is not in {raw_dir} and could not be downloaded ({reason}); "
                f"put the four files {', '.join(RAW_FILES)} there, or point --data_dir "
                "at the folder that holds MNIST/raw"
            ) from error
    dataset = MNIST(str(data_dir), train=train, download=False)
    return to_model_range(dataset.data), dataset.targets


class TensorImages(Dataset):
    """A dataset over one in-memory image tensor that hands out whole batches.

    ``DataLoader`` calls ``__getitems__`` with a batch of indices, so a batch costs one
    indexing operation instead of one Python call per image.
    """

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        """One image ``(1, 28, 28)``."""
        return self.images[index]

    def __getitems__(self, indices: list[int]) -> Tensor:
        """A batch ``(len(indices), 1, 28, 28)``."""
        return self.images[indices]


def _as_batch(batch: Tensor) -> Tensor:
    """Collate function: ``__getitems__`` has already built the batch."""
    return batch


def make_loader(
    images: Tensor,
    batch_size: int,
    generator: torch.Generator,
    num_workers: int = 0,
    shuffle: bool = True,
) -> DataLoader:
    """Batches of ``images`` in a new random order each epoch, drawn from ``generator``.

    The last batch of an epoch is kept even if smaller. Saving and restoring
    ``generator``'s state restores the order of the epochs that follow.
    """
    return DataLoader(
        TensorImages(images),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        collate_fn=_as_batch,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
