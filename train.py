"""Train DCGAN (Radford, Metz & Chintala, ICLR 2016) on MNIST.

    python train.py --n_epochs 50          # all flags: python train.py --help
    python train.py --resume auto          # continue the newest checkpoint in weights/

Writes weights and checkpoints to --weights_dir, images and training logs to --results_dir
and TensorBoard events to --log_dir (see README.md, "What a run leaves behind").
"""

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.optim import Adam
from torch.utils.data import DataLoader
from tqdm import tqdm

from models import Discriminator, Generator, Judge
from utils.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_judge,
    save_atomic,
    save_checkpoint,
)
from utils.data_loader import load_mnist, make_loader
from utils.errors import ArgumentError, UserError
from utils.files import TEMPORARY_GLOB, atomic_path
from utils.interrupt import GracefulStop
from utils.metrics import Reference, evaluate_generator, make_reference
from utils.recorder import TrainingRecorder
from utils.training import (
    STAT_NAMES,
    FastStep,
    amp_supported,
    describe_code,
    describe_machine,
    get_rng_states,
    resolve_device,
    seed_everything,
    set_rng_states,
)
from utils.visualization import save_progress_gif
from utils.visualize import digit_endpoints, generate_fixed_noise_grid, save_interpolation_grid

INTERPOLATION_ROWS, INTERPOLATION_STEPS = 8, 10
# Flags that change what is computed: at --resume they must match the checkpoint.
FIXED_AT_RESUME = ("nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "limit_batches",
                   "amp")
NOT_INHERITED = ("resume", "device", "debug")  # taken from this command line only


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


def build_parser() -> argparse.ArgumentParser:
    """The command line; names and defaults follow the original README."""
    p = OneLineErrorParser(description="Train DCGAN on MNIST.", allow_abbrev=False)
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
    add("--weights_dir", default="weights", help="weights and checkpoints (default: %(default)s)")
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
    add("--checkpoint_interval", type=non_negative_int, default=200,
        help="also write a checkpoint every N batches inside an epoch; one is always written "
             "at each epoch's end and on Ctrl-C; 0 for epoch ends only (default: %(default)s)")
    add("--keep_checkpoints", type=positive_int, default=3,
        help="how many of the newest checkpoints to keep (default: %(default)s)")
    add("--eval_interval", type=non_negative_int, default=5,
        help="score the generator (FID and more, see evaluate.py) after the first epoch, every "
             "N epochs and after the last, keeping the best-FID generator as "
             "generator_best.pth; 0 turns it off (default: %(default)s)")
    add("--eval_samples", type=positive_int, default=10_000,
        help="samples per evaluation (default: %(default)s)")
    add("--judge", default="weights/judge.pth",
        help="the judge network (train_judge.py) for evaluation and for interpolations between "
             "chosen digits; without it interpolations run between random points "
             "(default: %(default)s)")
    add("--resume", metavar="PATH", default=None,
        help="continue a run exactly where a checkpoint left it: a checkpoint file, or 'auto' "
             "for the newest in --weights_dir (a fresh start if there is none). Flags left out "
             "are the run's own; n_epochs, intervals and folders may be changed, flags that "
             f"change the computation ({', '.join(FIXED_AT_RESUME)}) may not "
             "(default: start afresh)")
    add("--amp", action="store_true",
        help="bfloat16 autocast for the networks (CUDA, and CPUs with AVX512-BF16 or AMX): "
             "faster, slightly different numbers; losses, BatchNorm statistics and weights stay "
             "float32 (default: off)")
    add("--compile", action="store_true",
        help="torch.compile both networks: the same numbers up to rounding, faster after a "
             "compilation of a minute or more at the start (default: off)")
    add("--debug", action="store_true", help="show the traceback of errors (default: off)")
    return p


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, set[str]]:
    """Parse and check ``argv``; also return the names of the flags it gave explicitly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {token[2:].split("=")[0] for token in argv if token.startswith("--")}
    try:
        args.device = str(resolve_device(args.device))
    except ArgumentError as error:
        parser.error(str(error))
    if args.amp and not amp_supported(torch.device(args.device)):
        parser.error(f"--amp: this {args.device} has no native bfloat16; train without --amp")
    return args, given


def apply_checkpoint_config(args: argparse.Namespace, given: set[str], config: dict) -> None:
    """Take every flag not given on this command line from the resumed run's ``config``."""
    for key, value in config.items():
        if key not in vars(args) or key in NOT_INHERITED:
            continue
        if key in given and key in FIXED_AT_RESUME and getattr(args, key) != value:
            raise ArgumentError(f"--{key} {getattr(args, key)} differs from the resumed run's "
                                f"{value}; leave --{key} out to resume, or start a new run")
        if key not in given:
            setattr(args, key, value)


