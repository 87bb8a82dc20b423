"""Pictures (image grids, training curves, the progress GIF) and sampling from a generator."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure  # drawn straight to a file: no display, no pyplot state
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from utils.errors import UserError
from utils.files import atomic_path


def image_grid(images: Tensor, nrow: int = 8) -> Tensor:
    """Tile images ``(N, C, H, W)`` in [-1, 1] into one ``(3, H', W')`` grid in [0, 1]."""
    return make_grid(images.detach().cpu(), nrow=nrow, padding=2, normalize=True,
                     value_range=(-1, 1))


def image_format(path: str | Path) -> str | None:
    """The image format that ``path``'s suffix names (``.png``: PNG), if PIL writes it."""
    Image.init()
    found = Image.registered_extensions().get(Path(path).suffix.lower())
    return found if found in Image.SAVE else None


def save_image_grid(images: Tensor, path: str | Path, nrow: int = 8,
                    replace: bool = True) -> None:
    """Save images ``(N, C, H, W)`` in [-1, 1] as one grid, in the format of ``path``'s suffix."""
    with atomic_path(path, replace=replace) as tmp:
        save_image(image_grid(images, nrow), tmp, format=image_format(path) or "PNG")


def plot_training_curves(log: pd.DataFrame, out_path: str | Path) -> None:
    """Plot the losses and D's outputs of ``training_data.csv``'s rows against steps.

    Faint lines are per batch; solid lines a running mean over 50 batches.
    """
    log = log.set_index("step")
    fig = Figure(figsize=(10, 7))
    ax_loss, ax_prob = fig.subplots(2, 1, sharex=True)
    for ax, columns in ((ax_loss, ["D_loss", "G_loss"]), (ax_prob, ["D(x)", "D(G(z))"])):
        for column, colour in zip(columns, ("tab:blue", "tab:orange"), strict=True):
            ax.plot(log.index, log[column], color=colour, alpha=0.25, linewidth=0.8)
            smooth = log[column].rolling(50, min_periods=1).mean()
            ax.plot(log.index, smooth, color=colour, label=column)
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("BCE loss")
    ax_prob.set_ylabel("discriminator output")
    ax_prob.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax_prob.set_ylim(0, 1)
    ax_prob.set_xlabel("step (batches)")
    ax_loss.set_title("DCGAN on MNIST: training curves")
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def save_progress_gif(results_dir: str | Path, out_path: str | Path, last_epoch: int,
                      frame_ms: int = 300) -> int:
    """Animate the ``epoch_{N}_final.png`` grids for N up to ``last_epoch``; the frame count.

    Later grids (of a run taken back to an earlier checkpoint) are left out; the last frame is
    held three times as long.
    """
    grids = {int(match[1]): path for path in Path(results_dir).glob("epoch_*_final.png")
             if (match := re.fullmatch(r"epoch_(\d+)_final\.png", path.name))}
    frames = [grids[epoch] for epoch in sorted(grids) if epoch <= last_epoch]
    if not frames:
        return 0
    images = [Image.open(path).convert("L") for path in frames]
    durations = [frame_ms] * (len(images) - 1) + [3 * frame_ms]
    with atomic_path(out_path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0)
    return len(images)


def device_of(net: nn.Module) -> torch.device:
    """The device of ``net``'s parameters, where its inputs must go."""
    return next(net.parameters()).device


@contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in eval mode (BatchNorm running statistics) for the block."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


