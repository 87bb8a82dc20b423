"""Each run owns its folders: weights/<run>, results/<run>, logs/<run>; which run --resume takes.

A run never writes beside another run's files, nor into the top of ``weights/`` and
``results/``, where the repository ships its trained model and gallery. A lock file in the
run's weights folder keeps a second train.py out of a run in progress; the operating system
releases it when the process ends, however it ends, so a killed run leaves no stale lock.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from utils.checkpoint import CHECKPOINT_GLOB, CheckpointError, load_checkpoint, newest_checkpoint
from utils.errors import ArgumentError, UserError
from utils.files import TEMPORARY_GLOB

LOCK_NAME = ".train.lock"
# What the end of a run's first epoch writes before its checkpoint (utils/train_loop.py:
# end_epoch): a run killed in between starts again, and these are written anew.
FIRST_EPOCH_FILES = ("generator_ema.pth", "generator_best.pth", "generator_epoch_1.pth",
                     "discriminator_epoch_1.pth")


class RunInUseError(UserError):
    """Another train.py is writing this run's files."""


@dataclass(frozen=True)
class RunFolders:
    """The three folders of the run ``name``."""

    name: str
    weights: Path
    results: Path
    logs: Path

    @classmethod
    def under(cls, name: str, weights_dir: str | Path, results_dir: str | Path,
              log_dir: str | Path) -> "RunFolders":
        """The folders of run ``name`` under the three output roots."""
        return cls(name, Path(weights_dir) / name, Path(results_dir) / name, Path(log_dir) / name)

    def all(self) -> tuple[Path, Path, Path]:
        """Weights, results and TensorBoard folder."""
        return self.weights, self.results, self.logs


def default_run_name() -> str:
    """The name of a run started now: its start time, ``YYYYmmdd-HHMMSS``."""
    return time.strftime("%Y%m%d-%H%M%S")


def create_run_folders(name: str, weights_dir: str | Path, results_dir: str | Path,
                       log_dir: str | Path, name_given: bool, reuse: bool = False) -> RunFolders:
    """Make the folders of a new run, none of which may hold anything yet.

    The weights folder is created exclusively, which claims the name even against a
    second train.py started in the same second. A default name (``name_given`` False) that
    is taken gets a suffix ``-2``, ``-3``, ...; a name given with ``--run_name`` is refused.
    ``reuse`` takes the run's folders as they are: for a run that is started again because
    it stopped before its first checkpoint.

    Raises:
        ArgumentError: ``--run_name`` names a run that exists.
    """
    if reuse:
        folders = RunFolders.under(name, weights_dir, results_dir, log_dir)
        make_run_folders(folders)
        return folders
    for attempt in range(1, 1000):
        candidate = name if attempt == 1 else f"{name}-{attempt}"
        folders = RunFolders.under(candidate, weights_dir, results_dir, log_dir)
        taken = [f for f in folders.all() if f.exists() and any(f.iterdir())]
        if not taken:
            try:
                folders.weights.mkdir(parents=True)
            except FileExistsError:
                taken = [folders.weights]
        if not taken:
            folders.results.mkdir(parents=True, exist_ok=True)
            folders.logs.mkdir(parents=True, exist_ok=True)
            return folders
        if name_given:
            raise ArgumentError(f"--run_name {name}: {taken[0]} already holds a run; continue it "
                                f"with --resume {folders.weights}, or choose another --run_name")
    raise ArgumentError(f"--run_name {name}: every suffix up to -999 is taken")


class RunLock:
    """Hold the run's locks, in its weights and results folders.

    Two, so that a copy of a checkpoint resumed from another folder still meets the run's
    results. Released by ``release`` or at the end of the process, however it ends. Taking
    them marks the run as the one trained last.

    Raises:
        RunInUseError: another process holds them.
    """

    def __init__(self, folders: RunFolders) -> None:
        self.locks = []
        for folder in (folders.weights, folders.results):
            folder.mkdir(parents=True, exist_ok=True)
            lock = FileLock(folder / LOCK_NAME, timeout=0)
            try:
                lock.acquire()
            except Timeout:
                self.release()
                raise RunInUseError(f"run {folders.name} ({folder}) is being trained by another "
                                    "train.py; wait for it to end, or stop it first") from None
            self.locks.append(lock)
        os.utime(folders.weights / LOCK_NAME)  # see latest_run

    def release(self) -> None:
        """Let another train.py in."""
        for lock in self.locks:
            lock.release()


