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
from pathlib import Path

import torch
from tqdm import tqdm

from utils.checkpoint import cpu_state, latest_checkpoint, load_checkpoint, save_atomic
from utils.cli import (
    OneLineErrorParser,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)
from utils.data_loader import load_mnist
from utils.errors import ArgumentError, UserError
from utils.files import TEMPORARY_GLOB, atomic_path
from utils.interrupt import GracefulStop
from utils.metrics import evaluate_generator
from utils.recorder import TrainingRecorder
from utils.run import Run, build_run, epoch_batches, load_judging
from utils.training import STAT_NAMES, amp_supported, describe_code, evaluating, resolve_device
from utils.visualization import save_progress_gif
from utils.visualize import digit_endpoints, generate_fixed_noise_grid, save_interpolation_grid

INTERPOLATION_STEPS = 10
# Flags that change what is computed: at --resume they must match the checkpoint.
FIXED_AT_RESUME = ("nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "limit_batches",
                   "amp")
NOT_INHERITED = ("resume", "device", "debug")  # taken from this command line only


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
        help="torch.compile both networks: the same numbers up to rounding; costs a compilation "
             "at the start (about 20 s on a 2-core CPU) (default: off)")
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
