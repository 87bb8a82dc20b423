"""Train DCGAN (Radford, Metz & Chintala, ICLR 2016) on MNIST.

    python train.py --n_epochs 50          # all flags: python train.py --help
    python train.py --resume auto          # continue the run trained last

Each run gets its own folders, named after its start time (or --run_name):
weights/<run>/ for weights and checkpoints, results/<run>/ for images and training logs,
logs/<run>/ for TensorBoard (see README.md, "What a run leaves behind"). The shipped model
at the top of weights/ and results/ is never written.
"""

import argparse
import dataclasses
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch.optim import Adam

from models import Discriminator, Generator, Judge
from utils.averaging import GeneratorAverage
from utils.checkpoint import CheckpointError, load_judge
from utils.cli import (
    OneLineErrorParser,
    check_output_folder,
    describe,
    folder_name,
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
    report,
    seed,
    unit_interval,
)
from utils.config import FIXED_AT_RESUME, TrainConfig, make_config
from utils.data_loader import load_mnist, make_loader
from utils.device import fastest_memory_format, is_out_of_memory
from utils.errors import ArgumentError, UserError
from utils.interrupt import GracefulStop
from utils.metrics import MIN_SAMPLES, Reference, make_reference
from utils.provenance import describe_code, describe_machine
from utils.random_state import seed_everything
from utils.recorder import quiet_tensorboard_thread
from utils.run_folders import (
    RunFolders,
    RunLock,
    auto_run,
    create_run_folders,
    default_run_name,
    discard_if_unused,
    find_checkpoint,
    make_run_folders,
    remove_leftovers,
    restartable_config,
)
from utils.step import FastStep
from utils.train_loop import INTERPOLATION_ROWS, TrainLoop


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
    add("--results_dir", default="results",
        help="images and training logs go to a sub-folder per run (default: %(default)s)")
    add("--weights_dir", default="weights",
        help="weights and checkpoints go to a sub-folder per run (default: %(default)s)")
    add("--log_dir", default="logs",
        help="TensorBoard logs go to a sub-folder per run (default: %(default)s)")
    add("--run_name", type=folder_name, default=None,
        help="the run's sub-folder name in the three folders above; an existing run is "
             "never overwritten (default: the start time, YYYYmmdd-HHMMSS)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="auto picks cuda, then mps, then cpu (default: %(default)s)")
    add("--seed", type=seed, default=0,
        help="seed of Python, NumPy and PyTorch, in [0, 2**32) (default: %(default)s)")
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
        help="how many of the run's newest checkpoints to keep (default: %(default)s)")
    add("--eval_interval", type=non_negative_int, default=5,
        help="score the generator and its average (FID and more, see evaluate.py) after the "
             "first epoch, every N epochs and after the last, keeping the best-FID generator as "
             "generator_best.pth; 0 turns it off (default: %(default)s)")
    add("--eval_samples", type=int_at_least(MIN_SAMPLES), default=10_000,
        help=f"samples per evaluation, at least {MIN_SAMPLES} (default: %(default)s)")
    add("--ema_decay", type=unit_interval, default=0.999,
        help="also keep an exponential moving average of the generator's weights with this "
             "decay, reached after a warm-up (see utils/averaging.py), saved as "
             "generator_ema.pth and scored beside the generator; 0 turns it off "
             "(default: %(default)s)")
    add("--judge", default="weights/judge.pth",
        help="the judge network (train_judge.py) for evaluation and for interpolations between "
             "chosen digits; without it, training goes on without both (default: %(default)s)")
    add("--resume", metavar="PATH", default=None,
        help="continue a run exactly where a checkpoint left it: a checkpoint file, a run's "
             "weights folder (its newest readable checkpoint), or 'auto' for the run trained "
             "last in --weights_dir (with --run_name: that run; a new run if there is none). "
             "Flags left out are the run's own; n_epochs, intervals and folders may be "
             f"changed, flags that change the computation ({', '.join(FIXED_AT_RESUME)}) may "
             "not (default: start a new run)")
    add("--amp", action="store_true",
        help="bfloat16 autocast for the networks (CUDA, and CPUs with AVX512-BF16 or AMX): "
             "faster, slightly different numbers; losses, BatchNorm statistics and weights stay "
             "float32 (default: off)")
    add("--compile", action="store_true",
        help="torch.compile both networks: the same numbers up to rounding; costs a compilation "
             "at the start (about 20 s on a 2-core CPU) (default: off)")
    add("--deterministic", action="store_true",
        help="deterministic cuDNN algorithms on a GPU, so that a resumed run repeats an "
             "unbroken one exactly there too; slower (default: off, cuDNN picks the fastest)")
    add("--debug", action="store_true", help="show the traceback of errors (default: off)")
    return p


def parse_args(argv: list[str]) -> tuple[dict, set[str]]:
    """The flags of ``argv`` (defaults included), and the names of those it gave explicitly."""
    flags = vars(build_parser().parse_args(argv))
    given = {token[2:].split("=")[0] for token in argv if token.startswith("--")}
    return flags, given


