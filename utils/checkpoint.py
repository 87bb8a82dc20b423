"""Checkpoints and weight files: written atomically, read safely, errors in one line.

A checkpoint (``weights/checkpoint_step_{S}.pth``) holds everything needed to continue a
run exactly; a weights file is a plain state dict. ``load_state_dict_from`` reads either,
with or without the prefix that ``torch.compile`` adds to the names.
"""

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from models import Discriminator, Generator, Judge
from utils.cli import in_repository
from utils.errors import UserError
from utils.files import atomic_path

CHECKPOINT_FORMAT = "dcgan-mnist-checkpoint-v1"
CHECKPOINT_GLOB = "checkpoint_step_*.pth"


class CheckpointError(UserError):
    """A checkpoint or weights file is missing, unreadable, or of another model."""


def save_checkpoint(checkpoint: dict, weights_dir: Path, keep: int) -> Path:
    """Write ``checkpoint`` atomically and delete all but the newest ``keep`` checkpoints.

    ``weights_dir`` is the run's own folder: only its checkpoints are rotated. The file is
    named after the step it was taken after; the names sort by step.
    """
    path = weights_dir / f"checkpoint_step_{checkpoint['step']:08d}.pth"
    save_atomic({"format": CHECKPOINT_FORMAT, **checkpoint}, path)
    for old in sorted(weights_dir.glob(CHECKPOINT_GLOB))[:-keep]:
        old.unlink()
    return path


def cpu_state(net: nn.Module) -> dict[str, Tensor]:
    """``net``'s state dict with every tensor on the CPU, for portable weight files."""
    return {key: value.cpu() for key, value in net.state_dict().items()}


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` that never leaves a truncated file behind."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as error:
            # A failed write (say, a full disk) raises OSError, which torch's zip writer may
            # hide behind a RuntimeError of its own while closing: report the real cause.
            if not isinstance(error.__context__, OSError):
                raise
            raise error.__context__ from None


def read_torch_file(path: str | Path) -> object:
    """``torch.load(path, weights_only=True)`` onto the CPU, with one-line errors."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass a .pth file in it")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise CheckpointError(
            f"{path} is not a readable PyTorch file (truncated, corrupt or not saved by "
            f"torch.save: {reason[:120]}); use another file"
        ) from None


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by train.py, refusing any other file."""
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        what = "weights (a state dict)" if _is_state_dict(checkpoint) else "something else"
        raise CheckpointError(f"{path} holds {what}, not a training checkpoint of this "
                              f"repository; pass a {CHECKPOINT_GLOB} file to --resume")
    return checkpoint


def newest_checkpoint(run_dir: str | Path) -> tuple[Path, dict, list[str]]:
    """The newest readable checkpoint of a run's weights folder.

    The older checkpoints that rotation keeps are there for exactly this: if the newest is
    truncated or corrupt, the next one is taken. Returns its path, its contents and one
    line for each newer checkpoint that could not be read.

    Raises:
        CheckpointError: the folder holds no readable checkpoint.
    """
    skipped = []
    for path in sorted(Path(run_dir).glob(CHECKPOINT_GLOB), reverse=True):
        try:
            return path, load_checkpoint(path), skipped
        except CheckpointError as error:
            skipped.append(str(error))
    found = f"{len(skipped)} unreadable checkpoints" if skipped else f"no {CHECKPOINT_GLOB}"
    raise CheckpointError(f"{Path(run_dir)} holds {found}; pass a run's weights folder "
                          "(<weights_dir>/<run>/) or one of its checkpoints to --resume, or "
                          "start a new run")


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def load_state_dict_from(path: str | Path, kind: str) -> dict[str, Tensor]:
    """The ``kind`` (``"generator"`` or ``"discriminator"``) state dict stored in ``path``.

    ``path`` may be a plain state dict or a checkpoint; the name prefix of a
    ``torch.compile``d network's state dict is removed.

    Raises:
        CheckpointError: unreadable file, or weights of the other network or another model.
    """
    obj = read_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj[kind]
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path} holds no state dict of a {kind}; use a weights file "
                              "written by train.py")
    state = dict(obj)
    consume_prefix_in_state_dict_if_present(state, "_orig_mod.")  # a torch.compile'd network's
    if set(state) != _parameter_names(kind):
        other = "discriminator" if kind == "generator" else "generator"
        found = f"the {other}" if set(state) == _parameter_names(other) else "another model"
        raise CheckpointError(f"{path} holds weights of {found}, not of a DCGAN {kind}; "
                              f"use a {kind} file such as weights/{kind}_final.pth")
    return state


def _parameter_names(kind: str) -> set[str]:
    """The state-dict keys of a ``kind``; they do not depend on the sizes."""
    net = Generator(nz=1, ngf=1) if kind == "generator" else Discriminator(ndf=1)
    return set(net.state_dict())


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A Generator built to the sizes stored in ``path``, loaded, in eval mode on ``device``.

    Example:
        netG = load_generator("weights/generator_final.pth")
    """
    state = load_state_dict_from(path, "generator")
    nz, ngf8 = state["main.0.weight"].shape[:2]  # the first layer: nz -> ngf*8 channels
    netG = Generator(nz, ngf8 // 8)
    netG.load_state_dict(state)
    return netG.to(device).eval()


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """The judge network of ``path`` (made by train_judge.py), in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: make it with `python "
                              f"{in_repository('train_judge.py')}` (about 2 minutes on a CPU), "
                              "or pass the file with --judge")
    judge = Judge()
    try:
        judge.load_state_dict(read_torch_file(path))
    except (RuntimeError, TypeError, AttributeError):
        raise CheckpointError(f"{path} holds no judge weights; make it with "
                              f"`python {in_repository('train_judge.py')}`") from None
    return judge.to(device).eval()
