"""A training run's books: its folders, lock, configuration, checkpoints, position and logs.

train.py holds the GAN: the data, the networks, the loop and the step. Everything that makes
a run safe to stop, resume, and train beside other runs is here, behind a few calls:

    run = open_run(flags, given, command)   # a new run, or the one --resume names
    with run:                                # its folders and lock; Ctrl-C is a request
        run.start(loader, generator=netG, ...)  # restore the checkpoint, or write step 0's
        for epoch in run.epochs():
            for real in run.batches():       # an unbroken run's batches, also on resume
                ...                           # the GAN step
                run.log_step(stats)           # logs; sample grids, checkpoints at intervals
            run.end_epoch(epoch, judge, reference)  # grids, interpolation, scores
        run.finish()

A run owns three folders, ``weights/<run>``, ``results/<run>`` and ``logs/<run>``, and
never writes beside another run's files, nor into the top of ``weights/`` and
``results/``, where the repository ships its model; a checkpoint resumes only in the folder
named after its run. ``Run`` is the only writer of the run's position (``epochs_done``,
``batch``, ``step``); a checkpoint holds all of it.
"""

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from itertools import islice
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils.checkpoint import (
    CHECKPOINT_GLOB,
    CheckpointError,
    cpu_state,
    load_checkpoint,
    newest_checkpoint,
    save_atomic,
    save_checkpoint,
)
from utils.cli import check_output_folder, describe, in_repository
from utils.device import amp_supported, is_out_of_memory, resolve_device
from utils.errors import ArgumentError, UserError
from utils.files import TEMPORARY, atomic_path
from utils.interrupt import GracefulStop, say
from utils.metrics import Reference, evaluate_generator
from utils.provenance import describe_code, describe_machine
from utils.random_state import get_rng_states, set_rng_states
from utils.recorder import TrainingRecorder
from utils.step import STAT_NAMES
from utils.visualization import save_progress_gif
from utils.visualize import (
    digit_endpoints,
    evaluating,
    generate_fixed_noise_grid,
    save_interpolation_grid,
)

# Flags that change what is computed, or which run it is: at --resume they must match.
FIXED_AT_RESUME = ("nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "limit_batches",
                   "amp", "ema_decay", "run_name")
NOT_INHERITED = ("resume", "device", "debug", "weights_dir")  # from this command line only
FOLDERS = ("weights_dir", "results_dir", "log_dir", "data_dir")  # recorded as absolute paths
LOCK_NAME = ".train.lock"
STOPPED = "stopped.txt"  # in the results folder: how a run stopped by a signal continues
STARTED = "started.txt"  # in the TensorBoard folder: whose events they are
INTERPOLATION_STEPS = 10


class Stopped(BaseException):
    """A signal stopped the run; a checkpoint was written. ``Run`` ends the block quietly."""


# --- which run: a new one, or the one --resume names ---

def open_run(flags: dict, given: set[str], command: str) -> "Run | None":
    """The run this command trains, its configuration merged and checked; None if finished.

    Args:
        flags: every flag's value (defaults included).
        given: the flags the command line gave explicitly.
        command: the command line, for the run's record.

    Raises:
        ArgumentError, CheckpointError: one line that says what to change.
    """
    found = find_resumed(flags, given)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    if found is None:
        name = flags["run_name"] or time.strftime("%Y%m%d-%H%M%S")  # the start time
        config = make_config({**flags, "run_name": name}, given)
        for flag in ("results_dir", "weights_dir", "log_dir"):
            check_output_folder(getattr(config, flag), f"--{flag}")
        record = {"command": command, "code": describe_code(), "started": now,
                  "machine": describe_machine(torch.device(config.device))}
        return Run(config, record, None, name_given="run_name" in given)
    path, checkpoint = found
    weights_root = path.parent.parent  # a run's folder is where its checkpoint is
    if "weights_dir" in given and (Path(flags["weights_dir"]) / path.parent.name).resolve() != (
            path.parent.resolve()):
        raise ArgumentError(f"--weights_dir {flags['weights_dir']}: a resumed run's weights "
                            f"stay in its own folder, {path.parent}; move that folder to train "
                            "it elsewhere")
    config = make_config({**flags, "weights_dir": str(weights_root)}, given, checkpoint["config"])
    config = find_run_folders(config, given, path.parent, checkpoint["config"])
    for flag in ("results_dir", "weights_dir", "log_dir"):
        check_output_folder(getattr(config, flag), f"--{flag}")
    check_run_folders(config, checkpoint["config"], given)
    done = (checkpoint["epochs_done"], checkpoint["batch"])
    if done > (config.n_epochs, 0):
        where = f"in epoch {done[0] + 1}" if done[1] else f"after epoch {done[0]}"
        raise ArgumentError(f"--n_epochs {config.n_epochs}: the checkpoint is {where}, past "
                            "it; give a larger --n_epochs, or resume an earlier checkpoint")
    if done[0] == config.n_epochs and finished(Path(config.results_dir) / config.run_name):
        print(f"run {config.run_name} has finished its {config.n_epochs} epochs; its weights "
              f"are in {path.parent}/; give a larger --n_epochs to train it further")
        return None
    print(f"resuming run {config.run_name} from {path}: {done[0]} epochs and {done[1]} "
          f"batches done (step {checkpoint['step']})")
    record = {key: value for key, value in checkpoint["config"].items()
              if key not in dataclasses.asdict(config)}  # provenance: command, code, machine
    record["resumed"] = [*record.get("resumed", []), {
        "at": now, "step": checkpoint["step"], "command": command, "code": describe_code()}]
    return Run(config, record, found)


