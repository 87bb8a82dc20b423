"""Where a run's numbers go: CSV and TensorBoard every batch, JSON and curves every epoch."""

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

from utils.errors import UserError
from utils.files import append_line, atomic_path
from utils.step import STAT_NAMES
from utils.visualization import image_grid, plot_training_curves

COLUMNS = ("epoch", "batch", "step", *STAT_NAMES)
EVALUATION_COLUMNS = ("epoch", "step", "generator", "fid", "kid", "inception_score",
                      "judge_confidence", "digit_kl", "min_digit_ratio", "precision", "recall",
                      "density", "coverage", "nn_distance_ratio", "copies")

# TensorBoard tags allow only letters, digits and "-/_.", so D(x) cannot be a tag name.
TENSORBOARD_TAGS = {"D_loss": "loss/D", "G_loss": "loss/G", "D(x)": "D_output/real",
                    "D(G(z))": "D_output/fake", "D(G(z))_post": "D_output/fake_after_D_step"}


def shortest(value: float) -> str:
    """A float32 number in its shortest exact decimal form (about 9 digits)."""
    return str(np.float32(value))


class TrainingRecorder:
    """Records a run: CSV and TensorBoard every batch, JSON and curves every epoch.

    ``training_data.csv`` gets a row per batch, each appended whole or not at all (see
    ``utils.files.append_line``); ``training_data.json`` (at each checkpoint and epoch end)
    and ``training_curves.png`` (each epoch end) are written from the rows kept in memory,
    never by reading the CSV back. Call ``close`` at the end.

    The statistics of a step stay on the training device until ``flush``, which reads back
    the batches pending in one go, every ``flush_every`` steps: on a GPU, reading numbers
    back makes the host wait for the device, so it should not happen every step.

    Args:
        results_dir: folder of the CSVs, JSON and curves (the run's own).
        run_log_dir: TensorBoard folder of this run.
        resume_step: the step of the checkpoint the run continues from (0 for a new run):
            rows and events of later steps (written after it) are dropped, and so is an
            incomplete last row.
        flush_every: steps between read-backs.

    Raises:
        UserError: on resume, a CSV holds lines this program did not write.
    """

    def __init__(
        self, results_dir: Path, run_log_dir: Path, resume_step: int = 0,
        flush_every: int = 1,
    ) -> None:
        self.flush_every = flush_every
        self._pending: list[tuple[int, int, int, Tensor]] = []
        self.csv_path = results_dir / "training_data.csv"
        self.json_path = results_dir / "training_data.json"
        self.curves_path = results_dir / "training_curves.png"
        self.evaluation_path = results_dir / "evaluation_history.csv"
        self.rows = start_csv(self.csv_path, COLUMNS, resume_step)
        start_csv(self.evaluation_path, EVALUATION_COLUMNS, resume_step)
        self._csv_file = open(self.csv_path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        self.log_dir = run_log_dir
        # TensorBoard reads a folder's event files in the order of their names, which begin
        # with the second each was made: the purge of the steps after resume_step must be in
        # a file after those it purges, so a resume in the same second waits for the next.
        made = [int(p.name.split(".")[3]) for p in run_log_dir.glob("events.out.tfevents.*.*")
                if p.name.split(".")[3].isdigit()]
        time.sleep(max(0.0, max(made, default=0) + 1 - time.time()))
        self.tensorboard = SummaryWriter(str(run_log_dir), purge_step=resume_step + 1)

    def _tensorboard(self, write: Callable, *args: object) -> None:
        """Call a ``SummaryWriter`` method; a failed write names the log folder."""
        try:
            write(*args)
        except OSError as error:
            raise OSError(error.errno, f"cannot write TensorBoard events in {self.log_dir}: "
                                       f"{error.strerror}") from None

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
            texts = [shortest(v) for v in row]
            append_line(self._csv_file, ",".join([str(epoch), str(batch), str(step), *texts])
                        + "\n")
            self.rows.append([epoch, batch, step, *map(float, texts)])
            records.append(dict(zip(COLUMNS, self.rows[-1], strict=True)))
            for name, tag in TENSORBOARD_TAGS.items():
                self._tensorboard(self.tensorboard.add_scalar, tag, records[-1][name], step)
        self._pending.clear()
        return records

    def log_text(self, tag: str, text: str) -> None:
        """Show ``text`` in TensorBoard's text tab (e.g. the configuration)."""
        self._tensorboard(self.tensorboard.add_text, tag, text)

    def log_epoch(self, step: int, samples: Tensor, averaged_samples: Tensor | None = None
                  ) -> None:
        """Log the fixed-noise samples ``(N, 1, 28, 28)``, refresh the JSON and curves.

        ``averaged_samples``: those of the generator's average, if it has one.
        """
        self._tensorboard(self.tensorboard.add_image, "samples/fixed_noise",
                          image_grid(samples), step)
        if averaged_samples is not None:
            self._tensorboard(self.tensorboard.add_image, "samples/fixed_noise_ema",
                              image_grid(averaged_samples), step)
        self.export_json()
        plot_training_curves(pd.DataFrame(self.rows, columns=COLUMNS), self.curves_path)

    def log_evaluation(self, epoch: int, step: int, generator: str, scores: dict) -> None:
        """Append the quality ``scores`` (utils/metrics.py) to the history and TensorBoard.

        ``generator`` says whose they are: ``raw`` (the generator, tags ``eval/*``) or ``ema``
        (its average, tags ``eval_ema/*``).
        """
        row = {"epoch": epoch, "step": step, "generator": generator, **scores}
        with open(self.evaluation_path, "ab", buffering=0) as f:
            append_line(f, ",".join(str(row[column]) for column in EVALUATION_COLUMNS) + "\n")
        group = "eval" if generator == "raw" else f"eval_{generator}"
        for column in EVALUATION_COLUMNS[EVALUATION_COLUMNS.index("fid"):]:
            self._tensorboard(self.tensorboard.add_scalar, f"{group}/{column}", scores[column],
                              step)

    def export_json(self) -> None:
        """Rewrite ``training_data.json`` from the rows in memory; flush TensorBoard's events."""
        self._tensorboard(self.tensorboard.flush)
        records = [dict(zip(COLUMNS, row, strict=True)) for row in self.rows]
        with atomic_path(self.json_path) as tmp:
            tmp.write_text(json.dumps(records, separators=(",", ":")))

    def close(self) -> None:
        """Flush and close the CSV and TensorBoard files."""
        try:
            self.flush()
        finally:
            self._csv_file.close()
            self._tensorboard(self.tensorboard.close)


def start_csv(path: Path, columns: tuple[str, ...], resume_step: int) -> list[list]:
    """Start the CSV log ``path``, or on resume keep its rows up to ``resume_step``.

    A missing or empty file gets just the header. On resume, rows after the
    checkpoint's step, and an incomplete last line (a crash or full disk mid-write), are
    dropped: they will be written again. Returns the kept rows, each value read as
    its column: counters as ints, the generator's name as text, else floats.

    Raises:
        UserError: the header or a kept line is not what this program writes.
    """
    header = ",".join(columns) + "\n"
    text = path.read_text(errors="replace") if path.exists() else ""
    if not text:
        with atomic_path(path) as tmp:
            tmp.write_text(header)
        return []
    lines = text.splitlines(keepends=True)
    if lines[0] != header:
        raise UserError(f"{path} does not start with this program's header ({header.strip()})"
                           "; move it away to resume without its rows (the checkpoint is intact)")
    complete = lines if lines[-1].endswith("\n") else lines[:-1]  # drop half a row
    kept, rows = [header], []
    types = [int if column in ("epoch", "batch", "step") else str if column == "generator"
             else float for column in columns]
    for number, line in enumerate(complete[1:], start=2):
        values = line.rstrip("\n").split(",")
        try:
            row = [parse(v) for parse, v in zip(types, values, strict=False)]
        except ValueError:
            row = []
        if len(values) != len(columns) or not row:
            raise UserError(f"{path}, line {number}, is not a row of this program's log; move "
                               "the file away to resume without its rows (the checkpoint is "
                               "intact)")
        if row[columns.index("step")] <= resume_step:
            kept.append(line)
            rows.append(row)
    if len(kept) < len(lines):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(kept))
    return rows


def quiet_tensorboard_thread(args: threading.ExceptHookArgs) -> None:
    """A ``threading.excepthook``: no traceback from TensorBoard's writer thread.

    The writer thread's error (say, a full disk) reaches the main thread too, at the next
    write, where ``TrainingRecorder`` reports it in one line naming the log folder.
    """
    if type(args.thread).__name__ != "_AsyncWriterThread":
        threading.__excepthook__(args)
