"""How much of an epoch goes to loading data, against the GAN step?

    python -m benchmarks.loader_vs_step --data_dir ../shared/data

Times one epoch of batches from this repository's loader and from the textbook
pipeline (torchvision MNIST with ToTensor + Normalize through a DataLoader), and a number of
GAN steps at the same batch size, then prints each loader's share of an epoch. Numbers,
not assertions: this is a measurement, not a test.
"""

import argparse
import platform
import time

import torch
from torch.optim import Adam
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from models import Discriminator, Generator
from utils.data_loader import load_mnist, make_loader
from utils.step import gan_step


def seconds_per_epoch(loader: DataLoader) -> float:
    """Wall-clock seconds to draw every batch of ``loader`` once."""
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def seconds_per_step(batch: torch.Tensor, steps: int) -> float:
    """Median wall-clock seconds of one GAN step on ``batch``, after two warm-up steps."""
    netG, netD = Generator(), Discriminator()
    opt_G = Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = Adam(netD.parameters(), 2e-4, betas=(0.5, 0.999))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        gan_step(netG, netD, opt_G, opt_D, batch, nz=100)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data", help="folder holding MNIST/raw")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="GAN steps to time")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")

    images, _ = load_mnist(args.data_dir)
    ours = seconds_per_epoch(make_loader(images, args.batch_size, torch.Generator()))
    n_batches = -(-len(images) // args.batch_size)
    textbook_set = MNIST(args.data_dir, train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    textbook = {workers: seconds_per_epoch(DataLoader(textbook_set, args.batch_size,
                                                      shuffle=True, num_workers=workers))
                for workers in (0, 2)}
    step = seconds_per_step(images[: args.batch_size], args.steps)
    train = step * n_batches

    print(f"GAN step: {step * 1000:.1f} ms/batch -> {train:.2f} s for {n_batches} batches")
    rows = [("this repository (in-memory tensor)", ours)] + [
        (f"textbook DataLoader, {w} workers", t) for w, t in textbook.items()]
    for name, seconds in rows:
        print(f"{name:36s} {seconds:7.2f} s/epoch = {100 * seconds / (seconds + train):5.2f}% "
              "of an epoch")


if __name__ == "__main__":
    main()