def check_output_folders(args: argparse.Namespace) -> None:
    """Create the output folders and try writing in each, before any training.

    Also removes the temporary files that a run killed mid-write left behind.
    """
    for flag in ("results_dir", "weights_dir", "log_dir"):
        folder = Path(getattr(args, flag))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
            for leftover in folder.glob(TEMPORARY_GLOB):
                leftover.unlink()
        except OSError as error:
            raise ArgumentError(f"--{flag} {folder}: cannot create or write there "
                                f"({error.strerror}); choose a writable folder") from None


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


class NonFiniteLossError(UserError):
    """A loss or discriminator output became NaN or infinite."""


def train_epoch(run: Run, recorder: TrainingRecorder, stop: GracefulStop) -> bool:
    """Train the rest of ``run.epoch``; False if stopped early by a signal (checkpoint written)."""
    args = run.args
    bar = tqdm(epoch_batches(run), total=run.n_batches, initial=run.batch, unit="batch",
               desc=f"epoch {run.epoch}/{args.n_epochs}", dynamic_ncols=True)
    for real in bar:
        stats = run.train_step(real)
        run.batch, run.step = run.batch + 1, run.step + 1
        check_finite(recorder.log_step(run.epoch, run.batch, run.step, stats), bar, args)
        if run.step % args.sample_interval == 0:
            with evaluating(run.netG):
                generate_fixed_noise_grid(run.netG, run.fixed_noise,
                                          results(args, f"sample_step_{run.step}"))
        if run.batch < run.n_batches and (stop.signum or (
                args.checkpoint_interval and run.step % args.checkpoint_interval == 0)):
            check_finite(recorder.flush(), bar, args)  # never checkpoint diverged weights
            run.save_checkpoint()
            recorder.export_json()
            if stop.signum:
                bar.close()
                return False
    check_finite(recorder.flush(), bar, args)
    return True


def check_finite(records: list[dict[str, float]], bar: tqdm, args: argparse.Namespace) -> None:
    """Stop on the first record with a NaN or infinite number; show the last on the bar."""
    for record in records:
        bad = {name: value for name, value in record.items() if not math.isfinite(value)}
        if bad:
            found = ", ".join(f"{name}={value}" for name, value in bad.items())
            last = latest_checkpoint(Path(args.weights_dir)) or "none"
            raise NonFiniteLossError(
                f"training diverged at step {record['step']} (epoch {record['epoch']}, batch "
                f"{record['batch']}): {found}; stopped without saving; the last good checkpoint "
                f"is {last}; a lower --lr may help")
    if records:
        bar.set_postfix({name: f"{records[-1][name]:.3f}" for name in STAT_NAMES[:4]},
                        refresh=False)


def end_epoch(run: Run, recorder: TrainingRecorder) -> None:
    """Per-epoch outputs: the fixed-noise grid, interpolation, weights, logs, checkpoint."""
    args, epoch, weights_dir = run.args, run.epoch, Path(run.args.weights_dir)
    run.epochs_done, run.batch = epoch, 0
    last = epoch == args.n_epochs
    with evaluating(run.netG):
        samples = generate_fixed_noise_grid(run.netG, run.fixed_noise,
                                            results(args, f"epoch_{epoch}_final"))
        if epoch % args.save_interval == 0 or last:
            endpoints = run.endpoints if run.judge is None else digit_endpoints(
                run.netG, run.judge, run.endpoint_pool)
            save_interpolation_grid(run.netG, endpoints,
                                    results(args, f"interpolation_epoch_{epoch}"),
                                    n_steps=INTERPOLATION_STEPS)
    recorder.log_epoch(run.step, samples)
    if run.reference is not None and (epoch % args.eval_interval == 0 or epoch == 1 or last):
        scores = evaluate_generator(run.netG, run.judge, run.reference, args.eval_samples,
                                    seed=args.seed)
        recorder.log_evaluation(epoch, run.step, scores)
        tqdm.write(f"epoch {epoch}: FID {scores['fid']:.3f}, Inception Score "
                   f"{scores['inception_score']:.2f}, coverage {scores['coverage']:.3f}")
        if scores["fid"] < run.best_fid:
            run.best_fid = scores["fid"]
            save_atomic(cpu_state(run.netG), weights_dir / "generator_best.pth")
    if epoch % args.save_interval == 0:
        save_atomic(cpu_state(run.netG), weights_dir / f"generator_epoch_{epoch}.pth")
        save_atomic(cpu_state(run.netD), weights_dir / f"discriminator_epoch_{epoch}.pth")
    run.save_checkpoint()


