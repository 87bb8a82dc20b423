"""``torch.hub`` entry point: the shipped generator in one line.

    import torch
    netG = torch.hub.load("path/to/this/clone", "generator", source="local")  # offline
    netG = torch.hub.load("path/to/this/clone", "generator", source="local", ema=True)

The weights are those shipped in ``weights/`` (see README.md, "Results");
``torch.hub.load("<owner>/<repo>", "generator")`` (``source="github"``, the default)
downloads the repository once.
"""

from pathlib import Path

from models import Generator
from utils.checkpoint import load_generator

dependencies = ["torch"]  # what torch.hub checks before importing this file

WEIGHTS = Path(__file__).resolve().parent / "weights"


def generator(pretrained: bool = True, ema: bool = False, **sizes: int) -> Generator:
    """The DCGAN generator: noise ``(N, 100, 1, 1)`` to digits ``(N, 1, 28, 28)`` in [-1, 1].

    Args:
        pretrained: the shipped weights, ready to sample (eval mode, on the CPU; move it with
            ``.to(device)``). False: a new, untrained generator, in training mode.
        ema: the moving average of the generator's weights (``weights/generator_ema.pth``,
            see README.md) instead of the generator itself (``weights/generator_final.pth``).
            Until a model trained with the average is shipped, this file is missing and
            ``load_generator`` says so in one line.
        **sizes: ``nz`` and ``ngf`` of an untrained generator (default 100 and 64).
    """
    if not pretrained:
        return Generator(**sizes)
    if sizes:
        raise ValueError(f"{', '.join(sizes)}: only for pretrained=False; the shipped "
                         "generator has nz=100 and ngf=64")
    return load_generator(WEIGHTS / ("generator_ema.pth" if ema else "generator_final.pth"))
