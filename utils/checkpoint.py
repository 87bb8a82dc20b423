"""Weight files and checkpoints: written atomically, verified before they are read.

A checkpoint holds everything needed to continue a run exactly; a weights file is a state
dict. Every file is read by ``read_torch_file``: its zip's CRCs checked first (a flipped bit
is refused, not trained on), then ``torch.load(weights_only=True)``, which runs no code.
"""

import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from models import Discriminator, Generator, Judge
from utils.cli import in_repository
from utils.errors import UserError
from utils.files import atomic_path

CHECKPOINT_FORMAT = "dcgan-mnist-checkpoint-v2"
CHECKPOINT_GLOB = "checkpoint_step_*.pth"


class CheckpointError(UserError):
    """A checkpoint or weights file is missing, damaged, or of another model."""


def save_atomic(obj: object, path: Path, replace: bool = True) -> None:
    """``torch.save`` that never leaves a truncated file behind (``replace``: ``atomic_path``)."""
    with atomic_path(path, replace) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as error:
            # torch's zip writer may hide a failed write (a full disk) behind its own error.
            if not isinstance(error.__context__, OSError):
                raise
            raise error.__context__ from None


def cpu_state(net: nn.Module) -> dict[str, Tensor]:
    """``net``'s state dict with every tensor on the CPU, for portable weight files."""
    return {key: value.cpu() for key, value in net.state_dict().items()}


def read_torch_file(path: str | Path) -> object:
    """A file of ``torch.save``, verified, read onto the CPU; else a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder; pass a .pth file in it" if path.is_dir() else "no such file"
        raise CheckpointError(f"{path}: {what}")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every entry and checks its CRC
    except (zipfile.BadZipFile, EOFError, OSError):
        damaged = "its zip directory"
    if damaged:
        raise CheckpointError(f"{path} is damaged ({damaged} does not read back as written: "
                              "truncated or corrupt) or not a file of torch.save; use another")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds pickled Python objects (a whole module, as torch.save(net, f) "
            "writes), not weights; loading it would run its code. If you trust it, load it "
            "with torch.load(..., weights_only=False) and save its .state_dict()") from None
    except Exception as error:  # torch raises many types for a bad file
        raise CheckpointError(f"{path} is not a readable PyTorch file "
                              f"({type(error).__name__}); use another") from None


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by train.py; any other file is refused."""
    checkpoint = read_torch_file(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        what = "weights (a state dict)" if is_state_dict(checkpoint) else "something else"
        raise CheckpointError(f"{path} holds {what}, not a training checkpoint of this "
                              f"version of train.py; pass a {CHECKPOINT_GLOB} file to --resume")
    position = [checkpoint.get(key) for key in ("epochs_done", "batch", "step")]
    if not (isinstance(checkpoint.get("config"), dict)
            and all(type(value) is int and value >= 0 for value in position)):
        raise CheckpointError(f"{path} is a checkpoint of train.py without a readable position "
                              "or configuration; use another")
    return checkpoint


def checkpoint_steps(run_dir: str | Path) -> dict[int, Path]:
    """A run's checkpoints, ``checkpoint_step_<step>.pth``, by step, the earliest first."""
    found = {int(match[1]): path for path in Path(run_dir).glob(CHECKPOINT_GLOB)
             if (match := re.fullmatch(r"checkpoint_step_(\d+)\.pth", path.name))}
    return dict(sorted(found.items()))


def newest_checkpoint(run_dir: str | Path) -> tuple[Path, dict]:
    """The newest readable checkpoint of a run's weights folder, and its contents.

    A damaged newest one is skipped, and said so: rotation keeps the older ones for this.
    """
    skipped = 0
    for path in reversed(checkpoint_steps(run_dir).values()):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as error:
            print(f"--resume: skipped {error}")
            skipped += 1
    found = f"{skipped} unreadable checkpoints" if skipped else f"no {CHECKPOINT_GLOB}"
    raise CheckpointError(f"{run_dir} holds {found}; pass a run's weights folder or one of its "
                          "checkpoints to --resume, or start a new run")


def is_state_dict(obj: object) -> bool:
    """Whether ``obj`` is a non-empty dict of tensors by name, as ``state_dict()`` gives."""
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def load_state_dict_from(path: str | Path, kind: str) -> dict[str, Tensor]:
    """The ``kind`` (generator or discriminator) state dict of a weights file or checkpoint.

    Weights of the other network or of another model are named and refused.
    """
    obj = read_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj[kind]
    if not is_state_dict(obj):
        raise CheckpointError(f"{path} holds no state dict of a {kind}; use a weights file "
                              "written by train.py")
    state = dict(obj)
    consume_prefix_in_state_dict_if_present(state, "_orig_mod.")  # a torch.compile'd network's
    names = {kind: set(net.state_dict()) for kind, net in (
        ("generator", Generator(nz=1, ngf=1)), ("discriminator", Discriminator(ndf=1)))}
    if set(state) != names[kind]:
        found = next((f"the {other}" for other in names if set(state) == names[other]),
                     "another model")
        raise CheckpointError(f"{path} holds weights of {found}, not of a DCGAN {kind}; "
                              f"use a {kind} file such as weights/{kind}_final.pth")
    return state


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
    if not Path(path).is_file():
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
