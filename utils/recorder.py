"""Where a run's numbers go: CSV and TensorBoard every batch, JSON and curves every epoch."""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from utils.files import atomic_path
from utils.training import STAT_NAMES
from utils.visualization import image_grid, plot_training_curves

COLUMNS = ("epoch", "batch", "step", *STAT_NAMES)
EVALUATION_COLUMNS = ("epoch", "step", "fid", "kid", "inception_score", "judge_confidence",
                      "digit_kl", "min_digit_ratio", "precision", "recall", "density", "coverage",
                      "nn_distance_ratio", "copies")

# TensorBoard tags allow only letters, digits and "-/_.", so D(x) cannot be a tag name.
TENSORBOARD_TAGS = {
    "D_loss": "loss/D",
    "G_loss": "loss/G",
    "D(x)": "D_output/real",
    "D(G(z))": "D_output/fake",
    "D(G(z))_post": "D_output/fake_after_D_step",
}


class TrainingRecorder:
    """Records a run: CSV and TensorBoard every batch, JSON and curves every epoch.

    ``training_data.csv`` gets a row per batch, each written by one ``write`` call, so a
    crash never leaves half a row; ``training_data.json`` (at each checkpoint and epoch end)
    and ``training_curves.png`` (each epoch end) are regenerated from it and replaced
    atomically. Use as a context manager, or call ``close``.

    The statistics of a step stay on the training device until ``flush``, which reads back
    the batches pending in one go, every ``flush_every`` steps: on a GPU, reading numbers
    back makes the host wait for the device, so it should not happen every step.

    Args:
        results_dir: folder of the CSV, JSON and curves.
        run_log_dir: TensorBoard folder of this run.
        resume_step: continue a run whose checkpoint was taken after this step: rows and
            events of later steps (written after the checkpoint) are dropped. ``None``
            starts afresh.
        flush_every: steps between read-backs.
    """

    def __init__(
        self, results_dir: Path, run_log_dir: Path, resume_step: int | None = None,
        flush_every: int = 1,
    ) -> None:
        self.flush_every = flush_every
        self._pending: list[tuple[int, int, int, Tensor]] = []
        self.csv_path = results_dir / "training_data.csv"
        self.json_path = results_dir / "training_data.json"
        self.curves_path = results_dir / "training_curves.png"
        self.evaluation_path = results_dir / "evaluation_history.csv"
        for path, columns in ((self.csv_path, COLUMNS),
                              (self.evaluation_path, EVALUATION_COLUMNS)):
            if resume_step is None or not path.exists():
                with atomic_path(path) as tmp:
                    tmp.write_text(",".join(columns) + "\n")
            else:  # drop what was written after the checkpoint; it will be written again
                kept = pd.read_csv(path).query("step <= @resume_step")
                with atomic_path(path) as tmp:
                    kept.to_csv(tmp, index=False)
        self._csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._csv = csv.writer(self._csv_file)
        purge_step = None if resume_step is None else resume_step + 1
        self.tensorboard = SummaryWriter(str(run_log_dir), purge_step=purge_step)

    def log_step(self, epoch: int, batch: int, step: int,
                 stats: Tensor) -> list[dict[str, float]]:
        """Take one batch's ``gan_step`` statistics; every ``flush_every`` steps, ``flush``.

        Returns what ``flush`` returns, or nothing if it did not run.
        """
        self._pending.append((epoch, batch, step, stats))
        return self.flush() if len(self._pending) >= self.flush_every else []

    def flush(self) -> list[dict[str, float]]:
        """Write the pending batches as CSV rows and scalars; return their records.

        Each record holds ``epoch``, ``batch``, ``step`` and the ``STAT_NAMES``.
        """
        if not self._pending:
            return []
        values = torch.stack([stats for *_, stats in self._pending]).tolist()  # one wait
        records = []
        for (epoch, batch, step, _), row in zip(self._pending, values, strict=True):
            records.append({"epoch": epoch, "batch": batch, "step": step,
                            **dict(zip(STAT_NAMES, row, strict=True))})
            # float32 numbers, written in their shortest exact form (about 9 digits)
            self._csv.writerow([epoch, batch, step, *(str(np.float32(v)) for v in row)])
            self._csv_file.flush()
            for name, tag in TENSORBOARD_TAGS.items():
                self.tensorboard.add_scalar(tag, records[-1][name], step)
        self._pending.clear()
        return records

    def log_epoch(self, step: int, samples: Tensor) -> None:
        """Log the fixed-noise samples ``(N, 1, 28, 28)`` and refresh the JSON and curves."""
        self.tensorboard.add_image("samples/fixed_noise", image_grid(samples), step)
        self.export_json()
        plot_training_curves(self.csv_path, self.curves_path)

    def log_evaluation(self, epoch: int, step: int, scores: dict) -> None:
        """Append quality ``scores`` (utils/metrics.py) to the history and TensorBoard."""
        row = {"epoch": epoch, "step": step, **scores}
        with open(self.evaluation_path, "a", newline="") as f:
            csv.writer(f).writerow([row[column] for column in EVALUATION_COLUMNS])
        for column in EVALUATION_COLUMNS[2:]:
            self.tensorboard.add_scalar(f"eval/{column}", scores[column], step)

    def export_json(self) -> None:
        """Rewrite ``training_data.json`` from the CSV and flush TensorBoard's events."""
        self.tensorboard.flush()
        log = pd.read_csv(self.csv_path)
        with atomic_path(self.json_path) as tmp:
            log.to_json(tmp, orient="records", double_precision=7)

    def close(self) -> None:
        """Flush and close the CSV and TensorBoard files."""
        self.flush()
        self._csv_file.close()
        self.tensorboard.close()

    def __enter__(self) -> "TrainingRecorder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