def check_output_roots(config: TrainConfig) -> None:
    """Create the three output folders and try writing in each, before any training."""
    for flag in ("results_dir", "weights_dir", "log_dir"):
        check_output_folder(getattr(config, flag), f"--{flag}")


def load_judging(config: TrainConfig,
                 train_images: torch.Tensor) -> tuple[Judge | None, Reference | None]:
    """The judge and the evaluation reference, as far as the flags ask for and files allow.

    Training is the main job: without a usable judge file, it goes on with a warning.
    """
    if not config.eval_interval and not Path(config.judge).is_file():
        return None, None  # interpolations between random points, no evaluation
    try:
        judge = load_judge(config.judge, config.device)
    except CheckpointError as error:
        print(f"train.py: warning: {error}; training without evaluation, and with "
              "interpolations between random points", file=sys.stderr)
        return None, None
    if not config.eval_interval:
        return judge, None
    test_images, test_labels = load_mnist(config.data_dir, train=False)
    return judge, make_reference(judge, test_images, test_labels, train_images)


def build_loop(config: TrainConfig, folders: RunFolders, images: torch.Tensor, record: dict,
               restarted: bool = False) -> TrainLoop:
    """The DCGAN networks of models/, their optimisers, the MNIST batches: a run at step 0."""
    device = torch.device(config.device)
    seed_everything(config.seed)
    memory_format = fastest_memory_format(device)
    netG = Generator(config.nz, config.ngf).to(device, memory_format=memory_format)
    netD = Discriminator(config.ndf).to(device, memory_format=memory_format)
    betas = (config.beta1, 0.999)  # DCGAN paper, section 4
    optimizer_G = Adam(netG.parameters(), lr=config.lr, betas=betas)
    optimizer_D = Adam(netD.parameters(), lr=config.lr, betas=betas)
    loader_rng = torch.Generator().manual_seed(config.seed)
    judge, reference = load_judging(config, images)
    if config.num_workers == 0:  # no worker processes: the images can live on the device
        images = images.to(device)
    return TrainLoop(
        config, folders, netG, netD, optimizer_G, optimizer_D,
        train_step=FastStep(netG, netD, optimizer_G, optimizer_D, config.nz, device,
                            memory_format, amp=config.amp, compile=config.compile),
        loader=make_loader(images, config.batch_size, loader_rng, config.num_workers,
                           pin_memory=device.type == "cuda"),
        loader_rng=loader_rng,
        fixed_noise=torch.randn(64, config.nz, 1, 1, device=device),
        endpoints=torch.randn(2, INTERPOLATION_ROWS, config.nz, 1, 1, device=device),
        # its own generator: does not move the global random state
        endpoint_pool=torch.randn(1024, config.nz, 1, 1,
                                  generator=torch.Generator().manual_seed(config.seed)
                                  ).to(device),
        average=GeneratorAverage(netG, config.ema_decay, config.seed) if config.ema_decay else None,
        judge=judge, reference=reference, record=record, restarted=restarted)


class RunChoice(NamedTuple):
    """What ``choose_run`` decided."""

    flags: dict  # with the run's name, and when resuming its weights root as weights_dir
    checkpoint: tuple[Path, dict] | None  # the checkpoint to resume: path, contents
    inherit: dict | None  # the configuration that flags not given are taken from
    restart: bool  # a run stopped before its first checkpoint starts again in its folders


def choose_run(flags: dict, given: set[str]) -> RunChoice:
    """Which run this command trains: a resumed one, one started again, or a new one."""
    resume = flags["resume"]
    if resume == "auto":
        run_dir = auto_run(flags["weights_dir"], "run_name" in given and flags["run_name"])
    else:
        run_dir = Path(resume) if resume is not None and Path(resume).is_dir() else None
    found = None if resume is None or (resume == "auto" and run_dir is None) else (
        find_checkpoint(resume, run_dir))
    if found is not None:
        path, checkpoint, skipped = found
        for reason in skipped:
            print(f"--resume: skipped {reason}", file=sys.stderr)
        print(f"resuming run {checkpoint['run_name']} from {path}: {checkpoint['epochs_done']} "
              f"epochs and {checkpoint['batch']} batches done (step {checkpoint['step']})")
        # a run's folder is where its checkpoint is
        return RunChoice({**flags, "weights_dir": str(path.parent.parent)}, (path, checkpoint),
                         checkpoint["config"], False)
    if resume == "auto" and run_dir is not None and run_dir.exists():
        inherit = restartable_config(run_dir, flags["results_dir"])
        return RunChoice({**flags, "run_name": run_dir.name}, None, inherit, True)
    if resume == "auto":
        named = f"named {flags['run_name']} " if "run_name" in given else ""
        print(f"--resume auto: no run {named}in {flags['weights_dir']}/ to continue, "
              "starting a new run")
    return RunChoice({**flags, "run_name": flags["run_name"] or default_run_name()}, None, None,
                     False)