def remove_leftovers(folders: RunFolders, restart: bool = False) -> None:
    """Delete the temporary files that a kill mid-write left in the run's own folders.

    Call with the run's lock held. Only ``atomic_path``'s hidden ``.*.tmp`` names in this
    run's weights and results folders are touched, and for a run that starts again
    (``restart``) the ``FIRST_EPOCH_FILES`` of its weights folder, from the attempt before.
    """
    for folder in (folders.weights, folders.results):
        for leftover in folder.glob(TEMPORARY_GLOB):
            leftover.unlink()
    for name in FIRST_EPOCH_FILES if restart else ():
        (folders.weights / name).unlink(missing_ok=True)


def latest_run(weights_dir: str | Path) -> Path | None:
    """The run folder under ``weights_dir`` that was trained last, or None.

    Run folders are those holding a lock file: every train.py touches it when it starts
    on the run, and writes checkpoints as it trains, so the newest of these files tells
    the run trained most recently, even one stopped before its first checkpoint (files
    that other commands add, like evaluate.py's report, do not count).
    """

    def trained(run: Path) -> float:
        files = [run / LOCK_NAME, *run.glob(CHECKPOINT_GLOB)]
        return max(f.stat().st_mtime for f in files if f.exists())

    runs = [lock.parent for lock in Path(weights_dir).glob(f"*/{LOCK_NAME}")]
    return max(runs, key=trained, default=None)


def make_run_folders(folders: RunFolders) -> None:
    """Make the run's folders where missing (a resumed run given new --results_dir, say)."""
    for folder in folders.all():
        folder.mkdir(parents=True, exist_ok=True)


def discard_if_unused(folders: RunFolders) -> None:
    """Remove a new run's folders if it failed before writing anything (its lock aside)."""
    for folder in folders.all():
        if folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()


def auto_run(weights_dir: str | Path, run_name: str | None) -> Path | None:
    """The run folder ``--resume auto`` continues: ``run_name``'s, else the run trained last."""
    return Path(weights_dir) / run_name if run_name else latest_run(weights_dir)


def find_checkpoint(resume: str, run_dir: Path | None) -> tuple[Path, dict, list[str]] | None:
    """The checkpoint to resume, its contents, and the newer ones skipped as unreadable.

    ``resume`` is --resume's value; ``run_dir`` the run folder to take the newest readable
    checkpoint of (for ``auto``, or a folder given to --resume), or None for a file. None
    if ``auto`` finds no checkpoint in ``run_dir``.

    Raises:
        CheckpointError: the checkpoint is unreadable, or not in its run's folder.
    """
    if run_dir is not None and not any(run_dir.glob(CHECKPOINT_GLOB)) and resume == "auto":
        return None
    if run_dir is None:
        path, checkpoint, skipped = Path(resume), load_checkpoint(resume), []
    else:
        path, checkpoint, skipped = newest_checkpoint(run_dir)
    run_name = checkpoint["run_name"]
    if path.parent.name != run_name:
        raise CheckpointError(f"{path} belongs to run {run_name}, whose files live in "
                              f"<weights_dir>/{run_name}/; move it into such a folder to resume")
    return path, checkpoint, skipped


def restartable_config(run_dir: Path, results_dir: str | Path) -> dict | None:
    """The configuration of a run stopped before its first checkpoint, to start it again.

    Only a run whose weights folder holds nothing but its lock, leftover temporary files
    and the ``FIRST_EPOCH_FILES`` (which the run writes again) may start again: one with
    other weights would lose them.

    Returns:
        The run's config.json (its flags), with the run's name as its folder has it now.

    Raises:
        CheckpointError: the run has other weights files but no checkpoint, or its config.json
            is missing or unreadable.
    """
    kept = [p.name for p in run_dir.iterdir()
            if p.name not in (LOCK_NAME, *FIRST_EPOCH_FILES) and not p.match(TEMPORARY_GLOB)]
    if kept:
        raise CheckpointError(f"run {run_dir.name} ({run_dir}) holds {kept[0]} but no checkpoint "
                              "to resume; start a new run, or pass a checkpoint to --resume")
    path = Path(results_dir) / run_dir.name / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise CheckpointError(f"run {run_dir.name} stopped before its first checkpoint, and its "
                              f"flags cannot be read from {path} (if it used another "
                              "--results_dir, give it); or start a new run")
    return {**config, "run_name": run_dir.name}