def results(args: argparse.Namespace, name: str) -> Path:
    """Path of the PNG ``name`` in the results folder."""
    return Path(args.results_dir) / f"{name}.png"


def write_config(run: Run) -> None:
    """Save the run's resolved configuration (and provenance) as results/config.json."""
    with atomic_path(Path(run.args.results_dir) / "config.json") as tmp:
        tmp.write_text(json.dumps(run.config, indent=2) + "\n")


def find_resume_checkpoint(args: argparse.Namespace) -> dict | None:
    """The checkpoint that --resume names, or None to start afresh."""
    if args.resume is None:
        return None
    path = Path(args.resume)
    if args.resume == "auto":
        path = latest_checkpoint(Path(args.weights_dir))
        if path is None:
            print(f"--resume auto: no checkpoint in {args.weights_dir}/, starting afresh")
            return None
    checkpoint = load_checkpoint(path)
    print(f"resuming {path}: {checkpoint['epochs_done']} epochs and {checkpoint['batch']} "
          f"batches done (step {checkpoint['step']})")
    return checkpoint


def train(args: argparse.Namespace, given: set[str]) -> int:
    """Train, writing every output as it goes; returns the exit status."""
    checkpoint = find_resume_checkpoint(args)
    if checkpoint is not None:
        apply_checkpoint_config(args, given, checkpoint["config"])
    check_output_folders(args)
    print(f"device: {args.device}")
    images, _ = load_mnist(args.data_dir, train=True)
    run = build_run(args, images)
    run.judge, run.reference = load_judging(args, images)
    if checkpoint is not None:
        run.restore(checkpoint)
        resumed = {"at": time.strftime("%Y-%m-%d %H:%M:%S"), "step": run.step,
                   "command": shlex.join(["python", "train.py", *sys.argv[1:]]),
                   "code": describe_code()}
        run.config = {**checkpoint["config"], **vars(args), "run_name": run.run_name,
                      "resumed": [*checkpoint["config"].get("resumed", []), resumed]}
    write_config(run)
    run.session_start = time.time()  # training time starts now, after the set-up
    # Reading numbers back stalls a GPU but costs nothing on a CPU.
    recorder = TrainingRecorder(Path(args.results_dir), Path(args.log_dir) / run.run_name,
                                resume_step=run.step if checkpoint else None,
                                flush_every=1 if args.device == "cpu" else 50)
    recorder.tensorboard.add_text("config", f"```\n{json.dumps(run.config, indent=2)}\n```")
    print(f"{len(images)} images, {run.n_batches} batches an epoch; TensorBoard: "
          f"tensorboard --logdir={args.log_dir}")

    started = time.time()
    with GracefulStop() as stop, recorder:
        while run.epochs_done < args.n_epochs:
            if not train_epoch(run, recorder, stop):
                break
            end_epoch(run, recorder)
            if stop.signum:
                break
    if stop.signum:
        command = shlex.join(["python", "train.py", "--resume",
                              str(latest_checkpoint(Path(args.weights_dir)))])
        print(f"stopped after step {run.step}; to continue: {command}", file=sys.stderr)
        return stop.exit_code
    weights_dir = Path(args.weights_dir)
    save_atomic(cpu_state(run.netG), weights_dir / "generator_final.pth")
    save_atomic(cpu_state(run.netD), weights_dir / "discriminator_final.pth")
    save_progress_gif(args.results_dir, Path(args.results_dir) / "training_progress.gif")
    run.record_time()
    run.config["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_config(run)
    print(f"done in {time.time() - started:.0f} s: weights in {weights_dir}/, "
          f"images and logs in {args.results_dir}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and train; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args, given = parse_args(argv)
    try:
        return train(args, given)
    except (UserError, OSError, KeyboardInterrupt) as error:
        if args.debug:
            raise
        if isinstance(error, KeyboardInterrupt):  # before training began: nothing to save
            print("train.py: interrupted before training began", file=sys.stderr)
            return 130
        if isinstance(error, OSError):  # e.g. a full disk; files are replaced atomically
            error = UserError(f"{error}; every file written before is complete, and "
                              f"--resume auto continues from the last checkpoint")
        print(f"train.py: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
