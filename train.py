"""Train DCGAN (Radford, Metz & Chintala, ICLR 2016) on MNIST.

    python train.py --n_epochs 50          # all flags: python train.py --help
    python train.py --resume auto          # continue the run trained last

Read top to bottom: the flags, the MNIST batches, the two networks and their Adam
optimisers, then the loop, whose step is ``utils/step.py: gan_step``, and which shows when
each output is written. What is not the GAN's (the run's folders, lock, position,
checkpoints, signals) is ``utils/run.py``; the logs are ``utils/recorder.py``.
"""

import argparse
import math
import shlex
import sys
import threading
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
from torch.optim import Adam
from tqdm import tqdm

from models import Discriminator, Generator, Judge
from utils.averaging import GeneratorAverage
from utils.checkpoint import CheckpointError, cpu_state, load_judge, save_atomic
from utils.cli import (
    OneLineErrorParser,
    folder_name,
    in_repository,
    int_at_least,
    non_negative_int,
    path,
    positive_float,
    positive_int,
    report,
    seed,
    unit_interval,
)
from utils.config import FIXED_AT_RESUME, open_run
from utils.data_loader import load_mnist, make_loader
from utils.device import fastest_memory_format, note_unused_gpu
from utils.metrics import MIN_SAMPLES, evaluate_generator, make_reference
from utils.recorder import TrainingLog, quiet_tensorboard_thread
from utils.run import Run
from utils.step import gan_step
from utils.visualize import (
    INTERPOLATION_ROWS,
    digit_endpoints,
    evaluating,
    generate_fixed_noise_grid,
    save_interpolation_grid,
    save_progress_gif,
)

INTERPOLATION_STEPS = 10  # images a row of the interpolation grids


