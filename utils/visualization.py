"""Image and plot files from tensors and tables; no network here (sampling: utils/visualize.py).

Image grids, the training-curve plot and the progress animation.
"""

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # drawn straight to a file: no display, no pyplot state
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid, save_image

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
    """Save images ``(N, C, H, W)`` in [-1, 1] as one grid with ``nrow`` images a row.

    In the format of ``path``'s suffix (PNG if PIL writes none); ``replace``: see
    ``utils.files.atomic_path``.
    """
    with atomic_path(path, replace=replace) as tmp:
        save_image(image_grid(images, nrow), tmp, format=image_format(path) or "PNG")


def plot_training_curves(log: pd.DataFrame, out_path: str | Path) -> None:
    """Plot the losses and the discriminator's outputs of a training log against steps.

    ``log`` has the columns of ``training_data.csv``: ``step``, ``D_loss``, ``G_loss``,
    ``D(x)`` and ``D(G(z))`` at least. Faint lines are per batch; solid lines a running mean
    over 50 batches.
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
    """Animate the ``epoch_{N}_final.png`` grids of ``results_dir`` for N up to ``last_epoch``.

    In epoch order; later grids (of a run taken back to an earlier checkpoint) are left out.
    The last frame is held three times as long. Returns the number of frames.
    """
    numbered = sorted((int(p.name.split("_")[1]), p)
                      for p in Path(results_dir).glob("epoch_*_final.png"))
    frames = [path for epoch, path in numbered if epoch <= last_epoch]
    if not frames:
        return 0
    images = [Image.open(path).convert("L") for path in frames]
    durations = [frame_ms] * (len(images) - 1) + [3 * frame_ms]
    with atomic_path(out_path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0)
    return len(images)
