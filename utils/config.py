"""Which run a train.py command trains, and its configuration: the flags, merged and checked.

At ``--resume``, flags left out are the run's own, except the paths and the device
(``COMMAND_LINE_ONLY``): no path stored in a checkpoint decides what a run reads or writes.
"""

import argparse
import dataclasses
import secrets
import time
from pathlib import Path

import torch

from utils.checkpoint import CHECKPOINT_GLOB, load_checkpoint, newest_checkpoint
from utils.cli import folder_name
from utils.device import amp_supported, resolve_device
from utils.errors import ArgumentError
from utils.provenance import describe_code, describe_machine
from utils.run import Run

# Flags that change what is computed: at --resume they must match the run's.
FIXED_AT_RESUME = ("nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "limit_batches",
                   "amp", "ema_decay")
# A resumed run takes these from the command line, never from its checkpoint.
COMMAND_LINE_ONLY = ("data_dir", "judge", "weights_dir", "results_dir", "log_dir", "device")
NOT_INHERITED = ("resume", "debug", "run_name", *COMMAND_LINE_ONLY)


def open_run(flags: dict, given: set[str], command: str) -> "Run | None":
    """The run this command trains; None if it has finished.

    ``flags``: every flag's value; ``given``: those the command line gave; ``command``: the
    command line, for the run's record.
    """
    found = find_checkpoint(flags, given)
    if found is None:
        name = flags["run_name"] or time.strftime("%Y%m%d-%H%M%S")  # the start time
        config = make_config({**flags, "run_name": name}, given)
        record = {"command": command, "run_id": secrets.token_hex(8), "code": describe_code(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "machine": describe_machine(torch.device(config.device))}
        return Run(config, record, given)
    path, checkpoint = found
    name = path.resolve().parent.name  # the folder it is in, not a link's
    if not is_run_name(name):  # the run's folders take this name
        raise ArgumentError(f"--resume {path}: a run's name is its checkpoint's folder's, and "
                            f"{name!r} is not one --run_name accepts; move the checkpoint into "
                            "a folder of its own, named as the run")
    if "run_name" in given and flags["run_name"] != name:
        raise ArgumentError(f"--run_name {flags['run_name']}: {path} is of run {name} (its "
                            "folder's name); leave --run_name out")
    config = make_config({**flags, "run_name": name}, given, checkpoint["config"])
    done = (checkpoint["epochs_done"], checkpoint["batch"])
    if done > (config.n_epochs, 0):
        where = f"in epoch {done[0] + 1}" if done[1] else f"after epoch {done[0]}"
        raise ArgumentError(f"--n_epochs {config.n_epochs}: the checkpoint is {where}, past "
                            "it; give a larger --n_epochs, or resume an earlier checkpoint")
    weights = Path(config.weights_dir) / name
    if done == (config.n_epochs, 0) and (weights / "generator_final.pth").is_file():
        print(f"run {name} has finished its {config.n_epochs} epochs; its weights are in "
              f"{weights}/; give a larger --n_epochs to train it further")
        return None
    print(f"resuming run {config.run_name} from {path}: {done[0]} epochs and {done[1]} "
          f"batches done (step {checkpoint['step']})")
    record = {k: v for k, v in checkpoint["config"].items() if k not in flags}  # provenance
    record.setdefault("run_id", secrets.token_hex(8))  # of an earlier version: new folders
    return Run(config, record, given, path, checkpoint)


def is_run_name(name: str) -> bool:
    """Whether ``name`` is one that ``--run_name`` accepts."""
    try:
        return folder_name(name) == name
    except argparse.ArgumentTypeError:
        return False


def find_checkpoint(flags: dict, given: set[str]) -> tuple[Path, dict] | None:
    """The checkpoint that ``--resume`` names, and its contents; None for a new run.

    ``auto``: the run of ``--run_name``, or the one whose checkpoint was written last.
    """
    resume, weights_dir = flags["resume"], Path(flags["weights_dir"])
    if resume is None:
        return None
    if resume == "auto":
        run = flags["run_name"] if "run_name" in given else "*"
        checkpoints = (path for path in weights_dir.glob(f"{run}/{CHECKPOINT_GLOB}")
                       if path.is_file())  # not a link to nothing
        newest = max(checkpoints, key=lambda path: path.stat().st_mtime, default=None)
        if newest is None:
            print(f"--resume auto: no run with a checkpoint in {weights_dir}/ to continue "
                  "(with --run_name: of that name), starting a new run")
            return None
        resume = newest.parent
    if Path(resume).is_dir():
        return newest_checkpoint(resume)
    return Path(resume), load_checkpoint(resume)


def make_config(flags: dict, given: set[str], resumed: dict | None = None) -> object:
    """The flags, those not ``given`` taken from a ``resumed`` run's config, checked.

    Returns a frozen dataclass with one field per flag. A flag of ``FIXED_AT_RESUME`` that
    differs from the run's, or a device or ``--amp`` not here, is an ``ArgumentError``.
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
        raise ArgumentError(f"--amp: this {values['device']} has no native bfloat16; train "
                            "without --amp (a run trained with it: resume it where it has)")
    return dataclasses.make_dataclass("TrainConfig", list(values), frozen=True)(**values)