def build_parser() -> argparse.ArgumentParser:
    """The command line, the one definition of every flag; names follow the original README."""
    p = OneLineErrorParser(prog="train.py", description="Train DCGAN on MNIST.", allow_abbrev=False)
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
    add("--data_dir", type=path, default="data",
        help="folder holding MNIST/raw; MNIST is downloaded there if missing "
             "(default: %(default)s)")
    add("--results_dir", type=path, default="results",
        help="images and training logs go to a sub-folder per run (default: %(default)s)")
    add("--weights_dir", type=path, default="weights",
        help="weights and checkpoints go to a sub-folder per run (default: %(default)s)")
    add("--log_dir", type=path, default="logs",
        help="TensorBoard logs go to a sub-folder per run (default: %(default)s)")
    add("--run_name", type=folder_name, default=None,
        help="the run's sub-folder name in the three folders above; folders that exist are "
             "never taken (default: the start time, YYYYmmdd-HHMMSS, with -2, -3, ... if taken)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="auto picks cuda, then mps (Apple GPUs), then cpu (default: %(default)s)")
    add("--seed", type=seed, default=0,
        help="seed of the weights, the noise and the data order, in [0, 2**32) "
             "(default: %(default)s)")
    add("--limit_batches", type=positive_int, default=None,
        help="train only the first N batches of each epoch, for smoke tests and quick looks "
             "(default: all)")
    add("--checkpoint_interval", type=non_negative_int, default=200,
        help="also write a checkpoint every N batches inside an epoch; one is always written "
             "at the start, at each epoch's end and on Ctrl-C; 0 for those only "
             "(default: %(default)s)")
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
    add("--judge", type=path, default=in_repository("weights/judge.pth"),
        help="the judge network (train_judge.py) for evaluation and for interpolations between "
             "chosen digits; without it, training goes on without both (default: %(default)s)")
    add("--resume", type=path, metavar="PATH", default=None,
        help="continue a run exactly where a checkpoint left it: a checkpoint file, a run's "
             "weights folder (its newest readable checkpoint), or 'auto' for the run trained "
             "last in --weights_dir (with --run_name: that run; a new run if there is none). "
             "The run's name is its checkpoint's folder's; every path (--data_dir, --judge, "
             "the three folders of the run) and --device are this command line's, as for a new "
             "run; a checkpoint not in <weights_dir>/<run> gets new folders. Other flags left "
             "out are the run's own; those that change the computation "
             f"({', '.join(FIXED_AT_RESUME)}) cannot change (default: a new run)")
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


def load_judge_or_warn(config: object) -> Judge | None:
    """The judge, for evaluation and digit interpolations; a missing file is only a warning."""
    if not config.eval_interval and not Path(config.judge).is_file():
        return None  # interpolations between random points, no evaluation
    try:
        return load_judge(config.judge, config.device)
    except CheckpointError as error:
        print(f"train.py: warning: {error}; training without evaluation, and with "
              "interpolations between random points", file=sys.stderr)
        return None


def train(run: Run) -> None:
    """DCGAN on MNIST: the batches, the networks, their optimisers, and the loop."""
    config, device = run.config, torch.device(run.config.device)
    # cuDNN's autotuner picks the fastest convolution algorithms, which may differ run to run.
    torch.backends.cudnn.benchmark = not config.deterministic
    torch.backends.cudnn.deterministic = config.deterministic
    print(f"device: {config.device}")
    note_unused_gpu(device)
    torch.manual_seed(config.seed)  # the networks' weights and noise, on every device

    # MNIST as one tensor in [-1, 1] on the device, shuffled anew each epoch by run.data_order.
    images, _ = load_mnist(config.data_dir, train=True)
    loader = make_loader(images.to(device), config.batch_size, run.data_order)
    run.start(loader)

    # The networks of models/ and their optimisers: Adam, betas (0.5, 0.999) (paper, sec. 4).
    memory_format = fastest_memory_format(device)
    netG = Generator(config.nz, config.ngf).to(device, memory_format=memory_format)
    netD = Discriminator(config.ndf).to(device, memory_format=memory_format)
    optimizer_G = Adam(netG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    optimizer_D = Adam(netD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    average = GeneratorAverage(netG, config.ema_decay, config.seed) if config.ema_decay else None
    judge = load_judge_or_warn(config)  # Judge() draws from the random state: before the noise
    fixed_noise = torch.randn(64, config.nz, 1, 1, device=device)  # every sample grid's
    endpoints = torch.randn(2, INTERPOLATION_ROWS, config.nz, 1, 1, device=device)
    best_fid = math.inf  # of the generator's evaluations so far

    def state() -> dict:
        """What a checkpoint holds of the GAN (the run adds its position and random states)."""
        return {"generator": netG.state_dict(), "discriminator": netD.state_dict(),
                "optimizer_G": optimizer_G.state_dict(), "optimizer_D": optimizer_D.state_dict(),
                "average": average and average.state_dict(), "fixed_noise": fixed_noise,
                "endpoints": endpoints, "best_fid": best_fid}

    if run.checkpoint is not None:
        with run.restoring() as saved:  # everything as the checkpoint left it
            netG.load_state_dict(saved["generator"])
            netD.load_state_dict(saved["discriminator"])
            optimizer_G.load_state_dict(saved["optimizer_G"])
            optimizer_D.load_state_dict(saved["optimizer_D"])
            if average is not None:
                average.load_state_dict(saved["average"])
            fixed_noise.copy_(saved["fixed_noise"])
            endpoints.copy_(saved["endpoints"])
            best_fid = saved["best_fid"]
    run.save(state())  # resumable from its first moment, from a checkpoint in its own folder
    reference = None  # what evaluations compare with: the test set through the judge
    if judge is not None and config.eval_interval:
        reference = make_reference(judge, *load_mnist(config.data_dir, train=False), images)

    # Speed-ups that compute the same step (docs/performance.md): bfloat16 autocast,
    # compiled networks (sharing the parameters of netG and netD), channels-last batches.
    autocast = (partial(torch.autocast, device.type, dtype=torch.bfloat16) if config.amp
                else nullcontext)
    stepG, stepD = (torch.compile(netG), torch.compile(netD)) if config.compile else (netG, netD)
    # Reading numbers back stalls a GPU but costs nothing on a CPU.
    log = TrainingLog(run.results, run.logs, run.step, 1 if device.type == "cpu" else 50)
    log.log_config(run.config_record())

    def image(name: str) -> Path:
        return run.results / f"{name}.png"

    for epoch in run.epochs():
        for real in run.batches(loader):  # the epoch's batches; after a resume, the same ones
            real = real.to(memory_format=memory_format)
            stats = gan_step(stepG, stepD, optimizer_G, optimizer_D, real, config.nz, autocast)
            if average is not None:
                average.update(netG)
            log.log_step(epoch, run.batch, run.step, stats)  # CSV and TensorBoard
            if run.step % config.sample_interval == 0:
                with evaluating(netG):
                    generate_fixed_noise_grid(netG, fixed_noise, image(f"sample_step_{run.step}"))
            if run.checkpoint_due():  # every --checkpoint_interval batches, or after Ctrl-C
                log.flush()  # stops if training diverged: no checkpoint of such weights
                log.export_json()
                run.save(state())

        # The epoch's end: grids of the generator and its average, an interpolation and the
        # weights every --save_interval epochs, scores every --eval_interval, a checkpoint.
        log.flush()
        last = epoch == config.n_epochs
        with evaluating(netG):
            samples = generate_fixed_noise_grid(netG, fixed_noise, image(f"epoch_{epoch}_final"))
            if epoch % config.save_interval == 0 or last:
                ends = (endpoints if judge is None else digit_endpoints(netG, judge, config.seed))
                save_interpolation_grid(netG, ends, image(f"interpolation_epoch_{epoch}"),
                                        n_steps=INTERPOLATION_STEPS)
        averaged = average and average.generator()  # BatchNorm statistics fit to its weights
        averaged_samples = None
        if averaged is not None:
            averaged_samples = generate_fixed_noise_grid(averaged, fixed_noise,
                                                         image(f"epoch_{epoch}_ema"))
            save_atomic(cpu_state(averaged), run.weights / "generator_ema.pth")
        log.log_epoch(run.step, samples, averaged_samples)
        if reference is not None and (epoch % config.eval_interval == 0 or epoch == 1 or last):
            for name, scored in (("raw", netG), ("ema", averaged)):
                if scored is None:
                    continue
                tqdm.write(f"epoch {epoch}, {name}: scoring {config.eval_samples} samples ...")
                scores = evaluate_generator(scored, judge, reference, config.eval_samples,
                                            seed=config.seed)
                log.log_evaluation(epoch, run.step, name, scores)
                tqdm.write(f"epoch {epoch}, {name}: FID {scores['fid']:.3f}, Inception Score "
                           f"{scores['inception_score']:.2f}, coverage {scores['coverage']:.3f}")
                if name == "raw" and scores["fid"] < best_fid:  # the best generator so far
                    best_fid = scores["fid"]
                    save_atomic(cpu_state(netG), run.weights / "generator_best.pth")
        if epoch % config.save_interval == 0:
            save_weights(run.weights, f"epoch_{epoch}", netG, netD)
        log.export_json()
        run.save(state())
    log.close()

    # The end: the progress animation, the configuration, then the final weights, last: their
    # presence says that the run has finished.
    save_progress_gif(run.results, run.results / "training_progress.gif", config.n_epochs)
    run.write_config()
    save_weights(run.weights, "final", netG, netD)
    draw = ["python", in_repository("generate.py"), f"--weights={run.weights}/generator_final.pth"]
    print(f"done in {time.time() - run.started:.0f} s: weights in {run.weights}/, images in "
          f"{run.results}/, TensorBoard logs in {run.logs}/; draw digits with: {shlex.join(draw)}")


def save_weights(folder: Path, suffix: str, netG: Generator, netD: Discriminator) -> None:
    """Both networks as plain CPU state dicts, ``{generator,discriminator}_{suffix}.pth``."""
    save_atomic(cpu_state(netG), folder / f"generator_{suffix}.pth")
    save_atomic(cpu_state(netD), folder / f"discriminator_{suffix}.pth")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and train; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    flags = vars(build_parser().parse_args(argv))
    given = {token[2:].split("=")[0] for token in argv if token.startswith("--")}
    threading.excepthook = quiet_tensorboard_thread  # TensorBoard's errors: one line, below
    try:
        run = open_run(flags, given, shlex.join(["python", "train.py", *argv]))
        if run is None:  # finished already
            return 0
        with run:  # signals from here on: a checkpoint, then the command that continues
            train(run)
        return run.exit_code
    except (Exception, KeyboardInterrupt) as error:  # Ctrl-C: before the run began
        if flags["debug"]:
            raise
        return report("train.py", error, "smaller --nz, --ngf, --ndf or --batch_size may fit")


if __name__ == "__main__":
    sys.exit(main())
