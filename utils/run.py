"""A training run's books: its folders, lock, position, checkpoints and signals.

train.py holds the GAN and says when everything happens; a ``Run`` (made by
``utils/config.py: open_run``) holds the rest. A run writes into ``<weights_dir>/<run>/``,
``<results_dir>/<run>/`` and ``<log_dir>/<run>/``, the roots of the command line; a resumed
run's name is its checkpoint's folder's. It takes only folders it makes, or, resumed from a
checkpoint in its own weights folder, that run's folders.
"""

import dataclasses
import json
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils.checkpoint import CHECKPOINT_FORMAT, CheckpointError, checkpoint_steps, save_atomic
from utils.cli import describe, in_repository
from utils.device import is_out_of_memory
from utils.errors import ArgumentError, UserError
from utils.files import atomic_path
from utils.interrupt import GracefulStop, say

LOCK_NAME, ID_NAME = ".train.lock", ".run_id"  # in each of a run's folders


class Stopped(BaseException):
    """A signal stopped the run after a checkpoint. ``Run`` ends the block quietly."""


class Run:
    """One training run, used as ``with run:``.

    Entering takes the run's folders and locks, and turns the first Ctrl-C (or SIGTERM,
    SIGHUP) into a request to stop at the next checkpoint. Leaving frees the locks; a stop by
    a signal ends quietly (``exit_code`` 128 + the signal), any other failure becomes one
    line with the command that continues the run.
    """

    def __init__(self, config: object, record: dict, given: set[str], path: Path | None = None,
                 checkpoint: dict | None = None) -> None:
        self.config, self.record, self.given = config, record, given
        self.path, self.checkpoint, self.last_checkpoint = path, checkpoint, None
        self.epochs_done = self.batch = self.step = 0  # batch: done in the epoch in progress
        self.epoch_start_rng: Tensor | None = None  # the data order's state when it began
        self.data_order = torch.Generator().manual_seed(config.seed)  # the loader's shuffle
        self.exit_code, self.stop = 0, GracefulStop()
        self.locks, self.made = [], []  # one in each of the run's folders; those made here
        self.started = self._session_start = time.time()

    # The run's folders: a root of the command line, then the run's name.
    name = property(lambda self: self.config.run_name)
    weights = property(lambda self: Path(self.config.weights_dir) / self.name)
    results = property(lambda self: Path(self.config.results_dir) / self.name)  # images, CSVs
    logs = property(lambda self: Path(self.config.log_dir) / self.name)  # TensorBoard's

    def folders(self) -> list[Path]:
        """The run's weights, results and TensorBoard folders (one, where the roots are one)."""
        return list({os.path.realpath(folder): folder
                     for folder in (self.weights, self.results, self.logs)}.values())

    def __enter__(self) -> "Run":
        self.stop.__enter__()
        try:
            self.claim()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def claim(self) -> None:
        """Take the run's folders; a default name that is taken gets a suffix -2, -3, ...

        A taken ``--run_name``, or a resumed run's folder that is not its own, is refused
        (``ArgumentError``). Making a folder fails if it exists, so of two train.py starting
        at once each gets its own name.
        """
        base = self.name
        for attempt in range(1, 1000):
            name = base + (f"-{attempt}" if attempt > 1 else "")
            self.config = dataclasses.replace(self.config, run_name=name)
            try:
                self.take_folders()
                return
            except FileExistsError as error:
                self.release(keep=False)
                if self.checkpoint is not None:
                    raise ArgumentError(
                        f"{error.filename} exists and is not this run's: a resumed run writes "
                        f"into folders that exist only when its checkpoint is in {self.weights}/ "
                        f"and they hold its {ID_NAME}; give the run's --weights_dir, "
                        "--results_dir and --log_dir, or new ones") from None
                if "run_name" in self.given:
                    more = (", or add --resume auto to continue that run"
                            if checkpoint_steps(self.weights) else "")
                    raise ArgumentError(f"--run_name {name}: {error.filename} exists; choose "
                                        f"another --run_name{more}") from None
        raise ArgumentError(f"--run_name {base}: every suffix up to -999 is taken")

    def take_folders(self) -> None:
        """Make the run's folders, or at a resume in place take those holding its id; lock each.

        A run marks each of its folders with its id (``ID_NAME``), and locks each with a lock
        file that the OS frees when the process ends, however it ends. Any other folder that
        exists is not the run's (``FileExistsError``): another run's, a copy's, a user's or
        the shipped ones.
        """
        in_place = self.path is not None and self.path.resolve().parent == self.weights.resolve()
        for folder in self.folders():
            new = [path for path in (folder, *folder.parents) if not path.exists()]
            try:
                folder.mkdir(parents=True)
                self.made += reversed(new)  # the outermost first
                (folder / ID_NAME).write_text(self.record["run_id"])
            except FileExistsError as error:
                if Path(error.filename) != folder:  # a root that is a link to nothing, say
                    raise ArgumentError(f"cannot make {folder} ({error.filename} is in the way); "
                                        "give other --weights_dir, --results_dir or --log_dir"
                                        ) from None
                if not (in_place and self.holds_id(folder)):
                    raise
            except OSError as error:
                raise ArgumentError(f"cannot make {folder} ({error.strerror}); give writable "
                                    "--weights_dir, --results_dir and --log_dir") from None
            lock = FileLock(folder / LOCK_NAME, timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise UserError(f"run {self.name} ({folder}) is being trained by another "
                                "train.py; wait for it to end, or stop it first") from None
            self.locks.append(lock)

    def holds_id(self, folder: Path) -> bool:
        """Whether ``folder`` is marked as this run's."""
        try:
            return (folder / ID_NAME).read_text() == self.record["run_id"]
        except (OSError, UnicodeDecodeError):
            return False

    def release(self, keep: bool) -> None:
        """Free the run's locks; unless ``keep``, remove the folders this process made."""
        for lock in self.locks:
            lock.release()
        for folder in [] if keep else reversed(self.made):
            for name in (LOCK_NAME, ID_NAME):
                (folder / name).unlink(missing_ok=True)
            with suppress(OSError):
                folder.rmdir()
        self.locks, self.made = [], []

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object
                 ) -> bool:
        self.release(keep=self.last_checkpoint is not None)  # a run that wrote none leaves none
        self.stop.__exit__()
        if isinstance(error, Stopped):
            say(f"stopped after step {self.step}; {self.resume_hint()}")
            self.exit_code = 128 + self.stop.signum
            return True
        if isinstance(error, UserError) and not (error.resumable and self.last_checkpoint):
            return False  # it says what to do; continuing would not get past it
        if isinstance(error, Exception):
            if is_out_of_memory(error):
                cause = (f"out of memory at step {self.step} on {self.config.device}; smaller "
                         "--nz, --ngf, --ndf, --batch_size or --eval_samples may fit")
            else:
                cause = str(error) if isinstance(error, UserError) else describe(error)
            raise UserError(f"{cause}; stopped at step {self.step}; {self.resume_hint()}"
                            ) from error
        return False

    def resume_hint(self) -> str:
        """The command that continues the run: its last checkpoint and the flags given."""
        if self.last_checkpoint is None:
            return "no checkpoint was written"
        flags = [key for key in dataclasses.asdict(self.config)
                 if key in self.given and key not in ("resume", "run_name")]
        command = ["python", in_repository("train.py"), f"--resume={self.last_checkpoint}",
                   *(f"--{key}" if getattr(self.config, key) is True  # a switch
                     else f"--{key}={getattr(self.config, key)}"  # a value may begin with -
                     for key in flags)]
        return (f"the last checkpoint, {self.last_checkpoint}, is intact; to continue: "
                f"{shlex.join(command)}")

    # --- position and checkpoints ---

    def start(self, loader: DataLoader) -> None:
        """Take the batches' count; a resumed run needs its set of images (``ArgumentError``)."""
        images = self.record.setdefault("train_images", len(loader.dataset))
        if images != len(loader.dataset):  # the shuffle replay needs the same set
            raise ArgumentError(f"--data_dir {self.config.data_dir} holds {len(loader.dataset)} "
                                f"training images, the run trained on {images}; give the run's "
                                "--data_dir")
        self.n_batches = min(len(loader), self.config.limit_batches or len(loader))
        print(f"run {self.name}: {images} images, {self.n_batches} batches an epoch; "
              f"TensorBoard: tensorboard {shlex.quote(f'--logdir={self.config.log_dir}')}")

    @contextmanager
    def restoring(self) -> Iterator[dict]:
        """Restore the position and random states; yield the checkpoint for the GAN's state.

        Once the block succeeds the run's later checkpoints (of a resume of an earlier one)
        go. A checkpoint that does not fit the networks is a ``CheckpointError``.
        """
        checkpoint = self.checkpoint
        self.epochs_done, self.batch, self.step = (checkpoint[key] for key in (
            "epochs_done", "batch", "step"))
        try:
            self.epoch_start_rng = checkpoint["epoch_start_rng"]
            states = checkpoint["rng"]  # the noise's (CPU, GPUs) and the data order's
            torch.set_rng_state(states["torch"])
            self.data_order.set_state(states["loader"])
            if states["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"][:torch.cuda.device_count()])
            yield checkpoint
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise CheckpointError(f"{self.path} does not fit this run's networks "
                                  f"({describe(error)})") from None
        for step, later in checkpoint_steps(self.weights).items():
            if step > self.step:
                print(f"--resume: removing {later}, after the resumed step {self.step}")
                later.unlink()
        self.last_checkpoint = self.path

    def epochs(self) -> range:
        """The numbers of the epochs still to train, from 1."""
        return range(self.epochs_done + 1, self.config.n_epochs + 1)

    def batches(self, loader: DataLoader) -> Iterator[Tensor]:
        """The rest of this epoch's batches, under a progress bar, counting ``batch`` and ``step``.

        A new epoch remembers where its shuffle starts; resuming mid-epoch replays that
        shuffle and skips the batches done, so a resumed run gets an unbroken run's batches.
        """
        if self.batch == 0:
            self.epoch_start_rng = self.data_order.get_state()
        else:
            self.data_order.set_state(self.epoch_start_rng)
        with tqdm(islice(loader, self.batch, self.n_batches), total=self.n_batches,
                  initial=self.batch, unit="batch", dynamic_ncols=True,
                  desc=f"epoch {self.epochs_done + 1}/{self.config.n_epochs}") as bar:
            for real in bar:
                self.batch, self.step = self.batch + 1, self.step + 1
                yield real
        self.epochs_done, self.batch = self.epochs_done + 1, 0

    def checkpoint_due(self) -> bool:
        """Whether to checkpoint inside the epoch: every --checkpoint_interval, or on a signal."""
        interval = self.config.checkpoint_interval
        return self.batch < self.n_batches and (
            self.stop.signum is not None or (interval > 0 and self.step % interval == 0))

    def save(self, state: dict) -> None:
        """Write a checkpoint of ``state`` (the GAN's) and the run's; keep the newest few.

        After a signal the run stops here (``Stopped``), unless its last epoch is done: then
        its final files come first.
        """
        self.add_training_time()
        path = self.weights / f"checkpoint_step_{self.step:08d}.pth"
        rng = {"torch": torch.get_rng_state(), "loader": self.data_order.get_state(),
               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        save_atomic({"format": CHECKPOINT_FORMAT, **state, "epochs_done": self.epochs_done,
                     "batch": self.batch, "step": self.step, "rng": rng,
                     "epoch_start_rng": self.epoch_start_rng, "config": self.config_record()},
                    path)
        for old in list(checkpoint_steps(self.weights).values())[:-self.config.keep_checkpoints]:
            old.unlink()
        self.last_checkpoint = path
        self.write_config()  # as the run's last checkpoint has it
        if self.stop.signum is not None and self.epochs_done < self.config.n_epochs:
            raise Stopped

    def add_training_time(self) -> None:
        """Add this session's training time to ``record["train_seconds"]`` (all sessions)."""
        now = time.time()
        self.record["train_seconds"] = round(
            self.record.get("train_seconds", 0) + now - self._session_start, 1)
        self._session_start = now

    def config_record(self) -> dict:
        """The configuration and provenance, as config.json and checkpoints hold them."""
        return {**dataclasses.asdict(self.config), **self.record}

    def write_config(self) -> None:
        """Save the configuration and provenance as the run's config.json."""
        self.add_training_time()
        with atomic_path(self.results / "config.json") as tmp:
            tmp.write_text(json.dumps(self.config_record(), indent=2) + "\n")
