"""The training loop: one object owns a run's state and is the only one to advance it.

``TrainLoop`` holds the networks, optimisers, data order and position of a run, and writes
its outputs into the run's own folders. Its counters (``epochs_done``, ``batch``, ``step``)
change in two places only, ``run_step`` and ``end_epoch``; ``state_dict`` and
``load_state_dict`` are all a checkpoint saves and restores. train.py builds the pieces and
calls ``run_loop``, then ``finish``.
"""

import json
import math
import sys
import time
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.utils.data import DataLoader
from tqdm import tqdm

from models import Discriminator, Generator, Judge
from utils.averaging import GeneratorAverage
from utils.checkpoint import cpu_state, save_atomic, save_checkpoint
from utils.config import TrainConfig
from utils.errors import UserError
from utils.files import atomic_path
from utils.interrupt import GracefulStop
from utils.metrics import Reference, evaluate_generator
from utils.random_state import get_rng_states, set_rng_states
from utils.recorder import COLUMNS, TrainingRecorder
from utils.run_folders import RunFolders
from utils.step import STAT_NAMES, FastStep
from utils.visualization import save_progress_gif
from utils.visualize import (
    digit_endpoints,
    evaluating,
    generate_fixed_noise_grid,
    save_interpolation_grid,
)

INTERPOLATION_ROWS = 8
INTERPOLATION_STEPS = 10


class NonFiniteLossError(UserError):
    """A loss or discriminator output became NaN or infinite."""