def train(flags: dict, given: set[str], command: str) -> int:
    """Set up a new or resumed run, train it, write its outputs; returns the exit status."""
    flags, resumed, inherit, restart = choose_run(flags, given)
    config = make_config(flags, given, inherit)
    check_output_roots(config)
    # cuDNN's autotuner picks the fastest convolution algorithms, which may differ run to run.
    torch.backends.cudnn.benchmark = not config.deterministic
    torch.backends.cudnn.deterministic = config.deterministic
    print(f"device: {config.device}")
    images, _ = load_mnist(config.data_dir, train=True)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    if resumed is None:
        folders = create_run_folders(config.run_name, config.weights_dir, config.results_dir,
                                     config.log_dir, name_given="run_name" in given,
                                     reuse=restart)
        config = dataclasses.replace(config, run_name=folders.name)  # a suffix if it was taken
        record = {"train_images": len(images), "command": command, "code": describe_code(),
                  "machine": describe_machine(torch.device(config.device)), "started": now}
    else:
        folders = RunFolders.under(config.run_name, config.weights_dir, config.results_dir,
                                   config.log_dir)
        make_run_folders(folders)  # the results or logs may be given a new place
        record = {key: value for key, value in resumed[1]["config"].items()
                  if key not in config.to_dict()}  # provenance: command, code, machine, ...
        record["resumed"] = [*record.get("resumed", []), {
            "at": now, "step": resumed[1]["step"], "command": command, "code": describe_code()}]
    if resumed is not None:
        epochs_done, batch = resumed[1]["epochs_done"], resumed[1]["batch"]
        if (epochs_done, batch) > (config.n_epochs, 0):
            where = f"in epoch {epochs_done + 1}" if batch else f"after epoch {epochs_done}"
            raise ArgumentError(f"--n_epochs {config.n_epochs}: the checkpoint is {where}, past "
                                "it; give a larger --n_epochs, or resume an earlier checkpoint")
        if epochs_done >= config.n_epochs and (folders.weights / "generator_final.pth").is_file():
            print(f"run {folders.name} has finished its {config.n_epochs} epochs; its weights "
                  f"are in {folders.weights}/; give a larger --n_epochs to train it further")
            return 0
    lock = RunLock(folders)
    try:
        if restart:
            print(f"--resume auto: run {folders.name} stopped before its first checkpoint; "
                  "starting it again")
        if resumed is not None or restart:
            remove_leftovers(folders, restart=restart)
        loop = build_loop(config, folders, images, record, restarted=restart)
        if resumed is not None:
            loop.load_state_dict(resumed[1], source=resumed[0])
        print(f"run {folders.name}: {len(images)} images, {loop.n_batches} batches an epoch; "
              f"TensorBoard: tensorboard --logdir={config.log_dir}")
        return run(loop)
    finally:
        lock.release()
        if resumed is None:
            discard_if_unused(folders)


def run(loop: TrainLoop) -> int:
    """Train ``loop`` to its end; one line on any failure, with the command that continues."""
    started, folders = time.time(), loop.folders
    try:
        with GracefulStop() as stop:  # signals wait for the final files too
            if loop.run_loop(stop):
                loop.finish()
    except UserError:
        raise
    except Exception as error:  # a full disk, out of memory, a CUDA error, ...
        if is_out_of_memory(error):
            cause = (f"out of memory at step {loop.step} on {loop.config.device}; a smaller "
                     "--batch_size (or --eval_samples) may fit")
        else:
            cause = f"{describe(error)}; stopped at step {loop.step}"
        raise UserError(f"{cause}; every file written before is complete; "
                        f"{loop.resume_hint()}") from error
    if stop.signum and loop.epochs_done < loop.config.n_epochs:
        print(f"stopped after step {loop.step}; {loop.resume_hint()}", file=sys.stderr)
        return stop.exit_code
    print(f"done in {time.time() - started:.0f} s: weights in {folders.weights}/, images and "
          f"logs in {folders.results}/; draw digits with: python generate.py --weights "
          f"{folders.weights / 'generator_final.pth'}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM before training began: handled like Ctrl-C."""


def terminate(signum: int, frame: object) -> None:
    """SIGTERM handler for the set-up; GracefulStop takes over while training."""
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and train; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    flags, given = parse_args(argv)
    threading.excepthook = quiet_tensorboard_thread  # TensorBoard's errors: one line, below
    signal.signal(signal.SIGTERM, terminate)
    try:
        return train(flags, given, shlex.join(["python", "train.py", *argv]))
    except KeyboardInterrupt as error:  # before training began (signals are handled during it)
        if flags["debug"]:
            raise
        print("train.py: interrupted before training began", file=sys.stderr)
        return 143 if isinstance(error, Terminated) else 130
    except Exception as error:
        if flags["debug"]:
            raise
        return report("train.py", error, "smaller --nz, --ngf, --ndf or --batch_size may fit")


if __name__ == "__main__":
    sys.exit(main())
