"""A training run's state: networks, optimisers, data order, position; what a checkpoint holds."""

import argparse
import math
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import torch
from torch import Tensor
from torch.optim import Adam
from torch.utils.data import DataLoader

from models import Discriminator, Generator, Judge
from utils.checkpoint import load_judge, save_checkpoint
from utils.data_loader import load_mnist, make_loader
from utils.metrics import Reference, make_reference
from utils.training import (
    FastStep,
    describe_code,
    describe_machine,
    get_rng_states,
    seed_everything,
    set_rng_states,
)

INTERPOLATION_ROWS = 8


@dataclass
class Run:
    """Everything a training run holds and a checkpoint must restore."""

    args: argparse.Namespace
    netG: Generator
    netD: Discriminator
    optimizer_G: Adam
    optimizer_D: Adam
    train_step: FastStep
    loader: DataLoader
    loader_rng: torch.Generator
    fixed_noise: Tensor  # one noise batch for every grid, so epochs compare image by image
    endpoints: Tensor  # (2, rows, nz, 1, 1): interpolation endpoints when there is no judge
    endpoint_pool: Tensor  # latent points among which the judge picks digit endpoints
    run_name: str
    config: dict
    judge: Judge | None = None
    reference: Reference | None = None  # the real data evaluations compare with
    best_fid: float = math.inf
    session_start: float = field(default_factory=time.time)
    epochs_done: int = 0
    batch: int = 0  # batches done in the epoch in progress (0: it has not begun)
    step: int = 0  # batches done in the whole run
    epoch_start_rng: Tensor | None = None  # loader_rng's state when that epoch began

    @property
    def epoch(self) -> int:
        """Number of the epoch in progress (or about to begin), from 1."""
        return self.epochs_done + 1

    @property
    def n_batches(self) -> int:
        """Batches in an epoch (fewer with --limit_batches)."""
        return min(len(self.loader), self.args.limit_batches or len(self.loader))

    def checkpoint(self) -> dict:
        """The state to write; ``restore`` reads it back."""
        return {"generator": self.netG.state_dict(), "discriminator": self.netD.state_dict(),
                "optimizer_G": self.optimizer_G.state_dict(),
                "optimizer_D": self.optimizer_D.state_dict(),
                "epochs_done": self.epochs_done, "batch": self.batch, "step": self.step,
                "epoch_start_rng": self.epoch_start_rng, "rng": get_rng_states(self.loader_rng),
                "fixed_noise": self.fixed_noise, "interpolation_endpoints": self.endpoints,
                "run_name": self.run_name, "config": self.config, "best_fid": self.best_fid}

    def restore(self, checkpoint: dict) -> None:
        """Load a ``checkpoint()`` dict into this run (weights, optimisers, position, RNGs)."""
        self.netG.load_state_dict(checkpoint["generator"])
        self.netD.load_state_dict(checkpoint["discriminator"])
        self.optimizer_G.load_state_dict(checkpoint["optimizer_G"])
        self.optimizer_D.load_state_dict(checkpoint["optimizer_D"])
        device = self.fixed_noise.device
        self.fixed_noise = checkpoint["fixed_noise"].to(device)
        self.endpoints = checkpoint["interpolation_endpoints"].to(device)
        self.epochs_done, self.batch, self.step = (
            checkpoint[key] for key in ("epochs_done", "batch", "step"))
        self.epoch_start_rng = checkpoint["epoch_start_rng"]
        self.run_name = checkpoint["run_name"]
        self.best_fid = checkpoint["best_fid"]
        set_rng_states(checkpoint["rng"], self.loader_rng)

    def record_time(self) -> None:
        """Add this session's training time to ``config["train_seconds"]`` (all sessions)."""
        now = time.time()
        self.config["train_seconds"] = round(
            self.config.get("train_seconds", 0) + now - self.session_start, 1)
        self.session_start = now

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the run as it is now; keep the newest few."""
        self.record_time()
        return save_checkpoint(self.checkpoint(), Path(self.args.weights_dir),
                               keep=self.args.keep_checkpoints)


def load_judging(args: argparse.Namespace, train_images: Tensor) -> tuple:
    """The judge and the evaluation reference, as far as the flags ask for and files allow."""
    if not args.eval_interval and not Path(args.judge).is_file():
        return None, None  # interpolations between random points, no evaluation
    judge = load_judge(args.judge, args.device)
    if not args.eval_interval:
        return judge, None
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    return judge, make_reference(judge, test_images, test_labels, train_images)


def build_run(args: argparse.Namespace, images: Tensor) -> Run:
    """Networks, optimisers, loader and fixed noise, seeded from ``args.seed``."""
    device = torch.device(args.device)
    seed_everything(args.seed)
    netG = Generator(args.nz, args.ngf).to(device)
    netD = Discriminator(args.ndf).to(device)
    betas = (args.beta1, 0.999)
    optimizer_G = Adam(netG.parameters(), lr=args.lr, betas=betas)
    optimizer_D = Adam(netD.parameters(), lr=args.lr, betas=betas)
    loader_rng = torch.Generator().manual_seed(args.seed)
    if args.num_workers == 0:  # no worker processes: the images can live on the device
        images = images.to(device)
    run_name = time.strftime("%Y%m%d-%H%M%S")
    return Run(
        args=args, netG=netG, netD=netD, optimizer_G=optimizer_G, optimizer_D=optimizer_D,
        train_step=FastStep(netG, netD, optimizer_G, optimizer_D, args.nz, device,
                            amp=args.amp, compile=args.compile),
        loader=make_loader(images, args.batch_size, loader_rng, args.num_workers),
        loader_rng=loader_rng,
        fixed_noise=torch.randn(64, args.nz, 1, 1, device=device),
        endpoints=torch.randn(2, INTERPOLATION_ROWS, args.nz, 1, 1, device=device),
        # its own generator: does not move the global random state
        endpoint_pool=torch.randn(1024, args.nz, 1, 1,
                                  generator=torch.Generator().manual_seed(args.seed)),
        run_name=run_name,
        config={**vars(args), "run_name": run_name, "train_images": len(images),
                "command": shlex.join(["python", "train.py", *sys.argv[1:]]),
                "code": describe_code(), "machine": describe_machine(device),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")},
    )


def epoch_batches(run: Run) -> Iterator[Tensor]:
    """This epoch's remaining batches; after a resume, the same ones an unbroken run gets."""
    if run.batch == 0:  # a new epoch: remember where its shuffle starts
        run.epoch_start_rng = run.loader_rng.get_state()
        return islice(run.loader, run.n_batches)
    # Resuming mid-epoch: replay the epoch's shuffle from its starting state, skip the batches
    # already done, then put the generator back where the checkpoint left it.
    rng_now = run.loader_rng.get_state()
    run.loader_rng.set_state(run.epoch_start_rng)
    batches = islice(run.loader, run.batch, run.n_batches)
    first = next(batches)  # the shuffle is drawn here, at the first batch
    run.loader_rng.set_state(rng_now)
    return chain([first], batches)