class TrainLoop:
    """A DCGAN training run: its state, its loop, its files.

    Args:
        config: the run's configuration.
        folders: the run's own weights, results and TensorBoard folders.
        netG, netD, optimizer_G, optimizer_D: the networks and their Adam optimisers.
        train_step: one GAN step on a batch of real images (``utils.step.FastStep``).
        loader: the shuffled training batches; ``loader_rng`` draws its order.
        fixed_noise: ``(64, nz, 1, 1)``, one noise batch for every grid, so epochs compare.
        endpoints: ``(2, rows, nz, 1, 1)``, interpolation endpoints when there is no judge.
        endpoint_pool: ``(M, nz, 1, 1)``, latent points among which the judge picks digits.
        average: the moving average of the generator (``--ema_decay``), or None.
        judge: the judge network, or None (random interpolation endpoints, no evaluation).
        reference: what evaluations compare with, or None for no evaluation.
        record: provenance (command, code, machine, start), saved with the configuration.
        restarted: the run starts again in its own folders (it stopped before its first
            checkpoint): its earlier log rows and TensorBoard events are dropped.
    """

    def __init__(self, config: TrainConfig, folders: RunFolders, netG: Generator,
                 netD: Discriminator, optimizer_G: Optimizer, optimizer_D: Optimizer,
                 train_step: FastStep, loader: DataLoader, loader_rng: torch.Generator,
                 fixed_noise: Tensor, endpoints: Tensor, endpoint_pool: Tensor,
                 average: GeneratorAverage | None, judge: Judge | None,
                 reference: Reference | None, record: dict, restarted: bool = False) -> None:
        self.config, self.folders, self.record = config, folders, record
        self.netG, self.netD = netG, netD
        self.optimizer_G, self.optimizer_D = optimizer_G, optimizer_D
        self.train_step, self.loader, self.loader_rng = train_step, loader, loader_rng
        self.fixed_noise, self.endpoints, self.endpoint_pool = fixed_noise, endpoints, endpoint_pool
        self.average, self.judge, self.reference = average, judge, reference
        # The position, advanced only by run_step and end_epoch.
        self.epochs_done = 0
        self.batch = 0  # batches done in the epoch in progress (0: it has not begun)
        self.step = 0  # batches done in the whole run
        self.epoch_start_rng: Tensor | None = None  # loader_rng's state when the epoch began
        self.best_fid = math.inf
        self.resumed = False
        self.restarted = restarted
        self.last_checkpoint: Path | None = None
        self.recorder: TrainingRecorder | None = None
        self._session_start = time.time()

    @property
    def epoch(self) -> int:
        """Number of the epoch in progress (or about to begin), from 1."""
        return self.epochs_done + 1

    @property
    def n_batches(self) -> int:
        """Batches in an epoch (fewer with --limit_batches)."""
        return min(len(self.loader), self.config.limit_batches or len(self.loader))

    # --- the state a checkpoint holds ---

    def state_dict(self) -> dict:
        """Everything needed to continue the run exactly; ``load_state_dict`` reads it back."""
        return {"generator": self.netG.state_dict(), "discriminator": self.netD.state_dict(),
                "optimizer_G": self.optimizer_G.state_dict(),
                "optimizer_D": self.optimizer_D.state_dict(),
                "epochs_done": self.epochs_done, "batch": self.batch, "step": self.step,
                "epoch_start_rng": self.epoch_start_rng, "rng": get_rng_states(self.loader_rng),
                "fixed_noise": self.fixed_noise, "interpolation_endpoints": self.endpoints,
                "generator_average": self.average and self.average.state_dict(),
                "run_name": self.folders.name, "config": self.config_record(),
                "best_fid": self.best_fid}

    def load_state_dict(self, checkpoint: dict, source: Path | None = None) -> None:
        """Continue from a ``state_dict`` (read onto the CPU; moved to the run's device here).

        ``source`` is the checkpoint's file: the last checkpoint, until the next is written.
        """
        self.last_checkpoint = source
        self.netG.load_state_dict(checkpoint["generator"])
        self.netD.load_state_dict(checkpoint["discriminator"])
        self.optimizer_G.load_state_dict(checkpoint["optimizer_G"])  # moves to the params'
        self.optimizer_D.load_state_dict(checkpoint["optimizer_D"])  # device
        self.fixed_noise = checkpoint["fixed_noise"].to(self.fixed_noise.device)
        self.endpoints = checkpoint["interpolation_endpoints"].to(self.endpoints.device)
        self.epochs_done, self.batch, self.step = (
            checkpoint[key] for key in ("epochs_done", "batch", "step"))
        self.epoch_start_rng = checkpoint["epoch_start_rng"]
        self.best_fid = checkpoint["best_fid"]
        if self.average is not None:
            if checkpoint.get("generator_average"):
                self.average.load_state_dict(checkpoint["generator_average"])
            else:  # written before --ema_decay existed (its config lacks it: the default)
                self.average = GeneratorAverage(self.netG, self.average.decay, self.config.seed)
                print(f"train.py: warning: the checkpoint has no average of the generator; "
                      f"averaging starts now, at step {self.step}", file=sys.stderr)
        set_rng_states(checkpoint["rng"], self.loader_rng)
        self.resumed = True

    def config_record(self) -> dict:
        """The configuration and provenance, as config.json and the checkpoints hold them."""
        return {**self.config.to_dict(), **self.record}

    def resume_hint(self) -> str:
        """What the user can do after the run stopped: the command that continues it."""
        if self.last_checkpoint is None:
            return "no checkpoint was written yet, so the run starts again from the beginning"
        return (f"the last checkpoint, {self.last_checkpoint}, is intact; to continue: "
                f"python train.py --resume {self.last_checkpoint}")

    # --- the loop ---

    def run_loop(self, stop: GracefulStop) -> bool:
        """Train up to ``n_epochs``; False if a signal stopped it (a checkpoint was written)."""
        self.write_config()
        # Reading numbers back stalls a GPU but costs nothing on a CPU.
        flush_every = 1 if self.fixed_noise.device.type == "cpu" else 50
        resume_step = self.step if self.resumed or self.restarted else None
        with TrainingRecorder(self.folders.results, self.folders.logs, resume_step,
                              flush_every=flush_every) as self.recorder:
            self.recorder.log_text("config",
                                   f"```\n{json.dumps(self.config_record(), indent=2)}\n```")
            logged = self.recorder.rows[-1][COLUMNS.index("step")] if self.recorder.rows else 0
            if logged < self.step:
                print(f"train.py: warning: {self.recorder.csv_path} ends at step {logged}, "
                      f"before the checkpoint's {self.step}: steps {logged + 1}-{self.step} "
                      "are missing from the logs (the training state is complete)",
                      file=sys.stderr)
            while self.epochs_done < self.config.n_epochs:
                if not self.run_epoch(stop):
                    return False
                self.end_epoch()
                if stop.signum and self.epochs_done < self.config.n_epochs:
                    return False
        return True

    def run_epoch(self, stop: GracefulStop) -> bool:
        """Train the rest of the epoch; False if a signal stopped it (a checkpoint was written)."""
        config = self.config
        bar = tqdm(self.epoch_batches(), total=self.n_batches, initial=self.batch, unit="batch",
                   desc=f"epoch {self.epoch}/{config.n_epochs}", dynamic_ncols=True)
        with bar:
            for real in bar:
                self.check_finite(self.run_step(real), bar)
                if self.step % config.sample_interval == 0:
                    with evaluating(self.netG):
                        generate_fixed_noise_grid(self.netG, self.fixed_noise,
                                                  self.image_path(f"sample_step_{self.step}"))
                if self.batch < self.n_batches and (stop.signum or (
                        config.checkpoint_interval
                        and self.step % config.checkpoint_interval == 0)):
                    self.save()
                    if stop.signum:
                        return False
            self.check_finite(self.recorder.flush(), bar)
        return True

    def run_step(self, real: Tensor) -> list[dict[str, float]]:
        """One GAN step on the batch ``real``; returns the records the recorder wrote."""
        stats = self.train_step(real)
        if self.average is not None:
            self.average.update(self.netG)
        self.batch, self.step = self.batch + 1, self.step + 1
        return self.recorder.log_step(self.epoch, self.batch, self.step, stats)

    def epoch_batches(self) -> Iterator[Tensor]:
        """This epoch's remaining batches; after a resume, the same ones an unbroken run gets."""
        if self.batch == 0:  # a new epoch: remember where its shuffle starts
            self.epoch_start_rng = self.loader_rng.get_state()
            return islice(self.loader, self.n_batches)
        # Resuming mid-epoch: replay the epoch's shuffle from its starting state, skip the
        # batches already done, then put the generator back where the checkpoint left it.
        rng_now = self.loader_rng.get_state()
        self.loader_rng.set_state(self.epoch_start_rng)
        batches = islice(self.loader, self.batch, self.n_batches)
        first = next(batches)  # the shuffle is drawn here, at the first batch
        self.loader_rng.set_state(rng_now)
        return chain([first], batches)

    def check_finite(self, records: list[dict[str, float]], bar: tqdm | None = None) -> None:
        """Stop on the first record with a NaN or infinite number; show the last on the bar."""
        for record in records:
            bad = {name: value for name, value in record.items() if not math.isfinite(value)}
            if bad:
                found = ", ".join(f"{name}={value}" for name, value in bad.items())
                raise NonFiniteLossError(
                    f"training diverged at step {record['step']} (epoch {record['epoch']}, "
                    f"batch {record['batch']}): {found}; stopped without saving; the last good "
                    f"checkpoint is {self.last_checkpoint or 'none'}; a lower --lr may help")
        if records and bar is not None:
            bar.set_postfix({name: f"{records[-1][name]:.3f}" for name in STAT_NAMES[:4]},
                            refresh=False)

    def end_epoch(self) -> None:
        """Per-epoch outputs: fixed-noise grids, interpolation, the average, evaluation, save."""
        config, epoch = self.config, self.epoch
        self.epochs_done, self.batch = epoch, 0
        last = epoch == config.n_epochs
        with evaluating(self.netG):
            samples = generate_fixed_noise_grid(self.netG, self.fixed_noise,
                                                self.image_path(f"epoch_{epoch}_final"))
            if epoch % config.save_interval == 0 or last:
                endpoints = self.endpoints if self.judge is None else digit_endpoints(
                    self.netG, self.judge, self.endpoint_pool)
                save_interpolation_grid(self.netG, endpoints,
                                        self.image_path(f"interpolation_epoch_{epoch}"),
                                        n_steps=INTERPOLATION_STEPS)
        averaged_samples = None
        if self.average is not None:
            averaged = self.average.generator()
            averaged_samples = generate_fixed_noise_grid(averaged, self.fixed_noise,
                                                         self.image_path(f"epoch_{epoch}_ema"))
            save_atomic(cpu_state(averaged), self.folders.weights / "generator_ema.pth")
        self.recorder.log_epoch(self.step, samples, averaged_samples)
        if self.reference is not None and (
                epoch % config.eval_interval == 0 or epoch == 1 or last):
            self.evaluate()
        if epoch % config.save_interval == 0:
            self.save_weights(f"epoch_{epoch}")
        self.save()

    def evaluate(self) -> None:
        """Score the generator and its average; keep the best generator (not average) so far."""
        scored = [("raw", self.netG)]
        if self.average is not None:
            scored.append(("ema", self.average.generator()))
        for name, netG in scored:
            scores = evaluate_generator(netG, self.judge, self.reference,
                                        self.config.eval_samples, seed=self.config.seed)
            self.recorder.log_evaluation(self.epochs_done, self.step, name, scores)
            tqdm.write(f"epoch {self.epochs_done}, {name}: FID {scores['fid']:.3f}, Inception "
                       f"Score {scores['inception_score']:.2f}, coverage "
                       f"{scores['coverage']:.3f}")
            if name == "raw" and scores["fid"] < self.best_fid:
                self.best_fid = scores["fid"]
                save_atomic(cpu_state(self.netG), self.folders.weights / "generator_best.pth")

    # --- files ---

    def image_path(self, name: str) -> Path:
        """Path of the PNG ``name`` in the run's results folder."""
        return self.folders.results / f"{name}.png"

    def save_weights(self, suffix: str) -> None:
        """Both networks as plain CPU state dicts, ``{generator,discriminator}_{suffix}.pth``."""
        save_atomic(cpu_state(self.netG), self.folders.weights / f"generator_{suffix}.pth")
        save_atomic(cpu_state(self.netD), self.folders.weights / f"discriminator_{suffix}.pth")

    def save(self) -> Path:
        """Write a checkpoint of the run as it is now (never of diverged weights)."""
        self.check_finite(self.recorder.flush())
        self.add_training_time()
        self.last_checkpoint = save_checkpoint(self.state_dict(), self.folders.weights,
                                               keep=self.config.keep_checkpoints)
        self.recorder.export_json()
        return self.last_checkpoint

    def add_training_time(self) -> None:
        """Add this session's training time to ``record["train_seconds"]`` (all sessions)."""
        now = time.time()
        self.record["train_seconds"] = round(
            self.record.get("train_seconds", 0) + now - self._session_start, 1)
        self._session_start = now

    def write_config(self) -> None:
        """Save the configuration and provenance as the run's config.json."""
        with atomic_path(self.folders.results / "config.json") as tmp:
            tmp.write_text(json.dumps(self.config_record(), indent=2) + "\n")

    def finish(self) -> None:
        """The final weights, the progress animation and the finished configuration."""
        self.save_weights("final")
        save_progress_gif(self.folders.results, self.folders.results / "training_progress.gif")
        self.add_training_time()
        self.record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.write_config()