def find_resumed(flags: dict, given: set[str]) -> tuple[Path, dict] | None:
    """The checkpoint that ``--resume`` names, and its contents; None for a new run.

    ``auto`` takes the newest readable checkpoint of ``--run_name``'s run, or of the run
    trained last; with no such run (or one without a checkpoint) a new run starts.

    Raises:
        CheckpointError: the checkpoint is unreadable.
    """
    resume, weights_dir = flags["resume"], Path(flags["weights_dir"])
    if resume is None:
        return None
    if resume == "auto":
        named = "run_name" in given
        run_dir = weights_dir / flags["run_name"] if named else latest_run(weights_dir)
        if run_dir is None or not any(run_dir.glob(CHECKPOINT_GLOB)):
            what = f"run named {flags['run_name']} " if named else "run "
            print(f"--resume auto: no {what}with a checkpoint in {weights_dir}/ to continue, "
                  "starting a new run")
            return None
        path, checkpoint, skipped = newest_checkpoint(run_dir)
    elif Path(resume).is_dir():
        path, checkpoint, skipped = newest_checkpoint(resume)
    else:
        path, checkpoint, skipped = Path(resume), load_checkpoint(resume), []
    for reason in skipped:
        print(f"--resume: skipped {reason}", file=sys.stderr)
    recorded, named = checkpoint["run_name"], Path(os.path.abspath(path))
    path = Path(path).resolve()  # the real folder, through '.', '..' and symbolic links
    if named.parent.name == recorded != path.parent.name and named.resolve() == path:
        path = named  # through a link named after the run, to its folder moved elsewhere
    if path.parent.name != recorded:  # copied or renamed: the run's other files are elsewhere
        raise CheckpointError(f"{path} belongs to run {recorded}, which resumes only from its "
                              f"own folder, <weights_dir>/{recorded}/ (beside "
                              f"<results_dir>/{recorded}/ and <log_dir>/{recorded}/); move it, "
                              "or rename the run's folders, back there to resume")
    return path, checkpoint


