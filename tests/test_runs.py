"""Between runs: each run owns its files; a clone's shipped model survives; errors are one line."""

import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import (
    NARROW,
    REPO,
    RUN,
    output_flags,
    run_script,
    run_train,
    short_run_flags,
    start_train,
    wait_for_rows,
)
from tests.test_train import readme_snippets, run_snippet
from utils.files import append_line, atomic_path
from utils.recorder import TrainingRecorder
from utils.run_folders import LOCK_NAME, latest_run

QUICK = [*NARROW, "--batch_size", "16", "--eval_interval", "0", "--ema_decay", "0",
         "--device", "cpu"]


def quick_flags(mnist_root: Path, out: Path) -> list[str]:
    """A run without evaluation or average, writing under ``out`` with default run names."""
    return [*QUICK, "--data_dir", str(mnist_root), "--results_dir", str(out / "results"),
            "--weights_dir", str(out / "weights"), "--log_dir", str(out / "logs")]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name) with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_folders(root: Path) -> list[Path]:
    """The run sub-folders of an output root, oldest name first."""
    return sorted(p for p in root.iterdir() if p.is_dir())


def last_line(result: subprocess.CompletedProcess | str) -> str:
    text = result if isinstance(result, str) else result.stderr
    return text.strip().splitlines()[-1]


# --- 1. a new run beside an older one: its checkpoints, its resume ---

