"""A training run's configuration: train.py's flags, merged with a resumed run's, checked once.

``TrainConfig`` is frozen: after ``make_config`` nothing changes it, and every part of the
program reads the same values (the checkpoint and ``config.json`` store them).
"""

from dataclasses import asdict, dataclass, fields

import torch

from utils.device import amp_supported, resolve_device
from utils.errors import ArgumentError

# Flags that change what is computed, or which run it is: at --resume they must match.
FIXED_AT_RESUME = ("nz", "ngf", "ndf", "batch_size", "lr", "beta1", "seed", "limit_batches",
                   "amp", "ema_decay", "run_name")
NOT_INHERITED = ("resume", "device", "debug", "weights_dir")  # from this command line only


@dataclass(frozen=True)
class TrainConfig:
    """Every flag of train.py (``python train.py --help`` says what each means)."""

    batch_size: int
    n_epochs: int
    lr: float
    beta1: float
    nz: int
    ngf: int
    ndf: int
    save_interval: int
    sample_interval: int
    data_dir: str
    results_dir: str
    weights_dir: str
    log_dir: str
    run_name: str
    device: str
    seed: int
    num_workers: int
    limit_batches: int | None
    checkpoint_interval: int
    keep_checkpoints: int
    eval_interval: int
    eval_samples: int
    ema_decay: float
    judge: str
    resume: str | None
    amp: bool
    compile: bool
    deterministic: bool
    debug: bool

    def to_dict(self) -> dict:
        """The configuration as a plain dict (for JSON and checkpoints)."""
        return asdict(self)


def make_config(flags: dict, given: set[str], resumed: dict | None = None) -> TrainConfig:
    """Merge the command line's ``flags`` with a resumed run's configuration, then check them.

    Args:
        flags: every flag's value from the parser (defaults included).
        given: the flags the command line gave explicitly.
        resumed: the ``config`` of the checkpoint being resumed, or None for a new run.
            Flags not given are taken from it, but those of ``NOT_INHERITED``.

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
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{key: values[key] for key in names})