@torch.no_grad()
def generate_fixed_noise_grid(
    netG: nn.Module, noise: Tensor, path: str | Path, nrow: int = 8
) -> Tensor:
    """Draw images ``(N, 1, 28, 28)`` from ``noise`` in ``netG``'s mode; save them as a grid."""
    images = netG(noise.to(device_of(netG)))
    save_image_grid(images, path, nrow=nrow)
    return images


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """The points ``(T, *z0.shape)`` at ``t`` ``(T,)`` of the great circle from ``z0`` to ``z1``.

    Gaussian latents lie near a sphere of radius sqrt(nz); a straight line between two passes
    inside it, where the generator saw no noise; this path keeps a typical norm (White,
    "Sampling Generative Networks", 2016). Parallel vectors get the straight line.
    """
    t = t.view(-1, *([1] * z0.dim()))
    a, b = z0.flatten(), z1.flatten()
    omega = torch.acos((torch.dot(a, b) / (a.norm() * b.norm())).clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


@torch.no_grad()
def save_interpolation_grid(netG: nn.Module, endpoints: Tensor, path: str | Path,
                            n_steps: int = 10) -> Tensor:
    """Save a grid whose rows morph one digit into another along ``slerp`` paths.

    ``endpoints`` ``(2, rows, nz, 1, 1)``: each row's start and end, both drawn among its
    ``n_steps`` images.
    """
    t = torch.linspace(0, 1, n_steps, device=endpoints.device)
    noise = torch.cat([slerp(start, end, t) for start, end in zip(*endpoints, strict=True)])
    images = netG(noise.to(device_of(netG)))
    save_image_grid(images, path, nrow=n_steps)
    return images


# Rows of the interpolation images: the first runs 1 -> 7, the original README's example.
DIGIT_PAIRS = ((1, 7), (0, 8), (2, 3), (4, 9), (5, 6), (3, 8), (6, 0), (7, 2))
INTERPOLATION_ROWS = len(DIGIT_PAIRS)
POOL_SIZE = 1024  # latent points among which the judge picks each digit's surest


@torch.no_grad()
def digit_probabilities(netG: nn.Module, judge: nn.Module, noise: Tensor) -> Tensor:
    """The judge's class probabilities ``(N, 10)`` for the images ``netG`` draws from ``noise``."""
    images = netG(noise.to(device_of(netG)))
    return judge(images.to(device_of(judge))).softmax(1).cpu()


def digit_endpoints(netG: nn.Module, judge: nn.Module, seed: int,
                    pairs: tuple[tuple[int, int], ...] = DIGIT_PAIRS) -> Tensor:
    """Endpoints ``(2, len(pairs), nz, 1, 1)`` of interpolations between chosen digits.

    For each pair ``(a, b)``: of ``POOL_SIZE`` latent points drawn from ``seed`` (by a
    generator of its own), the one the judge finds most surely an ``a``, and a ``b``.
    """
    pool = torch.randn(POOL_SIZE, netG.nz, 1, 1, generator=torch.Generator().manual_seed(seed))
    pool = pool.to(device_of(netG))
    probabilities = digit_probabilities(netG, judge, pool)
    # per digit: the pool index of its most confident image
    best = probabilities.argmax(0).to(pool.device)
    starts = torch.stack([pool[best[a]] for a, _ in pairs])
    ends = torch.stack([pool[best[b]] for _, b in pairs])
    return torch.stack([starts, ends])


def sample_digit(netG: nn.Module, judge: nn.Module, digit: int, n: int, nz: int,
                 generator: torch.Generator, min_confidence: float = 0.9,
                 batch_size: int = 1000, max_draws: int | None = None) -> Tensor:
    """Noise ``(n, nz, 1, 1)`` whose images the judge calls ``digit`` with ``min_confidence``.

    Rejection sampling, in batches drawn from ``generator``; a ``UserError`` after
    ``max_draws`` draws (default: 50 per vector asked for, at least 20,000).
    """
    max_draws = max_draws or max(20_000, 50 * n)
    kept: list[Tensor] = []
    found = drawn = 0
    while found < n and drawn < max_draws:
        noise = torch.randn(min(batch_size, max_draws - drawn), nz, 1, 1, generator=generator)
        probabilities = digit_probabilities(netG, judge, noise)
        confident = (probabilities.argmax(1) == digit) & (probabilities[:, digit] >= min_confidence)
        kept.append(noise[confident])
        found += int(confident.sum())
        drawn += len(noise)
    if found < n:
        raise UserError(f"only {found} of {drawn} samples were a {digit} with confidence "
                        f">= {min_confidence}; lower --min_confidence or ask for fewer")
    return torch.cat(kept)[:n]