def test_a_second_run_keeps_its_checkpoints_and_resume_auto_picks_it(
    mnist_root: Path, tmp_path: Path
) -> None:
    flags = quick_flags(mnist_root, tmp_path)
    first = run_train(*flags, "--n_epochs", "2", "--limit_batches", "5",
                      "--checkpoint_interval", "2")
    assert first.returncode == 0, first.stderr
    (old,) = run_folders(tmp_path / "weights")
    assert "generator_final.pth" in {p.name for p in old.iterdir()}
    assert not list(tmp_path.rglob("*_ema.*"))  # --ema_decay 0: no average, no grid of it
    last = torch.load(sorted(old.glob("checkpoint_step_*.pth"))[-1], weights_only=True)
    assert last["generator_average"] is None
    before = snapshot(tmp_path)

    second = start_train(*flags, "--n_epochs", "1", "--limit_batches", "12",
                         "--checkpoint_interval", "2")
    while len(run_folders(tmp_path / "results")) < 2:  # its folders appear before training
        assert second.poll() is None, second.communicate()
        time.sleep(0.01)
    new = next(p for p in run_folders(tmp_path / "results") if p.name != old.name)
    wait_for_rows(new / "training_data.csv", 5, second)
    second.send_signal(signal.SIGINT)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 130, stderr
    command = last_line(stderr).split("to continue: ")[1]
    assert f"--resume {tmp_path / 'weights' / new.name}/checkpoint_step_" in command
    checkpoints = sorted((tmp_path / "weights" / new.name).glob("checkpoint_step_*.pth"))
    assert checkpoints and checkpoints[-1].name in command  # its own, not rotated away
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # the old run untouched

    resumed = run_train(*flags, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {new.name} from " in resumed.stdout
    rows = pd.read_csv(new / "training_data.csv")
    assert rows["step"].tolist() == list(range(1, 13))
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before


# --- 2. a fresh clone: the shipped model and gallery survive the first run ---

def test_a_first_run_in_a_clone_leaves_the_shipped_files_alone(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    (clone / "weights").mkdir(parents=True)
    (clone / "results").mkdir()
    for name in ("generator_final.pth", "generator_ema.pth", "discriminator_final.pth"):
        shutil.copy(REPO / "weights" / name, clone / "weights" / name)  # the shipped model
    for name in ("epoch_2_final.png", "training_data.csv", "config.json"):
        shutil.copy(short_run / "results" / RUN / name, clone / "results" / name)
    for name in ("evaluation.json", "evaluation_ema.json"):
        (clone / "results" / name).write_text('{"shipped": true}\n')
    shipped = snapshot(clone)

    result = run_train(*NARROW, "--n_epochs", "1", "--limit_batches", "3", "--batch_size",
                       "16", "--eval_samples", "64", "--data_dir", str(mnist_root), "--judge",
                       str(tiny_judge), "--device", "cpu", cwd=clone)  # default folders
    assert result.returncode == 0, result.stderr
    assert {k: v for k, v in snapshot(clone).items() if k in shipped} == shipped
    (run,) = run_folders(clone / "weights")
    assert (clone / "weights" / run.name / "generator_final.pth").is_file()
    assert (clone / "results" / run.name / "epoch_1_final.png").is_file()
    assert sorted(p.name for p in (clone / "results").iterdir()) == sorted(
        [run.name, "epoch_2_final.png", "training_data.csv", "config.json", "evaluation.json",
         "evaluation_ema.json"])
    assert f"--weights weights/{run.name}/generator_final.pth" in result.stdout

    original, _ = readme_snippets()
    run_snippet(original, clone)  # loads the shipped weights/generator_final.pth
    evaluated = run_script("evaluate.py", "--weights", f"weights/{run.name}/generator_final.pth",
                           "--judge", str(tiny_judge), "--data_dir", str(mnist_root), "--n",
                           "50", "--device", "cpu", cwd=clone)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (clone / "weights" / run.name / "generator_final_evaluation.json").is_file()
    assert {k: v for k, v in snapshot(clone).items() if k in shipped} == shipped


# --- 3. two trainings at once ---

def test_two_trainings_at_once_each_keep_their_own_files(mnist_root: Path,
                                                        tmp_path: Path) -> None:
    flags = [*quick_flags(mnist_root, tmp_path), "--n_epochs", "2", "--limit_batches", "6"]
    both = [start_train(*flags), start_train(*flags)]  # most likely in the same second
    for process in both:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    runs = run_folders(tmp_path / "results")
    assert len(runs) == 2 and len(run_folders(tmp_path / "weights")) == 2
    for run in runs:
        assert pd.read_csv(run / "training_data.csv")["step"].tolist() == list(range(1, 13))
        assert json.loads((run / "config.json").read_text())["run_name"] == run.name
        assert (tmp_path / "weights" / run.name / "generator_final.pth").is_file()


def test_a_run_in_progress_is_refused_to_a_second_train_py_and_freed_at_its_end(
    mnist_root: Path, tmp_path: Path
) -> None:
    flags = [*quick_flags(mnist_root, tmp_path), "--run_name", "busy"]
    # far more epochs than it can train before it is killed below, however fast the machine
    running = start_train(*flags, "--n_epochs", "1000", "--checkpoint_interval", "2")
    wait_for_rows(tmp_path / "results" / "busy" / "training_data.csv", 3, running)
    second = run_train(*flags, "--resume", "auto")
    assert second.returncode == 1
    assert last_line(second) == (
        f"train.py: error: run busy ({tmp_path / 'weights' / 'busy'}) is being trained by "
        "another train.py; wait for it to end, or stop it first")
    taken = run_train(*flags)  # a new run of the same name
    assert taken.returncode == 2
    assert "--run_name busy: " in last_line(taken) and "already holds a run" in last_line(taken)
    running.send_signal(signal.SIGKILL)  # the lock dies with the process
    running.communicate()
    newest = sorted((tmp_path / "weights" / "busy").glob("checkpoint_step_*.pth"))[-1]
    epochs = torch.load(newest, weights_only=True)["epochs_done"] + 1  # just finish its epoch
    resumed = run_train(*flags, "--resume", "auto", "--n_epochs", str(epochs))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run busy from {newest}" in resumed.stdout


# --- 4. only the program's own temporary files are removed ---

def test_a_users_tmp_files_survive_and_a_runs_own_leftovers_go(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    mine = [tmp_path / "results" / ".notes.tmp", tmp_path / "weights" / ".draft.pth.tmp",
            tmp_path / "logs" / ".x.tmp"]
    for path in mine:
        path.write_text("the user's")
    leftover = tmp_path / "weights" / RUN / ".checkpoint_step_00000009.pth.tmp"
    leftover.write_bytes(b"half a checkpoint")
    failed = run_train(*quick_flags(mnist_root, tmp_path), "--data_dir", str(tmp_path / "no"))
    assert failed.returncode == 1
    new = run_train(*quick_flags(mnist_root, tmp_path), "--n_epochs", "1", "--limit_batches", "2")
    assert new.returncode == 0, new.stderr
    assert leftover.exists()  # another run's folder: not the new run's business
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume", "auto",
                        "--n_epochs", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert not leftover.exists()  # the resumed run's own leftover
    assert all(path.read_text() == "the user's" for path in mine)


# --- 5. never half a row ---

def test_a_failed_append_leaves_no_half_row(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n")

    class FullDisk(io.FileIO):
        def write(self, data: bytes) -> int:  # writes a part, then the disk is full
            super().write(data[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

    with FullDisk(path, "ab") as file, pytest.raises(OSError) as caught:
        append_line(file, "3,4444444\n")
    assert str(caught.value) == f"[Errno 28] cannot write {path}: No space left on device"
    assert path.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("complete_rows", [4, 3])  # after the checkpoint's step 3, or at it
def test_resume_drops_half_a_row_and_rewrites_the_csv_byte_for_byte(
    complete_rows: int, short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    csv = tmp_path / "results" / RUN / "training_data.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:1 + complete_rows]) + lines[1 + complete_rows][:12])
    (tmp_path / "weights" / RUN / "checkpoint_step_00000006.pth").unlink()
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume",
                        str(tmp_path / "weights" / RUN))  # a run folder: its newest checkpoint
    assert resumed.returncode == 0, resumed.stderr
    assert "checkpoint_step_00000003.pth: 1 epochs and 0 batches done" in resumed.stdout
    assert csv.read_bytes() == (short_run / "results" / RUN / "training_data.csv").read_bytes()


def test_resume_auto_falls_back_to_the_newest_readable_checkpoint(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    newest = tmp_path / "weights" / RUN / "checkpoint_step_00000006.pth"
    newest.write_bytes(newest.read_bytes()[:1000])
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert f"--resume: skipped {newest} is not a readable PyTorch file" in resumed.stderr
    assert "checkpoint_step_00000003.pth: 1 epochs and 0 batches done" in resumed.stdout
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "results" / RUN / "training_data.csv"),
        pd.read_csv(short_run / "results" / RUN / "training_data.csv"), check_exact=True)


@pytest.mark.parametrize(("content", "message"), [
    ("", None),  # empty: started again with the header
    ("epoch,batch,step\n1,1,1\n", "does not start with this program's header"),
    ("epoch,batch,step,D_loss,G_loss,D(x),D(G(z)),D(G(z))_post\n1,1,x,1,1,1,1,1\n",
     "line 2, is not a row of this program's log"),
])
def test_resume_with_an_empty_or_foreign_csv(content: str, message: str | None,
                                             short_run: Path, mnist_root: Path,
                                             tiny_judge: Path, tmp_path: Path) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    csv = tmp_path / "results" / RUN / "training_data.csv"
    csv.write_text(content)
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume",
                        str(tmp_path / "weights" / RUN / "checkpoint_step_00000003.pth"))
    if message is None:
        assert resumed.returncode == 0, resumed.stderr
        assert pd.read_csv(csv)["step"].tolist() == [4, 5, 6]
    else:
        assert resumed.returncode == 1
        assert last_line(resumed).startswith(f"train.py: error: {csv}")
        assert message in last_line(resumed) and "Traceback" not in resumed.stderr


# --- the remaining one-line errors ---

def test_an_atomic_write_that_fails_names_the_file_not_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"12")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert str(caught.value) == f"[Errno 28] cannot write {target}: No space left on device"
    assert not list(tmp_path.iterdir())


def test_a_tensorboard_write_that_fails_names_the_log_folder(tmp_path: Path) -> None:
    recorder = TrainingRecorder(tmp_path, tmp_path / "logs")

    def full_disk(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    recorder.tensorboard.add_scalar = full_disk
    with pytest.raises(OSError) as caught:
        recorder.log_step(1, 1, 1, torch.tensor([1.0, 2.0, 0.5, 0.5, 0.5]))
    assert str(caught.value) == (f"[Errno 28] cannot write TensorBoard events in "
                                 f"{tmp_path / 'logs'}: No space left on device")
    recorder.tensorboard.add_scalar = lambda *args: None
    recorder.close()


WRITER_THREAD_FAILS = """
import errno, sys, threading, time
from pathlib import Path
import torch
from utils.recorder import TrainingRecorder, quiet_tensorboard_thread
if sys.argv[2] == "quiet":
    threading.excepthook = quiet_tensorboard_thread  # as train.py does
recorder = TrainingRecorder(Path(sys.argv[1]), Path(sys.argv[1]) / "logs")
worker = recorder.tensorboard._get_file_writer().event_writer._async_writer._worker
def full_disk(data):
    raise OSError(errno.ENOSPC, "No space left on device")
worker._record_writer.write = full_disk  # the writer thread's next write fails
try:
    for step in range(1, 10):
        recorder.log_step(1, step, step, torch.tensor([1.0, 2.0, 0.5, 0.5, 0.5]))
        time.sleep(0.2)
except OSError as error:
    print(error, file=sys.stderr)
"""


@pytest.mark.parametrize("hook", ["quiet", "default"])
def test_a_full_disk_under_the_tensorboard_thread_is_one_line(hook: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", WRITER_THREAD_FAILS, str(tmp_path), hook],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    message = (f"[Errno 28] cannot write TensorBoard events in {tmp_path / 'logs'}: "
               "No space left on device")
    assert result.stderr.strip().splitlines()[-1] == message
    assert ("Traceback" in result.stderr) == (hook == "default")  # the thread's own traceback


def test_a_missing_judge_warns_and_trains(mnist_root: Path, tmp_path: Path) -> None:
    result = run_train(*NARROW, "--n_epochs", "1", "--limit_batches", "2", "--batch_size",
                       "16", "--save_interval", "1", "--eval_samples", "64", "--data_dir",
                       str(mnist_root), "--judge", str(tmp_path / "nowhere.pth"), "--device",
                       "cpu", *output_flags(tmp_path))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [f"train.py: warning: {tmp_path / 'nowhere.pth'} is missing: make it "
                        "with `python train_judge.py` (about 2 minutes on a CPU), or pass the "
                        "file with --judge; training without evaluation, and with "
                        "interpolations between random points"]
    results = tmp_path / "results" / RUN
    assert (results / "interpolation_epoch_1.png").is_file()
    assert pd.read_csv(results / "evaluation_history.csv").empty


def test_ctrl_c_while_the_final_files_are_written_finishes_them(mnist_root: Path,
                                                                tmp_path: Path) -> None:
    # Deliver SIGINT at the start of TrainLoop.finish: the signal waits for the final files.
    script = ("import os, runpy, signal, sys\n"
              "from utils.train_loop import TrainLoop\n"
              "finish = TrainLoop.finish\n"
              "def interrupted(self):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    finish(self)\n"
              "TrainLoop.finish = interrupted\n"
              "sys.argv = ['train.py', *sys.argv[1:]]\n"
              "runpy.run_path('train.py', run_name='__main__')\n")
    result = subprocess.run(
        [sys.executable, "-c", script, *quick_flags(mnist_root, tmp_path), "--n_epochs", "1",
         "--limit_batches", "2", "--run_name", RUN], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "done in " in result.stdout
    assert (tmp_path / "weights" / RUN / "generator_final.pth").is_file()
    assert (tmp_path / "results" / RUN / "training_progress.gif").is_file()
    assert "finished" in json.loads((tmp_path / "results" / RUN / "config.json").read_text())


@pytest.mark.parametrize(("script", "args", "code", "text"), [
    ("evaluate.py", ["--n", "5"], 2, "argument --n: expected an integer of at least 6"),
    ("evaluate.py", ["--seed", "-1"], 2, "argument --seed: expected an integer in [0, 2**32)"),
    ("evaluate.py", ["--out", "{tmp}"], 2, "--out {tmp} is a folder; give a file name"),
    ("generate.py", ["--seed", "99999999999999999999999"], 2, "argument --seed: expected an"),
    ("generate.py", ["--out", "{tmp}"], 2, "--out {tmp} is a folder; give a file name"),
    ("generate.py", ["--out", "{file}/a.png"], 2, "--out {file}/a.png: cannot create or write"),
    ("generate.py", ["--out_dir", "{file}"], 2, "--out_dir {file}: cannot create or write"),
    ("generate.py", ["--n", "1000000000"], 1, "out of memory"),
    ("train_judge.py", ["--out", "{tmp}"], 2, "--out {tmp} is a folder"),
])
def test_scripts_answer_bad_input_in_one_line(script: str, args: list[str], code: int,
                                              text: str, short_run: Path,
                                              tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    def fill(value: str) -> str:
        return value.format(tmp=tmp_path, file=tmp_path / "file")

    weights = ([] if script == "train_judge.py"
               else ["--weights", str(short_run / "weights" / RUN / "generator_final.pth")])
    result = run_script(script, *map(fill, args), *weights, "--device", "cpu", cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert last_line(result).startswith(f"{script}: error: ")
    assert fill(text) in last_line(result)


def test_resume_auto_without_any_run_starts_one(mnist_root: Path, tmp_path: Path) -> None:
    result = run_train(*quick_flags(mnist_root, tmp_path), "--n_epochs", "1", "--limit_batches",
                       "2", "--resume", "auto")
    assert result.returncode == 0, result.stderr
    assert f"--resume auto: no run in {tmp_path / 'weights'}/ to continue" in result.stdout
    (run,) = run_folders(tmp_path / "results")
    assert pd.read_csv(run / "training_data.csv")["step"].tolist() == [1, 2]


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_its_flags(
    mnist_root: Path, tmp_path: Path
) -> None:
    roots = ["--results_dir", str(tmp_path / "results"), "--weights_dir",
             str(tmp_path / "weights"), "--log_dir", str(tmp_path / "logs")]
    process = start_train(*quick_flags(mnist_root, tmp_path), "--n_epochs", "1",
                          "--limit_batches", "12", "--checkpoint_interval", "0")
    while not (tmp_path / "results").exists() or not run_folders(tmp_path / "results"):
        time.sleep(0.01)
    (run,) = run_folders(tmp_path / "results")
    wait_for_rows(run / "training_data.csv", 3, process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    for name in ("generator_ema.pth", "generator_best.pth"):  # as if killed at the epoch's end,
        (tmp_path / "weights" / run.name / name).write_bytes(b"x")  # before its checkpoint
    for root in ("weights", "results", "logs"):  # a user renames the run
        (tmp_path / root / run.name).rename(tmp_path / root / "renamed")
    run = tmp_path / "results" / "renamed"
    again = run_train(*roots, "--resume", "auto")  # the run's own flags, from its config.json
    assert again.returncode == 0, again.stderr
    assert "run renamed stopped before its first checkpoint; starting it again" in again.stdout
    assert json.loads((run / "config.json").read_text())["run_name"] == "renamed"
    assert pd.read_csv(run / "training_data.csv")["step"].tolist() == list(range(1, 13))
    assert json.loads((run / "config.json").read_text())["batch_size"] == 16
    for name in ("generator_ema.pth", "generator_best.pth"):  # the attempt's files are gone
        # (this run neither averages nor evaluates: none is rewritten)
        assert not (tmp_path / "weights" / "renamed" / name).exists()
    events = EventAccumulator(str(tmp_path / "logs" / "renamed"))
    events.Reload()  # the killed attempt's events are purged: each step once
    assert [e.step for e in events.Scalars("loss/D")] == list(range(1, 13))


def test_a_run_with_weights_but_no_checkpoint_is_not_started_again(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    for checkpoint in (tmp_path / "weights" / RUN).glob("checkpoint_step_*.pth"):
        checkpoint.unlink()  # to free disk, say
    before = snapshot(tmp_path)
    result = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume", "auto")
    assert result.returncode == 1
    assert f"run {RUN} ({tmp_path / 'weights' / RUN}) holds " in last_line(result)
    assert "but no checkpoint to resume; start a new run" in last_line(result)
    assert snapshot(tmp_path) == before


def test_resuming_a_finished_run_changes_nothing(short_run: Path, mnist_root: Path,
                                                 tiny_judge: Path, tmp_path: Path) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    before = snapshot(tmp_path)
    result = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume", "auto")
    assert result.returncode == 0, result.stderr
    assert f"run {RUN} has finished its 2 epochs" in result.stdout
    assert snapshot(tmp_path) == before
    past = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume",
                     str(tmp_path / "weights" / RUN / "checkpoint_step_00000006.pth"),
                     "--n_epochs", "1")  # would write mid-run weights as the final ones
    assert past.returncode == 2, past.stderr
    assert last_line(past) == ("train.py: error: --n_epochs 1: the checkpoint is after epoch 2, "
                               "past it; give a larger --n_epochs, or resume an earlier "
                               "checkpoint")
    assert snapshot(tmp_path) == before


def test_generate_and_evaluate_replace_an_existing_file_only_when_told(
    short_run: Path, tiny_judge: Path, mnist_root: Path, tmp_path: Path
) -> None:
    weights = str(short_run / "weights" / RUN / "generator_final.pth")
    precious = tmp_path / "generator_final.pth"
    shutil.copy(weights, precious)
    refused = run_script("generate.py", "--weights", weights, "--out", str(precious),
                         "--device", "cpu")
    assert refused.returncode == 2
    assert last_line(refused) == (f"generate.py: error: --out {precious} exists; choose another "
                                  "name, or add --overwrite to replace it")
    assert precious.read_bytes() == Path(weights).read_bytes()
    report = tmp_path / "report.json"
    report.write_text("{}")
    args = ["--weights", weights, "--judge", str(tiny_judge), "--data_dir", str(mnist_root),
            "--n", "20", "--device", "cpu", "--out", str(report)]
    assert run_script("evaluate.py", *args).returncode == 2 and report.read_text() == "{}"
    replaced = run_script("evaluate.py", *args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(report.read_text())["n"] == 20
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "mine.txt").write_text("x")
    full = run_script("generate.py", "--weights", weights, "--out_dir", str(tmp_path / "samples"),
                      "--device", "cpu")
    assert full.returncode == 2 and "holds files; choose an empty folder" in last_line(full)


def test_the_run_trained_last_is_not_the_one_evaluated_last(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    for age, run in ((300, "old"), (200, "new")):
        (weights / run).mkdir(parents=True)
        for name in (LOCK_NAME, "checkpoint_step_00000005.pth"):
            (weights / run / name).write_text("")
            os.utime(weights / run / name, (time.time() - age, time.time() - age))
    (weights / "old" / "generator_final_evaluation.json").write_text("{}")  # evaluate.py's
    assert latest_run(weights) == weights / "new"
    os.utime(weights / "old" / LOCK_NAME)  # a train.py started on it
    assert latest_run(weights) == weights / "old"


def test_a_resumed_run_may_get_new_results_and_log_folders(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume",
                        str(tmp_path / "weights" / RUN / "checkpoint_step_00000003.pth"),
                        "--results_dir", str(tmp_path / "elsewhere"), "--log_dir",
                        str(tmp_path / "logs2"))
    assert resumed.returncode == 0, resumed.stderr
    csv = tmp_path / "elsewhere" / RUN / "training_data.csv"
    assert pd.read_csv(csv)["step"].tolist() == [4, 5, 6]
    assert (f"train.py: warning: {csv} ends at step 0, before the checkpoint's 3: steps 1-3 "
            "are missing from the logs") in resumed.stderr
    assert (tmp_path / "logs2" / RUN).is_dir()


def test_train_judge_replaces_no_record_of_another_judge(mnist_root: Path,
                                                         tmp_path: Path) -> None:
    (tmp_path / "judge.json").write_text('{"test_accuracy": 0.99}')
    result = run_script("train_judge.py", "--data_dir", str(mnist_root), "--out",
                        str(tmp_path / "judge.pt"), "--device", "cpu")
    assert result.returncode == 2
    assert last_line(result) == (f"train_judge.py: error: --out {tmp_path / 'judge.pt'}: "
                                 f"{tmp_path / 'judge.json'} exists, the record of another "
                                 "judge; choose another --out name")
    assert (tmp_path / "judge.json").read_text() == '{"test_accuracy": 0.99}'
    shipped = run_script("train_judge.py", "--data_dir", str(mnist_root), "--device", "cpu",
                         cwd=REPO)  # the default --out is the shipped judge
    assert shipped.returncode == 2
    assert "--out weights/judge.pth exists; choose another name, or name it with --out " \
           "weights/judge.pth to replace it" in last_line(shipped)


def test_a_checkpoint_without_an_average_resumes_and_starts_one(
    short_run: Path, mnist_root: Path, tiny_judge: Path, tmp_path: Path
) -> None:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "weights" / RUN / "checkpoint_step_00000003.pth"
    old = torch.load(path, weights_only=True)  # as the code before --ema_decay wrote it:
    del old["generator_average"], old["config"]["ema_decay"]  # no average,
    torch.save(old, path)
    history_path = tmp_path / "results" / RUN / "evaluation_history.csv"
    history = pd.read_csv(history_path)  # and no generator column in the history
    old_history = history[history["generator"] == "raw"].drop(columns="generator")
    old_history.to_csv(history_path, index=False)
    resumed = run_train(*short_run_flags(mnist_root, tiny_judge, tmp_path), "--resume", str(path))
    assert resumed.returncode == 0, resumed.stderr
    assert ("train.py: warning: the checkpoint has no average of the generator; averaging "
            "starts now, at step 3") in resumed.stderr
    last = torch.load(tmp_path / "weights" / RUN / "checkpoint_step_00000006.pth",
                      weights_only=True)
    assert last["generator_average"]["updates"] == 3 and last["config"]["ema_decay"] == 0.999
    upgraded = pd.read_csv(history_path)
    assert upgraded["generator"].tolist() == ["raw", "raw", "ema"]  # epoch 1 kept, as it was
    pd.testing.assert_frame_equal(upgraded.iloc[:1].drop(columns="generator"),
                                  old_history.iloc[:1], check_exact=True)
