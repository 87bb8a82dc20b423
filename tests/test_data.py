"""MNIST loading: values, shapes, batching and the message when the data is missing."""

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from tests.conftest import N_TEST, N_TRAIN
from utils import data_loader
from utils.data_loader import load_mnist, make_loader
from utils.errors import UserError

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def test_shapes_range_and_labels(mnist_root: Path) -> None:
    images, labels = load_mnist(mnist_root, train=True)
    assert images.shape == (N_TRAIN, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (N_TRAIN,) and labels.dtype == torch.int64
    assert images.min() == -1 and images.max() == 1
    test_images, _ = load_mnist(mnist_root, train=False)
    assert test_images.shape == (N_TEST, 1, 28, 28)


def test_values_equal_the_textbook_transform(mnist_root: Path) -> None:
    textbook = MNIST(str(mnist_root), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    images, labels = load_mnist(mnist_root)
    for i in (0, 1, N_TRAIN - 1):
        image, label = textbook[i]
        assert torch.equal(images[i], image)
        assert labels[i] == label


def test_loader_batches_cover_every_image_once(mnist_root: Path) -> None:
    images, _ = load_mnist(mnist_root)
    loader = make_loader(images, 64, torch.Generator().manual_seed(0))
    batches = list(loader)
    assert [len(b) for b in batches] == [64, 64, 64, N_TRAIN - 3 * 64]
    seen = torch.cat(batches).flatten(1)
    # every image exactly once: the sorted rows equal the sorted original rows
    assert torch.equal(seen.sum(1).sort().values, images.flatten(1).sum(1).sort().values)
    assert not torch.equal(batches[0], images[:64])  # shuffled


def test_loader_order_follows_its_generator(mnist_root: Path) -> None:
    images, _ = load_mnist(mnist_root)

    def first_batch(seed: int) -> torch.Tensor:
        return next(iter(make_loader(images, 32, torch.Generator().manual_seed(seed))))

    assert torch.equal(first_batch(1), first_batch(1))
    assert not torch.equal(first_batch(1), first_batch(2))


def test_loader_order_is_the_textbook_dataloaders(mnist_root: Path) -> None:
    images, _ = load_mnist(mnist_root)
    ours = make_loader(images, 48, torch.Generator().manual_seed(3))
    textbook = DataLoader(images, 48, shuffle=True, generator=torch.Generator().manual_seed(3))
    for _ in range(2):  # two epochs: the generators move alike
        assert all(torch.equal(a, b) for a, b in zip(ours, textbook, strict=True))


def test_missing_data_without_network_names_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nno network")

    monkeypatch.setattr(data_loader, "MNIST", no_network)
    with pytest.raises(UserError) as caught:
        load_mnist(tmp_path / "nowhere")
    assert str(caught.value) == (
        f"MNIST is not in {tmp_path / 'nowhere' / 'MNIST' / 'raw'} and could not be downloaded "
        "(no network); put the files train-images-idx3-ubyte and train-labels-idx1-ubyte (or "
        "their .gz files) there, or point --data_dir at the folder that holds MNIST/raw")


def test_the_gz_files_alone_are_extracted_offline(mnist_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    resources = []
    for name in NAMES:  # as the MNIST site hands them out; torchvision checks their MD5
        packed = gzip.compress((mnist_root / "MNIST" / "raw" / name).read_bytes())
        (raw / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", hashlib.md5(packed).hexdigest()))
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setattr(MNIST, "mirrors", ["http://localhost:9/"])  # nothing to download from
    images, labels = load_mnist(tmp_path)
    expected_images, expected_labels = load_mnist(mnist_root)
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def test_files_that_are_there_are_read_never_downloaded_over(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(mnist_root, tmp_path, dirs_exist_ok=True)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])
    monkeypatch.setattr(data_loader, "MNIST", lambda *args, **kwargs: pytest.fail("download"))
    with pytest.raises(UserError) as caught:
        load_mnist(tmp_path, train=False)
    assert str(caught.value) == (f"{images} (100 bytes) is truncated, corrupt or not an MNIST "
                                 "IDX file; replace it with the original file")
    images.unlink()
    images.symlink_to(images)  # a link loop
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte is not a file"):
        load_mnist(tmp_path, train=False)
