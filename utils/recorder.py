"""Where a run's numbers go: CSV and TensorBoard every batch, JSON and curves every epoch."""

import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from utils.errors import UserError
from utils.files import append_line, atomic_path, open_for_append
from utils.step import STAT_NAMES
from utils.visualize import image_grid, plot_training_curves

COLUMNS = ("epoch", "batch", "step", *STAT_NAMES)
EVALUATION_COLUMNS = ("epoch", "step", "generator", "fid", "kid", "inception_score",
                      "judge_confidence", "digit_kl", "min_digit_ratio", "precision", "recall",
                      "density", "coverage", "nn_distance_ratio", "copies")
# TensorBoard tags allow only letters, digits and "-/_.", so D(x) cannot be a tag name.
TENSORBOARD_TAGS = {"D_loss": "loss/D", "G_loss": "loss/G", "D(x)": "D_output/real",
                    "D(G(z))": "D_output/fake", "D(G(z))_post": "D_output/fake_after_D_step"}


class TrainingLog:
    """A run's logs: ``training_data.csv``, TensorBoard events, the JSON and the curves.

    A row per batch is appended whole; the JSON and curves are written from the rows in
    memory. Statistics stay on the device until ``flush`` reads them back in one go, every
    ``flush_every`` steps (a read-back makes a GPU's host wait). Rows and events after
    ``resume_step`` (a resumed run's checkpoint's) go.
    """

    def __init__(self, results: Path, logs: Path, resume_step: int, flush_every: int) -> None:
        self.flush_every, self.pending = flush_every, []
        self.csv_path = results / "training_data.csv"
        self.json_path = results / "training_data.json"
        self.curves_path = results / "training_curves.png"
        self.evaluation_path = results / "evaluation_history.csv"
        self.rows = start_csv(self.csv_path, COLUMNS, resume_step)
        start_csv(self.evaluation_path, EVALUATION_COLUMNS, resume_step)
        if len(self.rows) < resume_step:
            print(f"train.py: warning: {self.csv_path} has {len(self.rows)} of the "
                  f"{resume_step} rows before the checkpoint; the training state is complete",
                  file=sys.stderr)
        self.csv = open_for_append(self.csv_path)
        self.logs = logs
        # TensorBoard reads a folder's event files in the order of their names, which begin
        # with the second each was made: the purge of the steps after resume_step must be in
        # a file after those it purges, so a resume in the same second waits for the next.
        made = [int(p.name.split(".")[3]) for p in logs.glob("events.out.tfevents.*.*")
                if p.name.split(".")[3].isdigit()]
        time.sleep(min(1.0, max(0.0, max(made, default=0) + 1 - time.time())))
        self.tensorboard = self.tb("SummaryWriter", SummaryWriter, str(logs),
                                   purge_step=resume_step + 1)

    def tb(self, what: str, write: object, *args: object, **kwargs: object) -> object:
        """Call a TensorBoard writer method; a failed write names the log folder."""
        try:
            return write(*args, **kwargs)
        except OSError as error:
            raise OSError(error.errno, f"cannot write TensorBoard events in {self.logs} "
                                       f"({what}): {error.strerror}") from None

    def log_config(self, record: dict) -> None:
        """Show the run's configuration in TensorBoard's text tab."""
        self.tb("text", self.tensorboard.add_text, "config",
                f"```\n{json.dumps(record, indent=2)}\n```")

    def log_step(self, epoch: int, batch: int, step: int, stats: Tensor) -> list[dict]:
        """Take one batch's ``gan_step`` statistics; every ``flush_every`` steps, ``flush``."""
        self.pending.append((epoch, batch, step, stats))
        return self.flush() if len(self.pending) >= self.flush_every else []

    def flush(self) -> list[dict]:
        """Write the pending batches as CSV rows and scalars; return their records.

        Raises:
            UserError: a number is NaN or infinite: training diverged.
        """
        if not self.pending:
            return []
        values = torch.stack([stats for *_, stats in self.pending]).tolist()  # one wait
        records = []
        for (epoch, batch, step, _), row in zip(self.pending, values, strict=True):
            texts = [str(np.float32(v)) for v in row]  # float32's shortest exact decimals
            append_line(self.csv, ",".join([str(epoch), str(batch), str(step), *texts]) + "\n",
                        self.csv_path)
            self.rows.append([epoch, batch, step, *map(float, texts)])
            records.append(dict(zip(COLUMNS, self.rows[-1], strict=True)))
            for name, tag in TENSORBOARD_TAGS.items():
                self.tb("scalars", self.tensorboard.add_scalar, tag, records[-1][name], step)
        self.pending.clear()
        for record in records:
            bad = [f"{k}={record[k]}" for k in STAT_NAMES if not math.isfinite(record[k])]
            if bad:
                error = UserError(f"training diverged at step {record['step']} (epoch "
                                  f"{record['epoch']}, batch {record['batch']}): "
                                  f"{', '.join(bad)}; a resume would diverge again: start a "
                                  "new run with a lower --lr")
                error.resumable = False  # a resume would repeat the same steps
                raise error
        return records

    def log_epoch(self, step: int, samples: Tensor, averaged: Tensor | None) -> None:
        """Log an epoch's fixed-noise grids (of the generator, its average), JSON and curves."""
        self.tb("images", self.tensorboard.add_image, "samples/fixed_noise", image_grid(samples),
                step)
        if averaged is not None:
            self.tb("images", self.tensorboard.add_image, "samples/fixed_noise_ema",
                    image_grid(averaged), step)
        self.export_json()
        plot_training_curves(pd.DataFrame(self.rows, columns=COLUMNS), self.curves_path)

    def log_evaluation(self, epoch: int, step: int, generator: str, scores: dict) -> None:
        """Append quality ``scores`` (``raw``: the generator, ``ema``: its average)."""
        row = {"epoch": epoch, "step": step, "generator": generator, **scores}
        fd = open_for_append(self.evaluation_path)
        try:
            append_line(fd, ",".join(str(row[c]) for c in EVALUATION_COLUMNS) + "\n",
                        self.evaluation_path)
        finally:
            os.close(fd)
        group = "eval" if generator == "raw" else f"eval_{generator}"
        for column in EVALUATION_COLUMNS[3:]:
            self.tb("scalars", self.tensorboard.add_scalar, f"{group}/{column}", scores[column],
                    step)

    def export_json(self) -> None:
        """Rewrite ``training_data.json`` from the rows in memory; flush TensorBoard's events."""
        self.tb("flush", self.tensorboard.flush)
        with atomic_path(self.json_path) as tmp:
            tmp.write_text(json.dumps([dict(zip(COLUMNS, row, strict=True)) for row in self.rows],
                                      separators=(",", ":")))

    def close(self) -> None:
        """Close the CSV and TensorBoard files (pending rows are not written: call ``flush``)."""
        os.close(self.csv)
        self.tb("close", self.tensorboard.close)