def find_run_folders(config: object, given: set[str], folder: Path, recorded: dict) -> object:
    """A resumed run's ``--results_dir``, ``--log_dir``, ``--data_dir`` and ``--judge``.

    The run's record holds its folders as absolute paths (``FOLDERS``). Where its weights
    folder still is (``folder`` is the checkpoint's), they are taken as they are, from any
    working folder. Where the weights were moved, a folder that still holds the run stays;
    any other, and every folder of a copy (its original is still there), is taken at the
    same place relative to the weights, so that a moved tree finds itself and a copy never
    writes into the original. MNIST, only read, stays where it was if it is still there. A
    recorded judge that is gone is replaced by the shipped one. Each replacement is said.

    Raises:
        ArgumentError: a moved or copied run's results or TensorBoard root is missing, or a
            copy would share the original's.
    """
    was = recorded.get("folders") or {  # a run of before FOLDERS: from its working folder
        flag: os.path.abspath(recorded[flag]) for flag in FOLDERS}
    home = Path(was["weights_dir"])
    original = home / config.run_name
    at_home = original.resolve() == folder.resolve()
    copied = not at_home and any(original.glob(CHECKPOINT_GLOB))  # the original is still there
    found = {}
    for flag in ("results_dir", "log_dir", "data_dir"):
        if flag in given:
            continue
        place = Path(was[flag])
        if not (at_home or (flag == "data_dir" and place.is_dir()) or (
                not copied and (place / config.run_name).is_dir())):  # moved without it
            with suppress(ValueError):  # Windows: on another drive, it stays where it was
                place = Path(os.path.normpath(folder.parent / os.path.relpath(place, home)))
            if copied and str(place) == was[flag] and flag != "data_dir":
                raise ArgumentError(f"--{flag}: the weights in {folder} are a copy of "
                                    f"{original}, whose {place} the copy would share; give "
                                    "--results_dir and --log_dir of the copy's own")
        found[flag] = str(place)
        if str(place) != was[flag]:
            print(f"--{flag}: taking {place}, where {was[flag]} was beside the run's weights, "
                  f"now in {folder}")
            if flag != "data_dir" and not place.is_dir():
                raise ArgumentError(f"--{flag}: {place} is missing; give --{flag} to say where "
                                    "the run's files are, or should go")
    shipped = in_repository("weights/judge.pth")
    if "judge" not in given and not Path(config.judge).is_file() and Path(shipped).is_file():
        print(f"--judge: taking {shipped} (the checkpoint's {config.judge} is not there)")
        found["judge"] = shipped
    return dataclasses.replace(config, **found)


