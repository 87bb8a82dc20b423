"""``torch.hub`` entry point: the shipped generator in one line.

    import torch
    netG = torch.hub.load("path/to/this/clone", "generator", source="local")  # offline
    netG = torch.hub.load("path/to/this/clone", "generator", source="local", ema=True)

The weights are those shipped in ``weights/`` (see README.md, "Results");
``torch.hub.load("<owner>/<repo>", "generator")`` (``source="github"``, the default)
downloads the repository once.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

dependencies = ["torch"]  # what torch.hub checks before importing this file

REPOSITORY = Path(__file__).resolve().parent
PACKAGES = ("models", "utils")  # this repository's, whose names a caller's may share
SHIPPED = {"nz": 100, "ngf": 64}


@contextmanager
def this_repository() -> Iterator[None]:
    """Import ``PACKAGES`` from this repository in the block; a caller's of those names after."""

    def ours(name: str) -> bool:
        return name.split(".")[0] in PACKAGES

    theirs = {name: module for name, module in sys.modules.items() if ours(name) and not (
        getattr(module, "__file__", None) or "").startswith(str(REPOSITORY))}
    for name in theirs:
        del sys.modules[name]
    sys.path.insert(0, str(REPOSITORY))
    try:
        yield
    finally:
        sys.path.remove(str(REPOSITORY))
        if theirs:
            for name in [name for name in sys.modules if ours(name)]:
                del sys.modules[name]
            sys.modules.update(theirs)


def generator(pretrained: bool = True, ema: bool = False, nz: int | None = None,
              ngf: int | None = None) -> nn.Module:
    """The DCGAN generator: noise ``(N, nz, 1, 1)`` to digits ``(N, 1, 28, 28)`` in [-1, 1].

    Args:
        pretrained: the shipped weights, ready to sample (eval mode, on the CPU; move it with
            ``.to(device)``). False: a new, untrained generator, in training mode.
        ema: the moving average of the generator's weights (``weights/generator_ema.pth``,
            see docs/averaging.md) instead of the generator (``weights/generator_final.pth``).
        nz: noise length of an untrained generator (default 100, the shipped one's).
        ngf: base width of an untrained generator (default 64, the shipped one's).
    """
    with this_repository():
        from models import Generator
        from utils.checkpoint import load_generator
        from utils.cli import check, positive_int

        sizes = {k: v if v is None else check(k, v, positive_int) for k, v in
                 (("nz", nz), ("ngf", ngf))}
        for name, value in (("pretrained", pretrained), ("ema", ema)):
            if not isinstance(value, bool):  # "False" is true
                raise ValueError(f"{name}: expected True or False, got {value!r}")
        if not pretrained:
            if ema:
                raise ValueError("ema=True needs pretrained=True: an untrained generator has "
                                 "no average")
            return Generator(**{k: v if v is not None else SHIPPED[k] for k, v in sizes.items()})
        if any(v is not None and v != SHIPPED[k] for k, v in sizes.items()):
            raise ValueError("nz and ngf are for pretrained=False; the shipped generator has "
                             "nz=100 and ngf=64")
        path = REPOSITORY / "weights" / ("generator_ema.pth" if ema else "generator_final.pth")
        if ema and not path.is_file():
            raise FileNotFoundError(f"{path} is missing: this clone has no averaged "
                                    "generator; use ema=False")
        return load_generator(path)