def start_csv(path: Path, columns: tuple[str, ...], resume_step: int) -> list[list]:
    """Start the CSV log ``path``, keeping the rows up to ``resume_step`` that parse; the rows.

    Lines that are not rows of this program (half a row after a crash, a blank line) are
    dropped, and their count said; rows after the step will be written again.
    """
    header = ",".join(columns) + "\n"
    lines = path.read_text(errors="replace").splitlines(keepends=True) if path.exists() else []
    types = [int if c in ("epoch", "batch", "step") else str if c == "generator" else float
             for c in columns]
    kept, rows, dropped = [header], [], 0
    for line in lines[1:] if lines[:1] == [header] else lines:
        values = line.rstrip("\n").split(",")
        try:
            row = [parse(v) for parse, v in zip(types, values, strict=True)]
        except ValueError:
            row = None
        if row and line.endswith("\n") and row[columns.index("step")] <= resume_step:
            kept.append(line)
            rows.append(row)
        elif row is None or not line.endswith("\n"):
            dropped += 1
    if dropped:
        print(f"train.py: warning: {path}: dropped {dropped} lines that are not rows of this "
              "program's log", file=sys.stderr)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(kept))
    return rows


def quiet_tensorboard_thread(args: threading.ExceptHookArgs) -> None:
    """A ``threading.excepthook``: no traceback from TensorBoard's writer thread.

    Its error (a full disk) reaches the main thread at the next write, as one line.
    """
    if type(args.thread).__name__ != "_AsyncWriterThread":
        threading.__excepthook__(args)