def finished(results: Path) -> bool:
    """Whether the run of the results folder ``results`` wrote its final files, all of them.

    Its config.json gets ``finished`` last, after the final weights and the GIF.
    """
    try:
        return "finished" in json.loads((results / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def check_run_folders(config: object, recorded: dict, given: set[str]) -> None:
    """Refuse the results or logs of another run of the same name; warn of a hand-edited config.

    The run's config.json and ``STARTED`` (in its TensorBoard folder) say when and how it
    started, as its checkpoint does. The checkpoint's configuration is the run's (config.json
    is written anew from it): a hand edit of config.json changes nothing, and says so.

    Raises:
        ArgumentError: a folder holds another run's files, or files of no known run.
    """
    results, logs = (Path(root) / config.run_name for root in (config.results_dir,
                                                               config.log_dir))
    identity = started(recorded)
    try:
        written = json.loads((results / "config.json").read_text())
    except (OSError, ValueError):
        written = None
    written = written if isinstance(written, dict) else {}
    try:
        logged = (logs / STARTED).read_text().strip()
    except OSError:
        logged = None  # also a run's of before this file: its events are taken as its own
    for flag, folder, found in (("results_dir", results, started(written)),
                                ("log_dir", logs, logged)):
        if found != identity and (found or (flag == "results_dir" and holds_files(folder))):
            whose = f"another run named {config.run_name}, {found}" if found else (
                "files but no config.json saying whose")
            raise ArgumentError(f"--{flag}: {folder} holds {whose}; give the --results_dir "
                                "and --log_dir of this run's own, or move that folder away")
    flags = set(dataclasses.asdict(config)) - {*NOT_INHERITED, *FOLDERS, *given, "run_name"}
    edited = [f"{key} {written[key]!r} there, {value!r} in the checkpoint"
              for key, value in recorded.items()
              if key in flags and key in written and written[key] != value]
    if edited:
        print(f"train.py: warning: {results / 'config.json'} differs from the checkpoint "
              f"({'; '.join(edited)}); the checkpoint's configuration is used: change a flag "
              "on the command line instead (see --resume in --help)", file=sys.stderr)


def started(record: dict) -> str | None:
    """When and by which command a run started, from its record (None if it does not say)."""
    if "started" not in record:
        return None
    return f"started {record['started']} by {record.get('command')}"


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything but a run's lock and temporary files."""
    return folder.is_dir() and any(
        p.name != LOCK_NAME and not TEMPORARY.fullmatch(p.name) for p in folder.iterdir())


def latest_run(weights_dir: Path) -> Path | None:
    """The run folder under ``weights_dir`` with a checkpoint that was trained last, or None.

    Every train.py touches its run's lock file when it starts on the run and writes
    checkpoints as it trains, so the newest of these files tells the run trained most
    recently (files that other commands add, like evaluate.py's report, do not count). A
    copy of a run's folder beside it under another name (a backup, say) is passed over.
    """
    runs = {}  # each folder once, by the name of its own if a link also leads to it
    for folder in sorted({path.parent for path in weights_dir.glob(f"*/{CHECKPOINT_GLOB}")},
                         key=lambda folder: folder.name != folder.resolve().name):
        runs.setdefault(folder.resolve(), folder)
    for run in sorted(runs.values(), reverse=True, key=lambda run: (max(
            f.stat().st_mtime for f in [run / LOCK_NAME, *run.glob(CHECKPOINT_GLOB)]
            if f.exists()), run.name)):
        with suppress(CheckpointError):  # unreadable: resuming it says so
            recorded = newest_checkpoint(run)[1]["run_name"]
            if recorded != run.name and (run.parent / recorded).is_dir():
                continue  # a copy of the run beside it
        return run
    return None


def make_config(flags: dict, given: set[str], resumed: dict | None = None) -> object:
    """Merge the command line's ``flags`` with a resumed run's configuration, then check them.

    Flags not ``given`` are taken from ``resumed`` (the checkpoint's ``config``), except
    those of ``NOT_INHERITED``. Returns a frozen dataclass with one field per flag: after
    this, nothing changes the configuration.

    Raises:
        ArgumentError: a flag of ``FIXED_AT_RESUME`` differs from the resumed run's, the
            device is not available, or ``--amp`` is not supported on it.
    """
    values = dict(flags)
    for key, value in (resumed or {}).items():
        if key not in values or key in NOT_INHERITED:
            continue
        if key in given and key in FIXED_AT_RESUME and values[key] != value:
            raise ArgumentError(f"--{key} {values[key]} differs from the resumed run's "
                                f"{value}; leave --{key} out to resume, or start a new run")
        if key not in given:
            values[key] = value
    values["device"] = str(resolve_device(values["device"]))
    if values["amp"] and not amp_supported(torch.device(values["device"])):
        if resumed is not None and "amp" not in given:
            raise ArgumentError(f"--amp: the resumed run uses --amp, and this {values['device']} "
                                "has no native bfloat16; resume it where it has, or start a "
                                "new run")
        raise ArgumentError(f"--amp: this {values['device']} has no native bfloat16; train "
                            "without --amp")
    return dataclasses.make_dataclass("TrainConfig", list(values), frozen=True)(**values)


# --- the run ---

class Run:
    """One training run: its folders, lock, position, checkpoints and logs.

    Use as a context manager. Entering claims the run's folders and takes its lock, and
    turns the first Ctrl-C (or SIGTERM, SIGHUP) into a request to stop at the next batch
    with a checkpoint. Leaving releases the lock and closes the logs; a stop by a signal
    ends the block quietly (``exit_code`` 128 + the signal), and any other failure becomes
    one line that says which checkpoint is intact and how to continue.

    Args:
        config: the merged, checked configuration (``make_config``).
        record: provenance (command, code, machine, start), saved with the configuration.
        resumed: the checkpoint to continue, ``(path, contents)``, or None for a new run.
        name_given: the run's name came from ``--run_name`` (a taken name is refused, not
            given a suffix).
    """

    def __init__(self, config: object, record: dict, resumed: tuple[Path, dict] | None,
                 name_given: bool = False) -> None:
        self.config, self.record, self.resumed = config, record, resumed
        record["folders"] = {flag: os.path.abspath(getattr(config, flag)) for flag in FOLDERS}
        self.name_given = name_given
        self.name = config.run_name
        self.epochs_done = self.batch = self.step = 0  # batch: done in the epoch in progress
        self.epoch_start_rng: Tensor | None = None  # the data order's state when it began
        self.best_fid = math.inf
        self.last_checkpoint = resumed and resumed[0]
        self.exit_code = 0
        self.parts: dict = {}
        self.stop = GracefulStop()
        self.lock: list[FileLock] = []
        self.recorder: TrainingRecorder | None = None
        self.bar: tqdm | None = None
        self.started = self._session_start = time.time()

    # --- folders and lock ---

    def folders(self, name: str | None = None) -> tuple[Path, Path, Path]:
        """The run's weights, results and TensorBoard folders (of ``name``, if given)."""
        name = name or self.name
        return tuple(Path(getattr(self.config, root)) / name
                     for root in ("weights_dir", "results_dir", "log_dir"))

    def __enter__(self) -> "Run":
        self.stop.__enter__()
        try:
            self.claim()
        except BaseException:
            self.stop.__exit__(None, None, None)
            raise
        return self

    def claim(self) -> None:
        """Take the run's folders: a resumed run's own, or a new run's, empty ones.

        A new run's name is claimed by its lock, even against a second train.py started in
        the same second. A default name that is taken gets a suffix ``-2``, ``-3``, ...;
        one given with ``--run_name`` is refused.

        Raises:
            UserError: another train.py trains the resumed run.
            ArgumentError: ``--run_name`` names a run that exists.
        """
        if self.resumed:
            busy = self.take_lock(self.name)
            if busy:
                raise UserError(f"run {self.name} ({busy}) is being trained by another "
                                "train.py; wait for it to end, or stop it first")
            return
        for attempt in range(1, 1000):
            name = self.config.run_name + (f"-{attempt}" if attempt > 1 else "")
            taken = self.files_in(name)
            if not taken:
                busy = self.take_lock(name)
                taken = [busy] if busy else self.files_in(name)  # or made in the meantime
                if not taken:
                    self.config = dataclasses.replace(self.config, run_name=name)
                    return
                self.release()
            if self.name_given and taken[0].is_file():
                raise ArgumentError(f"--run_name {name}: {taken[0]} is a file; choose another "
                                    "--run_name")
            if self.name_given:
                weights = self.folders(name)[0]
                go_on = (f"continue it with --resume {weights}, or "
                         if any(weights.glob(CHECKPOINT_GLOB)) else "it has no checkpoint; ")
                raise ArgumentError(f"--run_name {name}: {taken[0]} already holds a run; "
                                    f"{go_on}choose another --run_name")
        raise ArgumentError(f"--run_name {self.config.run_name}: every suffix up to -999 is taken")

    def tidy_resumed(self) -> None:
        """Remove ``STOPPED``, and the checkpoints after the resumed one, once it is restored.

        Resuming an earlier checkpoint takes the run back to its step: what came after is no more.
        """
        (self.results / STOPPED).unlink(missing_ok=True)  # it goes on now
        later = [p for p in self.weights.glob(CHECKPOINT_GLOB) if p.name > self.resumed[0].name]
        if later:
            print(f"--resume: step {self.resumed[1]['step']} is earlier than this run's newest "
                  f"checkpoint; removing the {len(later)} after it")
            for checkpoint in later:
                checkpoint.unlink()

    def files_in(self, name: str) -> list[Path]:
        """The folders of run ``name`` that hold anything but its lock, or are files."""
        return [f for f in self.folders(name) if holds_files(f) or f.is_file()]

    def take_lock(self, name: str) -> Path | None:
        """Make run ``name``'s folders and take its locks, in its weights and results folders.

        Two locks, so that a copy of a checkpoint resumed from another weights folder still
        meets the run's results, whose CSV two writers would mix. The operating system
        releases them when the process ends, however it ends. Returns the folder whose lock
        another process holds (then none is taken), or None.
        """
        self.name = name
        self.weights, self.results, self.logs = self.folders()  # checkpoints; images, logs
        for folder in self.folders():
            folder.mkdir(parents=True, exist_ok=True)
        for folder in dict.fromkeys(self.folders()[:2]):  # one, if they are one folder
            lock = FileLock(folder / LOCK_NAME, timeout=0)
            try:
                lock.acquire()
            except Timeout:
                self.release()
                return folder
            self.lock.append(lock)
        for folder in self.folders()[:2]:  # what a kill of this run left mid-write
            for leftover in folder.iterdir():
                if TEMPORARY.fullmatch(leftover.name):
                    leftover.unlink()
        return None

    def release(self) -> None:
        """Let another train.py in."""
        for lock in self.lock:
            lock.release()
        self.lock = []

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object
                 ) -> bool:
        message = f"stopped after step {self.step}; {self.resume_hint()}"
        try:
            if self.recorder is not None:
                self.recorder.close()
            if isinstance(error, Stopped):  # also into a file: after SIGHUP, stderr is gone
                with atomic_path(self.results / STOPPED) as tmp:
                    tmp.write_text(message + "\n")
        finally:
            self.release()
            self.stop.__exit__(None, None, None)
            if not self.resumed and not self.files_in(self.name):  # it wrote nothing
                for folder in self.folders():
                    with suppress(OSError):  # gone already, if two roots are one
                        (folder / LOCK_NAME).unlink(missing_ok=True)
                        folder.rmdir()
        if isinstance(error, Stopped):
            say(message)
            self.exit_code = self.stop.exit_code
            return True
        if isinstance(error, Exception) and not isinstance(error, UserError):
            if is_out_of_memory(error):  # a full disk, out of memory, a CUDA error, ...
                cause = (f"out of memory at step {self.step} on {self.config.device}; smaller "
                         "--nz, --ngf, --ndf, --batch_size or --eval_samples may fit")
            else:
                cause = f"{describe(error)}; stopped at step {self.step}"
            raise UserError(f"{cause}; every file written before is complete; "
                            f"{self.resume_hint()}") from error
        return False

    def resume_hint(self) -> str:
        """What the user can do after the run stopped: the command that continues it."""
        if self.last_checkpoint is None:
            return "no checkpoint was written"
        return (f"the last checkpoint, {self.last_checkpoint}, is intact; to continue: "
                f"python {in_repository('train.py')} --resume {self.last_checkpoint}")

    # --- the state a checkpoint holds ---

    def start(self, loader: DataLoader, **parts: object) -> None:
        """Register what a checkpoint holds; restore it, or write a new run's first checkpoint.

        The checkpoint of step 0 makes a run resumable from its start.

        Args:
            loader: the training batches; its ``generator`` draws their order.
            parts: the networks, optimisers, average and fixed tensors, by checkpoint key:
                their ``state_dict`` (a tensor: its value) is saved, and restored in place.
        """
        self.loader, self.loader_rng, self.parts = loader, loader.generator, parts
        self.n_batches = min(len(loader), self.config.limit_batches or len(loader))
        images = self.record.setdefault("train_images", len(loader.dataset))
        if images != len(loader.dataset):  # the shuffle replay needs the same set
            raise ArgumentError(f"--data_dir {self.config.data_dir} holds {len(loader.dataset)} "
                                f"training images, the run trained on {images}; give the run's "
                                "--data_dir")
        os.utime(self.weights / LOCK_NAME)  # the run trained last, for --resume auto
        if self.resumed:
            self.load_state_dict(self.resumed[1])
            self.tidy_resumed()
        else:  # first of all: a run is resumable from its first moment
            self.last_checkpoint = save_checkpoint(self.state_dict(), self.weights,
                                                   keep=self.config.keep_checkpoints)
        self.write_config()
        with atomic_path(self.logs / STARTED) as tmp:
            tmp.write_text(f"{started(self.record)}\n")
        # Reading numbers back stalls a GPU but costs nothing on a CPU.
        flush_every = 1 if self.config.device == "cpu" else 50
        self.recorder = TrainingRecorder(self.results, self.logs, self.step,
                                         flush_every=flush_every)
        self.recorder.log_text("config",
                               f"```\n{json.dumps(self.config_record(), indent=2)}\n```")
        logged = self.recorder.rows[-1][2] if self.recorder.rows else 0
        if logged < self.step:
            print(f"train.py: warning: {self.recorder.csv_path} ends at step {logged}, before "
                  f"the checkpoint's {self.step}: steps {logged + 1}-{self.step} are missing "
                  "from the logs (the training state is complete)", file=sys.stderr)
        print(f"run {self.name}: {len(loader.dataset)} images, {self.n_batches} batches an "
              f"epoch; TensorBoard: tensorboard --logdir={self.config.log_dir}")
        if self.stop.signum:
            raise Stopped

    def state_dict(self) -> dict:
        """Everything needed to continue the run exactly; ``load_state_dict`` reads it back."""
        parts = {key: part.detach() if isinstance(part, Tensor) else part and part.state_dict()
                 for key, part in self.parts.items()}
        return {**parts, "epochs_done": self.epochs_done, "batch": self.batch,
                "step": self.step, "epoch_start_rng": self.epoch_start_rng,
                "rng": get_rng_states(self.loader_rng), "run_name": self.name,
                "config": self.config_record(), "best_fid": self.best_fid}

    def load_state_dict(self, checkpoint: dict) -> None:
        """Continue from a ``state_dict`` (read onto the CPU; moved to the parts' devices)."""
        for key, part in self.parts.items():
            if isinstance(part, Tensor):
                part.copy_(checkpoint[key])
            elif part is not None:
                part.load_state_dict(checkpoint[key])  # optimisers: to their params' device
        self.epochs_done, self.batch, self.step = (
            checkpoint[key] for key in ("epochs_done", "batch", "step"))
        self.epoch_start_rng, self.best_fid = checkpoint["epoch_start_rng"], checkpoint["best_fid"]
        set_rng_states(checkpoint["rng"], self.loader_rng)

    def config_record(self) -> dict:
        """The configuration and provenance, as config.json and the checkpoints hold them."""
        return {**dataclasses.asdict(self.config), **self.record}

    # --- the loop's calls ---

    def epochs(self) -> range:
        """The numbers of the epochs still to train, from 1."""
        return range(self.epochs_done + 1, self.config.n_epochs + 1)

    def batches(self) -> Iterator[Tensor]:
        """The rest of this epoch's batches: after a resume, those an unbroken run gets.

        A new epoch remembers where its shuffle starts; resuming mid-epoch replays that
        shuffle and skips the batches done. A progress bar shows the epoch.
        """
        if self.batch == 0:
            self.epoch_start_rng = self.loader_rng.get_state()
        else:
            self.loader_rng.set_state(self.epoch_start_rng)
        self.bar = tqdm(islice(self.loader, self.batch, self.n_batches), total=self.n_batches,
                        initial=self.batch, unit="batch", dynamic_ncols=True,
                        desc=f"epoch {self.epochs_done + 1}/{self.config.n_epochs}")
        with self.bar:
            yield from self.bar
            self.check_finite(self.recorder.flush())

    def log_step(self, stats: Tensor) -> None:
        """Count a finished step and log its ``gan_step`` statistics.

        At the intervals, draw the fixed-noise grid and write a checkpoint; after a signal,
        write a checkpoint and stop.

        Raises:
            UserError: a logged number is NaN or infinite.
        """
        config = self.config
        self.batch, self.step = self.batch + 1, self.step + 1
        self.check_finite(self.recorder.log_step(self.epochs_done + 1, self.batch, self.step,
                                                 stats))
        if self.step % config.sample_interval == 0:
            with evaluating(self.parts["generator"]) as netG:
                generate_fixed_noise_grid(netG, self.parts["fixed_noise"],
                                          self.image(f"sample_step_{self.step}"))
        if self.batch < self.n_batches and (self.stop.signum or (
                config.checkpoint_interval and self.step % config.checkpoint_interval == 0)):
            self.save()
            if self.stop.signum:
                raise Stopped

    def check_finite(self, records: list[dict[str, float]]) -> None:
        """Stop on the first record with a NaN or infinite number; show the last on the bar."""
        for record in records:
            bad = {name: value for name, value in record.items() if not math.isfinite(value)}
            if bad:
                found = ", ".join(f"{name}={value}" for name, value in bad.items())
                raise UserError(
                    f"training diverged at step {record['step']} (epoch {record['epoch']}, "
                    f"batch {record['batch']}): {found}; stopped without saving; the last good "
                    f"checkpoint is {self.last_checkpoint or 'none'}; a lower --lr may help")
        if records and self.bar is not None:
            self.bar.set_postfix({name: f"{records[-1][name]:.3f}" for name in STAT_NAMES[:4]},
                                 refresh=False)

    def end_epoch(self, epoch: int, judge: torch.nn.Module | None,
                  reference: Reference | None) -> None:
        """The outputs of epoch ``epoch``: grids, interpolation, scores, weights, checkpoint.

        Fixed-noise grids of the generator and its average; every ``--save_interval``
        epochs an interpolation between the judge's chosen digits, and the weights; the
        scores of both generators every ``--eval_interval`` epochs.
        """
        config = self.config
        self.epochs_done, self.batch = epoch, 0
        last = epoch == config.n_epochs
        netG, average = self.parts["generator"], self.parts["generator_average"]
        with evaluating(netG):
            samples = generate_fixed_noise_grid(netG, self.parts["fixed_noise"],
                                                self.image(f"epoch_{epoch}_final"))
            if epoch % config.save_interval == 0 or last:
                endpoints = self.parts["interpolation_endpoints"] if judge is None else (
                    digit_endpoints(netG, judge, config.seed))
                save_interpolation_grid(netG, endpoints,
                                        self.image(f"interpolation_epoch_{epoch}"),
                                        n_steps=INTERPOLATION_STEPS)
        averaged_samples = None
        if average is not None:
            averaged = average.generator()
            averaged_samples = generate_fixed_noise_grid(averaged, self.parts["fixed_noise"],
                                                         self.image(f"epoch_{epoch}_ema"))
            save_atomic(cpu_state(averaged), self.weights / "generator_ema.pth")
        self.recorder.log_epoch(self.step, samples, averaged_samples)
        if reference is not None and (epoch % config.eval_interval == 0 or epoch == 1 or last):
            self.evaluate(judge, reference)
        if epoch % config.save_interval == 0:
            self.save_weights(f"epoch_{epoch}")
        self.save()
        if self.stop.signum and not last:
            raise Stopped

    def evaluate(self, judge: torch.nn.Module, reference: Reference) -> None:
        """Score the generator and its average; keep the best generator (not average) so far."""
        scored = [("raw", self.parts["generator"])]
        if self.parts["generator_average"] is not None:
            scored.append(("ema", self.parts["generator_average"].generator()))
        for name, netG in scored:
            tqdm.write(f"epoch {self.epochs_done}, {name}: scoring {self.config.eval_samples} "
                       "samples ...")
            scores = evaluate_generator(netG, judge, reference, self.config.eval_samples,
                                        seed=self.config.seed)
            self.recorder.log_evaluation(self.epochs_done, self.step, name, scores)
            tqdm.write(f"epoch {self.epochs_done}, {name}: FID {scores['fid']:.3f}, Inception "
                       f"Score {scores['inception_score']:.2f}, coverage "
                       f"{scores['coverage']:.3f}")
            if name == "raw" and scores["fid"] < self.best_fid:
                self.best_fid = scores["fid"]
                save_atomic(cpu_state(netG), self.weights / "generator_best.pth")

    def finish(self) -> None:
        """The final weights, the progress animation and the finished configuration."""
        self.save_weights("final")
        save_progress_gif(self.results, self.results / "training_progress.gif",
                          self.config.n_epochs)
        self.add_training_time()
        self.record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.write_config()
        print(f"done in {time.time() - self.started:.0f} s: weights in {self.weights}/, "
              f"images and logs in {self.results}/; draw digits with: python "
              f"{in_repository('generate.py')} --weights {self.weights / 'generator_final.pth'}")

    # --- files ---

    def image(self, name: str) -> Path:
        """Path of the PNG ``name`` in the run's results folder."""
        return self.results / f"{name}.png"

    def save_weights(self, suffix: str) -> None:
        """Both networks as plain CPU state dicts, ``{generator,discriminator}_{suffix}.pth``."""
        for kind in ("generator", "discriminator"):
            save_atomic(cpu_state(self.parts[kind]), self.weights / f"{kind}_{suffix}.pth")

    def save(self) -> None:
        """Write a checkpoint of the run as it is now (never of diverged weights)."""
        self.check_finite(self.recorder.flush())
        self.add_training_time()
        self.last_checkpoint = save_checkpoint(self.state_dict(), self.weights,
                                               keep=self.config.keep_checkpoints)
        self.recorder.export_json()

    def add_training_time(self) -> None:
        """Add this session's training time to ``record["train_seconds"]`` (all sessions)."""
        now = time.time()
        self.record["train_seconds"] = round(
            self.record.get("train_seconds", 0) + now - self._session_start, 1)
        self._session_start = now

    def write_config(self) -> None:
        """Save the configuration and provenance as the run's config.json."""
        with atomic_path(self.results / "config.json") as tmp:
            tmp.write_text(json.dumps(self.config_record(), indent=2) + "\n")
