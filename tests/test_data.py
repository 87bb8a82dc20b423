"""MNIST loading: values, shapes, batching and the message when the data is missing."""

import gzip
import hashlib
import shutil
import urllib.error
import urllib.request

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


def test_shapes_and_values_are_the_textbook_transforms(mnist_root):
    images, labels = load_mnist(mnist_root, train=True)
    assert images.shape == (N_TRAIN, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (N_TRAIN,) and labels.dtype == torch.int64
    assert images.min() == -1 and images.max() == 1
    assert load_mnist(mnist_root, train=False)[0].shape == (N_TEST, 1, 28, 28)
    textbook = MNIST(str(mnist_root), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    for i in (0, 1, N_TRAIN - 1):
        assert torch.equal(images[i], textbook[i][0]) and labels[i] == textbook[i][1]


def test_loader_order_is_the_textbook_dataloaders(mnist_root):
    images, _ = load_mnist(mnist_root)
    first = []
    for seed in (3, 4):  # the order follows the generator, batches of 48 and a last of 8
        ours = make_loader(images, 48, torch.Generator().manual_seed(seed))
        textbook = DataLoader(images, 48, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
        for _ in range(2):  # two epochs: the generators move alike
            assert all(torch.equal(a, b) for a, b in zip(ours, textbook, strict=True))
        first.append(next(iter(ours)))
    assert [len(batch) for batch in ours] == [48, 48, 48, 48, 8]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[0], images[:48])


def test_the_gz_files_alone_are_extracted_offline(mnist_root, tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    resources = []
    for name in NAMES:  # as the MNIST site hands them out; torchvision checks their MD5
        packed = gzip.compress((mnist_root / "MNIST" / "raw" / name).read_bytes())
        (raw / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", hashlib.md5(packed).hexdigest()))
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setattr(MNIST, "mirrors", ["http://localhost:9/"])  # nothing to download from
    for ours, theirs in zip(load_mnist(tmp_path), load_mnist(mnist_root), strict=True):
        assert torch.equal(ours, theirs)  # the images, then the labels


def test_missing_files_are_named_and_those_there_never_downloaded_over(
        mnist_root, tmp_path, monkeypatch):
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)  # torchvision's download fails
    with pytest.raises(UserError) as caught:
        load_mnist(tmp_path / "nowhere")
    assert str(caught.value) == (
        f"MNIST is not in {tmp_path / 'nowhere' / 'MNIST' / 'raw'} and could not be downloaded "
        "(<urlopen error no network>); put the files train-images-idx3-ubyte and "
        "train-labels-idx1-ubyte (or their .gz files) there, or point --data_dir at the folder "
        "that holds MNIST/raw")
    shutil.copytree(mnist_root, tmp_path, dirs_exist_ok=True)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])
    monkeypatch.setattr(data_loader, "MNIST", lambda *args, **kwargs: pytest.fail("download"))
    with pytest.raises(UserError) as caught:
        load_mnist(tmp_path, train=False)
    assert str(caught.value) == (f"{images} (100 bytes) is truncated, corrupt or not an MNIST "
                                 "IDX file; replace it with the original file")
    images.unlink()
    images.mkdir()  # a folder in its place, then a link loop
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte is not a file"):
        load_mnist(tmp_path, train=False)
    images.rmdir()
    images.symlink_to(images)
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte is not a file"):
        load_mnist(tmp_path, train=False)
