"""Train DCGAN (Radford, Metz & Chintala, ICLR 2016) on MNIST.

    python train.py --n_epochs 50          # all flags: python train.py --help

Writes weights to --weights_dir, images and training logs to --results_dir and
TensorBoard events to --log_dir (see README.md, "What a run leaves behind").
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim import Adam
from tqdm import tqdm

from models import Discriminator, Generator
from utils.data_loader import MNISTNotFoundError, load_mnist, make_loader
from utils.files import atomic_path
from utils.recorder import TrainingRecorder
from utils.training import (
    DeviceUnavailableError,
    gan_step,
    get_rng_states,
    resolve_device,
    seed_everything,
    set_rng_states,
)
from utils.visualize import generate_fixed_noise_grid, save_interpolation_grid

INTERPOLATION_ROWS, INTERPOLATION_STEPS = 8, 10


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _checked(convert: Callable, test: Callable, what: str) -> Callable:
    """An argparse type: ``convert`` the text, then require ``test`` of the value."""

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = _checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_interval = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; names and defaults follow the original README."""
    p = OneLineErrorParser(description="Train DCGAN on MNIST.")
    add = p.add_argument
    add("--batch_size", type=positive_int, default=128, help="batch size (default: %(default)s)")
    add("--n_epochs", type=positive_int, default=50, help="epochs (default: %(default)s)")
    add("--lr", type=positive_float, default=0.0002,
        help="Adam learning rate of both networks (default: %(default)s, as in the DCGAN paper)")
    add("--beta1", type=unit_interval, default=0.5,
        help="Adam beta1 (default: %(default)s, as in the DCGAN paper; beta2 is 0.999)")
    add("--nz", type=positive_int, default=100, help="noise dimension (default: %(default)s)")
    add("--ngf", type=positive_int, default=64, help="generator base width (default: %(default)s)")
    add("--ndf", type=positive_int, default=64,
        help="discriminator base width (default: %(default)s)")
    add("--save_interval", type=positive_int, default=10,
        help="save per-epoch weights and an interpolation image every N epochs "
             "(default: %(default)s)")
    add("--sample_interval", type=positive_int, default=500,
        help="save a fixed-noise sample grid every N batches (default: %(default)s)")
    add("--data_dir", default="data",
        help="folder holding MNIST/raw; MNIST is downloaded there if missing "
             "(default: %(default)s)")
    add("--results_dir", default="results", help="images and training logs (default: %(default)s)")
    add("--weights_dir", default="weights", help="weights and checkpoint (default: %(default)s)")
    add("--log_dir", default="logs",
        help="TensorBoard logs, one sub-folder per run (default: %(default)s)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="auto picks cuda, then mps, then cpu (default: %(default)s)")
    add("--seed", type=int, default=0,
        help="seed of Python, NumPy and PyTorch (default: %(default)s)")
    add("--num_workers", type=non_negative_int, default=0,
        help="DataLoader worker processes; the images are one in-memory tensor, so 0 is "
             "fastest (default: %(default)s)")
    add("--limit_batches", type=positive_int, default=None,
        help="train only the first N batches of each epoch, for smoke tests and quick looks "
             "(default: all)")
    add("--resume", metavar="PATH", default=None,
        help="continue from a checkpoint (e.g. weights/checkpoint.pth) after its last epoch; "
             "the model shape (nz, ngf, ndf) and optimiser settings come from the checkpoint "
             "(default: start afresh)")
    args = p.parse_args(argv)
    try:
        args.device = str(resolve_device(args.device))
    except DeviceUnavailableError as error:
        p.error(str(error))
    return args


@contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in eval mode (BatchNorm running statistics) for the block."""
    net.eval()
    try:
        yield net
    finally:
        net.train()


def cpu_state(net: nn.Module) -> dict[str, Tensor]:
    """``net``'s state dict with every tensor on the CPU, for portable weight files."""
    return {key: value.cpu() for key, value in net.state_dict().items()}


def save(obj: object, path: Path) -> None:
    """``torch.save`` that never leaves a truncated file behind."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train_epoch(epoch: int, step: int, n_batches: int, args: argparse.Namespace,
                nets: tuple, optimizers: tuple, loader: torch.utils.data.DataLoader,
                fixed_noise: Tensor, recorder: TrainingRecorder) -> int:
    """Run ``n_batches`` GAN steps, logging each and saving sample grids; returns the step."""
    netG, netD = nets
    device = fixed_noise.device
    bar = tqdm(islice(loader, n_batches), total=n_batches, unit="batch",
               desc=f"epoch {epoch}/{args.n_epochs}", dynamic_ncols=True)
    for batch, real in enumerate(bar, start=1):
        step += 1
        stats = gan_step(netG, netD, *optimizers, real.to(device, non_blocking=True), args.nz)
        recorder.log_step(epoch, batch, step, stats)
        bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if k != "D(G(z))_post"},
                        refresh=False)
        if step % args.sample_interval == 0:
            with evaluating(netG):
                generate_fixed_noise_grid(netG, fixed_noise, results(args, f"sample_step_{step}"))
    return step


def results(args: argparse.Namespace, name: str) -> Path:
    """Path of the PNG ``name`` in the results folder."""
    return Path(args.results_dir) / f"{name}.png"


def main(argv: list[str] | None = None) -> None:
    """Train, writing every output as it goes; see ``parse_args`` for the flags."""
    args = parse_args(argv)
    device = torch.device(args.device)
    checkpoint = None
    if args.resume:
        checkpoint = torch.load(args.resume, map_location=device, weights_only=True)
        for key in ("nz", "ngf", "ndf"):
            setattr(args, key, checkpoint["config"][key])
    print(f"device: {device}")
    for folder in (args.results_dir, args.weights_dir, args.log_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    weights_dir = Path(args.weights_dir)

    seed_everything(args.seed)
    images, _ = load_mnist(args.data_dir, train=True)
    loader_rng = torch.Generator()
    loader = make_loader(images, args.batch_size, loader_rng, args.num_workers)
    n_batches = min(len(loader), args.limit_batches or len(loader))
    netG = Generator(args.nz, args.ngf).to(device)
    netD = Discriminator(args.ndf).to(device)
    betas = (args.beta1, 0.999)
    optimizer_G = Adam(netG.parameters(), lr=args.lr, betas=betas)
    optimizer_D = Adam(netD.parameters(), lr=args.lr, betas=betas)
    # One noise batch for every grid of the run, so epochs can be compared image by image.
    fixed_noise = torch.randn(64, args.nz, 1, 1, device=device)
    endpoints = torch.randn(2, INTERPOLATION_ROWS, args.nz, 1, 1, device=device)
    loader_rng.manual_seed(args.seed)
    first_epoch, step, run_name = 1, 0, time.strftime("%Y%m%d-%H%M%S")

    if checkpoint is not None:
        netG.load_state_dict(checkpoint["generator"])
        netD.load_state_dict(checkpoint["discriminator"])
        optimizer_G.load_state_dict(checkpoint["optimizer_G"])
        optimizer_D.load_state_dict(checkpoint["optimizer_D"])
        fixed_noise, endpoints = checkpoint["fixed_noise"], checkpoint["interpolation_endpoints"]
        set_rng_states(checkpoint["rng"], loader_rng)
        first_epoch, step = checkpoint["epoch"] + 1, checkpoint["step"]
        run_name = checkpoint["run_name"]
        print(f"resuming {args.resume} after epoch {checkpoint['epoch']} (step {step})")

    config = {**vars(args), "run_name": run_name, "torch_version": str(torch.__version__),
              "batches_per_epoch": n_batches, "train_images": len(images)}
    with atomic_path(Path(args.results_dir) / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    recorder = TrainingRecorder(Path(args.results_dir), Path(args.log_dir) / run_name,
                                resume_step=step if checkpoint else None)
    recorder.tensorboard.add_text("config", f"```\n{json.dumps(config, indent=2)}\n```")
    print(f"{len(images)} images, {n_batches} batches an epoch; TensorBoard: "
          f"tensorboard --logdir={args.log_dir}")

    started = time.time()
    for epoch in range(first_epoch, args.n_epochs + 1):
        step = train_epoch(epoch, step, n_batches, args, (netG, netD),
                           (optimizer_G, optimizer_D), loader, fixed_noise, recorder)
        last = epoch == args.n_epochs
        with evaluating(netG):
            samples = generate_fixed_noise_grid(netG, fixed_noise,
                                                results(args, f"epoch_{epoch}_final"))
            if epoch % args.save_interval == 0 or last:
                save_interpolation_grid(netG, endpoints,
                                        results(args, f"interpolation_epoch_{epoch}"),
                                        n_steps=INTERPOLATION_STEPS)
        recorder.log_epoch(step, samples)
        if epoch % args.save_interval == 0:
            save(cpu_state(netG), weights_dir / f"generator_epoch_{epoch}.pth")
            save(cpu_state(netD), weights_dir / f"discriminator_epoch_{epoch}.pth")
        save({"generator": netG.state_dict(), "discriminator": netD.state_dict(),
              "optimizer_G": optimizer_G.state_dict(), "optimizer_D": optimizer_D.state_dict(),
              "epoch": epoch, "step": step, "fixed_noise": fixed_noise,
              "interpolation_endpoints": endpoints, "rng": get_rng_states(loader_rng),
              "run_name": run_name, "config": config},
             weights_dir / "checkpoint.pth")

    save(cpu_state(netG), weights_dir / "generator_final.pth")
    save(cpu_state(netD), weights_dir / "discriminator_final.pth")
    recorder.close()
    print(f"done in {time.time() - started:.0f} s: weights in {weights_dir}/, "
          f"images and logs in {args.results_dir}/")


if __name__ == "__main__":
    try:
        main()
    except MNISTNotFoundError as error:
        sys.exit(f"error: {error}")
