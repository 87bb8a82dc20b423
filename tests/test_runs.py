"""Between runs: each run owns its files; a clone's shipped model survives; errors are one line."""

import errno
import hashlib
import json
import os
import shlex
import shutil
import signal
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

import train
from tests.conftest import (
    NARROW,
    REPO,
    RUN,
    assert_same_weights,
    last_line,
    logged_steps,
    resume_hint,
    roots,
    run_script,
    run_train,
    short_run_flags,
    start_train,
    wait_for_rows,
)
from utils.cli import report
from utils.errors import ArgumentError
from utils.files import append_line, atomic_path, open_for_append
from utils.recorder import TrainingLog, quiet_tensorboard_thread

STEP_0 = "checkpoint_step_00000000.pth"


def quick_flags(mnist_root: Path, out: Path) -> list[str]:
    """A run without evaluation, average or judge, writing under ``out`` with default names."""
    return [*NARROW, "--batch_size", "16", "--eval_interval", "0", "--ema_decay", "0", "--device",
            "cpu", "--data_dir", str(mnist_root), "--judge", str(out / "no_judge.pth"), *roots(out)]


def resume_flags(mnist_root: Path, judge: Path, out: Path) -> list[str]:
    """The short run's flags without evaluations (most of a short resume's time)."""
    return [*short_run_flags(mnist_root, judge, out), "--eval_interval", "0"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name) with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def kept(before: dict[str, str], folder: Path) -> dict[str, str]:
    """The files of ``before`` as they are now in ``folder`` (a missing one is left out)."""
    return {name: digest for name, digest in snapshot(folder).items() if name in before}


def run_folders(root: Path) -> list[Path]:
    """The run sub-folders of an output root, oldest name first."""
    return sorted(p for p in root.iterdir() if p.is_dir())


def checkpoints(run_dir: Path) -> list[str]:
    """The names of a run's checkpoints, oldest first."""
    return sorted(p.name for p in run_dir.glob("checkpoint_step_*.pth"))


def csv_steps(results: Path) -> list[int]:
    """The steps of a run's training CSV, in file order."""
    return pd.read_csv(results / "training_data.csv")["step"].tolist()


# --- new runs beside finished ones: two at once, then one stopped and resumed ---

def test_new_runs_keep_their_own_files_and_resume_auto_picks_the_last(mnist_root, tmp_path):
    flags = quick_flags(mnist_root, tmp_path)
    both = [start_train(*flags, "--n_epochs", "1", "--limit_batches", "4",
                        "--checkpoint_interval", "2") for _ in range(2)]  # likely in one second
    for process in both:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    runs = run_folders(tmp_path / "weights")
    assert len(runs) == 2
    for root in ("results", "logs"):
        assert [p.name for p in run_folders(tmp_path / root)] == [p.name for p in runs]
    for run in runs:
        assert csv_steps(tmp_path / "results" / run.name) == [1, 2, 3, 4]
        config = json.loads((tmp_path / "results" / run.name / "config.json").read_text())
        assert config["run_name"] == run.name and (run / "generator_final.pth").is_file()
        assert checkpoints(run) == [STEP_0, "checkpoint_step_00000002.pth",
                                    "checkpoint_step_00000004.pth"]
        last = torch.load(run / "checkpoint_step_00000004.pth", weights_only=True)
        assert last["config"]["run_name"] == run.name and last["average"] is None  # --ema_decay 0
    assert not list(tmp_path.rglob("*_ema.*"))  # no average, no grid of it
    before = snapshot(tmp_path)
    third = start_train(*flags, "--n_epochs", "2", "--limit_batches", "8",
                        "--checkpoint_interval", "2", "--run_name", "third")
    new = tmp_path / "results" / "third"
    wait_for_rows(new / "training_data.csv", 3, third)
    third.send_signal(signal.SIGINT)
    _, stderr = third.communicate(timeout=60)
    assert third.returncode == 130, stderr
    new_weights = tmp_path / "weights" / new.name
    stopped = new_weights / checkpoints(new_weights)[-1]
    position = torch.load(stopped, weights_only=True)
    step = position["step"]
    # its own newest 3: a rotation across runs would delete these or the old runs'
    assert checkpoints(new_weights) == [f"checkpoint_step_{s:08d}.pth" for s in
                                        sorted({*range(0, step, 2), step})[-3:]]
    assert kept(before, tmp_path) == before  # the old runs untouched, byte for byte
    resumed = run_train(*flags, "--resume", "auto")
    assert (f"resuming run {new.name} from {stopped}: {position['epochs_done']} epochs and "
            f"{position['batch']} batches done (step {step})") in resumed.stdout
    assert csv_steps(new) == list(range(1, 17))
    assert kept(before, tmp_path) == before


def test_a_first_run_in_a_clone_leaves_the_shipped_files_alone(mnist_root, tiny_judge, tmp_path):
    clone = tmp_path / "clone"
    for root in ("weights", "results"):  # the shipped model and gallery, no run of this clone's
        shutil.copytree(REPO / root, clone / root, ignore=lambda folder, names: [
            name for name in names if (Path(folder) / name).is_dir()])
    shipped = snapshot(clone)
    result = run_train(*NARROW, "--n_epochs", "1", "--limit_batches", "3", "--batch_size",
                       "16", "--eval_samples", "64", "--data_dir", str(mnist_root), "--judge",
                       str(tiny_judge), "--device", "cpu", cwd=clone)  # the default folders
    assert kept(shipped, clone) == shipped
    (run,) = run_folders(clone / "weights")
    new = set(snapshot(clone)) - set(shipped)  # the run's files, all in its own folders
    assert {tuple(name.split("/")[1:2]) for name in new} == {(run.name,)}
    assert {f"weights/{run.name}/generator_final.pth", f"results/{run.name}/epoch_1_final.png",
            f"logs/{run.name}/.run_id"} <= new
    assert result.stdout.splitlines()[-1].endswith(  # the run's own, from where it ran
        f"generate.py --weights=weights/{run.name}/generator_final.pth")
    evaluated = run_script("evaluate.py", "--weights", f"weights/{run.name}/generator_final.pth",
                           "--judge", str(tiny_judge), "--data_dir", str(mnist_root), "--n",
                           "50", "--device", "cpu", cwd=clone)
    assert json.loads((clone / "generator_final_evaluation.json").read_text())["n"] == 50
    assert "wrote the scores to generator_final_evaluation.json" in evaluated.stdout
    assert kept(shipped, clone) == shipped


def test_a_run_in_progress_is_refused_to_a_second_train_py_and_freed_at_its_kill(
        mnist_root, tmp_path):
    flags = [*quick_flags(mnist_root, tmp_path), "--run_name", "busy"]
    weights, results = tmp_path / "weights" / "busy", tmp_path / "results" / "busy"
    # far more epochs than it can train before it is killed below, however fast the machine
    running = start_train(*flags, "--n_epochs", "1000", "--limit_batches", "4",
                          "--checkpoint_interval", "0")
    wait_for_rows(results / "training_data.csv", 3, running)
    second = run_train(*flags, "--resume", "auto", "--results_dir", str(tmp_path / "other"), code=1)
    assert not (tmp_path / "other").exists()
    assert last_line(second) == (
        f"train.py: error: run busy ({weights}) is being trained by another train.py; wait for "
        "it to end, or stop it first")
    taken = run_train(*flags, code=2)  # a new run of the same name
    assert last_line(taken) == (
        f"train.py: error: --run_name busy: {weights} exists; choose another --run_name, or add "
        "--resume auto to continue that run")
    running.send_signal(signal.SIGKILL)  # the lock dies with the process
    running.communicate()
    newest = weights / checkpoints(weights)[-1]
    position = torch.load(newest, weights_only=True)
    assert position["batch"] == 0  # --checkpoint_interval 0: the start and epochs' ends only
    epochs = position["epochs_done"] + 1  # just finish its epoch
    resumed = run_train(*flags, "--resume", "auto", "--n_epochs", str(epochs))
    assert f"resuming run busy from {newest}: " in resumed.stdout
    assert csv_steps(results) == list(range(1, 4 * epochs + 1))  # the killed attempt's dropped
    assert (weights / "generator_final.pth").is_file()


def test_two_atomic_writers_of_one_file_at_once_never_corrupt_it(tmp_path):
    target = tmp_path / "shared.bin"
    contents = [bytes([n]) * 300_000 for n in (1, 2)]

    def write(content: bytes) -> None:
        for _ in range(150):
            with atomic_path(target) as tmp:
                tmp.write_bytes(content)

    seen = set()
    with ThreadPoolExecutor(2) as pool:
        writers = [pool.submit(write, content) for content in contents]
        while not all(writer.done() for writer in writers):
            if target.exists():
                seen.add(target.read_bytes())
    assert [writer.result() for writer in writers] == [None, None]  # a writer's error raises
    assert seen <= set(contents)  # a reader only ever meets one writer's complete file
    assert target.read_bytes() in contents
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left


def test_a_log_gets_whole_rows_and_never_through_a_link(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text("a,b\n1,2\n")
    write = os.write

    def full_disk(fd: int, data: bytes) -> int:  # writes a part, then the disk is full
        write(fd, data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    fd = open_for_append(path)
    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError) as caught:
        append_line(fd, "3,4444444\n", path)
    monkeypatch.undo()
    os.close(fd)
    assert str(caught.value) == f"[Errno 28] cannot write {path}: No space left on device"
    assert path.read_text() == "a,b\n1,2\n"  # no half row
    (tmp_path / "elsewhere.txt").write_text("the user's\n")
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.txt")  # a link planted at its name
    with pytest.raises(OSError, match=f"cannot write {path}"):
        open_for_append(path)
    assert (tmp_path / "elsewhere.txt").read_text() == "the user's\n"


@pytest.mark.parametrize(("edit", "steps", "warning", "newest"), [
    (lambda lines: [], [4, 5, 6], None, "deleted"),  # the header, then the rows from step 4
    (lambda lines: ["epoch,batch,step\n1,1,1\n"], [4, 5, 6], "dropped 2 lines", "deleted"),
    (lambda lines: [*lines[:2], *lines[3:], "\n"], [1, 3, 4, 5, 6], "dropped 1 lines", "deleted"),
    (lambda lines: [*lines[:5], lines[5][:12]], [1, 2, 3, 4, 5, 6], "dropped 1 lines",
     "truncated"),
    (lambda lines: [*lines[:4], lines[4][:12]], [1, 2, 3, 4, 5, 6], "dropped 1 lines",
     "one bit flipped"),  # in the tensor data: the zip's CRC no longer matches
], ids=["emptied", "foreign", "a row deleted and a blank added", "half a row after step 3",
        "half a row at step 3"])
def test_a_resume_from_step_3_keeps_the_csv_rows_that_parse_and_is_the_unbroken_run(
        edit, steps, warning, newest, short_run, mnist_root, tiny_judge, tmp_path):
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    csv, weights = tmp_path / "results" / RUN / "training_data.csv", tmp_path / "weights" / RUN
    unbroken = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(edit(unbroken)))
    checkpoint = weights / "checkpoint_step_00000006.pth"  # the newest: deleted or damaged
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 1
    checkpoint.write_bytes(data if newest == "one bit flipped" else data[:1000])
    if newest == "deleted":
        checkpoint.unlink()
    (tmp_path / "weights" / "gone").mkdir()  # a link to nothing in another run's folder
    (tmp_path / "weights" / "gone" / "checkpoint_step_00000009.pth").symlink_to(tmp_path / "x")
    # a run's folder resumes its newest readable checkpoint; auto, the last run's
    resumed = run_train(*resume_flags(mnist_root, tiny_judge, tmp_path), "--resume",
                        str(weights) if newest == "deleted" else "auto")
    skipped = f"--resume: skipped {checkpoint} is damaged"
    assert (skipped in resumed.stdout) == (newest != "deleted")
    assert (f"resuming run {RUN} from {weights / 'checkpoint_step_00000003.pth'}: 1 epochs and 0 "
            "batches done (step 3)") in resumed.stdout
    # the unbroken run's rows of those steps, byte for byte; its weights, bit for bit
    assert csv.read_text() == "".join([unbroken[0], *(unbroken[step] for step in steps)])
    assert_same_weights(weights / "generator_final.pth",
                        short_run / "weights" / RUN / "generator_final.pth")
    assert torch.load(checkpoint, weights_only=True)["step"] == 6  # written anew, whole
    warnings = [line for line in resumed.stderr.splitlines() if "warning" in line]
    missing = 3 - len([step for step in steps if step <= 3])
    assert len(warnings) == bool(warning) + bool(missing)
    if warning:
        assert f"train.py: warning: {csv}: {warning} that are not rows" in warnings[0]
    if missing:
        assert warnings[-1] == (f"train.py: warning: {csv} has {3 - missing} of the 3 rows before "
                                "the checkpoint; the training state is complete")


def test_an_atomic_write_names_its_file_and_replaces_only_when_told(tmp_path):
    target = tmp_path / "image.png"
    with pytest.raises(OSError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"12")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert str(caught.value) == f"[Errno 28] cannot write {target}: No space left on device"
    assert not list(tmp_path.iterdir())  # not its temporary file either
    longest = tmp_path / ("a" * 255)  # the longest name the OS takes: so is its temporary
    with atomic_path(longest) as tmp:
        tmp.write_bytes(b"12")
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
    with pytest.raises(ArgumentError) as caught, atomic_path(target, replace=False) as tmp:
        tmp.write_text("mine")
        target.write_text("theirs")  # another writer finished first, after every early check
    assert str(caught.value) == (f"--out {target} exists; choose another name, or add "
                                 "--overwrite to replace it")
    assert target.read_text() == "theirs" and sorted(os.listdir(tmp_path)) == [
        longest.name, target.name]


def full_disk(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_the_tensorboard_thread_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(threading, "excepthook", quiet_tensorboard_thread)  # as train.py sets it
    recorder = TrainingLog(tmp_path, tmp_path / "logs", 0, 1)
    writer = recorder.tensorboard._get_file_writer().event_writer._async_writer
    writer._worker._record_writer.write = full_disk  # the writer thread's next write fails
    with pytest.raises(OSError) as caught:
        for step in range(1, 50):
            recorder.log_step(1, step, step, torch.tensor([1.0, 2.0, 0.5, 0.5, 0.5]))
            time.sleep(0.05)
    writer._worker.join(timeout=10)  # it has died; its excepthook has run
    assert str(caught.value).startswith(f"[Errno 28] cannot write TensorBoard events in "
                                        f"{tmp_path / 'logs'} (")
    assert str(caught.value).endswith("): No space left on device")
    assert "Traceback" not in capsys.readouterr().err  # not the thread's own either
    with pytest.raises(OSError):
        recorder.close()  # the failure again, and the CSV is closed


def test_a_missing_judge_and_an_unusable_gpu_are_one_line_each_and_training_goes_on(
        mnist_root, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "nvidia-smi"  # an NVIDIA GPU that this PyTorch cannot use
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI 550.54'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    judge = tmp_path / "nowhere.pth"
    flags = [*short_run_flags(mnist_root, judge, tmp_path), "--limit_batches", "2"]
    result = run_train(*flags, "--n_epochs", "1")
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning == (f"train.py: warning: {judge} is missing: make it with `python "
                       "train_judge.py` (about 2 minutes on a CPU), or pass the file with "
                       "--judge; training without evaluation, and with interpolations between "
                       "random points")
    (note,) = [line for line in result.stderr.splitlines() if line.startswith("train.py: note")]
    assert "this machine has an NVIDIA GPU, but this PyTorch" in note
    assert "see README.md, 'Installing PyTorch for your hardware'" in note
    assert "## Installing PyTorch for your hardware" in (REPO / "README.md").read_text()
    results = tmp_path / "results" / RUN
    assert (results / "interpolation_epoch_1.png").is_file()
    assert pd.read_csv(results / "evaluation_history.csv").empty
    assert not (tmp_path / "weights" / RUN / "generator_best.pth").exists()
    monkeypatch.setenv("PATH", f"{Path('/usr/bin')}:{Path('/bin')}")  # no GPU: no note
    again = run_train(*flags, "--resume", "auto", "--n_epochs", "2")
    assert "train.py: note" not in again.stderr or Path("/proc/driver/nvidia/version").exists()


def test_ctrl_c_while_the_final_files_are_written_finishes_them(mnist_root, tmp_path, monkeypatch):
    gif = train.save_progress_gif

    def interrupted(*args: object) -> object:  # SIGINT as the final files are written
        os.kill(os.getpid(), signal.SIGINT)
        return gif(*args)

    monkeypatch.setattr(train, "save_progress_gif", interrupted)
    result = run_train(*quick_flags(mnist_root, tmp_path), "--n_epochs", "1", "--limit_batches",
                       "2", "--run_name", RUN)  # exit 0: it waits for them
    assert "SIGINT: finishing this batch" in result.stderr  # it did arrive
    assert "Traceback" not in result.stderr and "stopped after" not in result.stderr
    assert "done in " in result.stdout
    assert (tmp_path / "weights" / RUN / "generator_final.pth").is_file()
    assert (tmp_path / "results" / RUN / "training_progress.gif").is_file()
    assert json.loads((tmp_path / "results" / RUN / "config.json").read_text())["n_epochs"] == 1


@pytest.mark.parametrize(("script", "args", "code", "text"), [
    ("evaluate.py", ["--seed", "-1"], 2, "argument --seed: expected an integer in [0, 2**32)"),
    ("evaluate.py", ["--out", "{tmp}"], 2, "--out {tmp} is a folder; give a file name"),
    ("generate.py", ["--out", "{file}/a.png"], 2, "--out {file}: cannot create or write there"),
    ("generate.py", ["--n", "1000000000"], 1, "out of memory"),
    ("generate.py", ["--n", "99999999999999999999"], 2,
     "argument --n: expected an integer in [1, 2**31)"),
    ("generate.py", ["--min_confidence", "0"], 2,
     "argument --min_confidence: expected a number in (0, 1]"),
    ("generate.py", ["--out", "d.xyz"], 2, "--out d.xyz: no image format of that suffix"),
    ("train_judge.py", ["--lr", "nan"], 2, "argument --lr: expected a positive number"),
])
def test_scripts_answer_bad_input_in_one_line(script, args, code, text, short_run, tmp_path):
    (tmp_path / "file").write_text("x")

    def fill(value: str) -> str:
        return value.format(tmp=tmp_path, file=tmp_path / "file")

    weights = ([] if script == "train_judge.py"
               else ["--weights", str(short_run / "weights" / RUN / "generator_final.pth")])
    result = run_script(script, *map(fill, args), *weights, "--device", "cpu", cwd=tmp_path,
                        code=code)
    (line,) = result.stderr.strip().splitlines()  # no traceback
    assert line.startswith(f"{script}: error: ") and fill(text) in line


def test_what_resumes_of_a_finished_run_write(short_run, mnist_root, tiny_judge, tmp_path):
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    flags, weights = short_run_flags(mnist_root, tiny_judge, tmp_path), tmp_path / "weights" / RUN
    before = snapshot(tmp_path)
    result = run_train(*flags, "--resume", "auto")
    assert result.stdout.splitlines() == [
        f"run {RUN} has finished its 2 epochs; its weights are in {weights}/; give a larger "
        "--n_epochs to train it further"]
    past = run_train(*flags, "--resume", str(weights / "checkpoint_step_00000006.pth"),
                     "--n_epochs", "1", code=2)  # would write mid-run weights as the final ones
    assert last_line(past) == ("train.py: error: --n_epochs 1: the checkpoint is after epoch 2, "
                               "past it; give a larger --n_epochs, or resume an earlier "
                               "checkpoint")
    assert snapshot(tmp_path) == before
    # an earlier checkpoint (a copy, by another name), with new results and log folders: the
    # old ones are not written, and only the checkpoints after its step go
    backup = shutil.copy(weights / "checkpoint_step_00000003.pth",
                         weights / "checkpoint_step_00000003_kept.pth")  # not one of the run's
    rewound = run_train(*resume_flags(mnist_root, tiny_judge, tmp_path), "--resume", str(backup),
                        "--results_dir", str(tmp_path / "elsewhere"), "--log_dir",
                        str(tmp_path / "logs2"))
    assert [line for line in rewound.stdout.splitlines() if "removing" in line] == [
        f"--resume: removing {weights / 'checkpoint_step_00000006.pth'}, after the resumed step 3"]
    assert csv_steps(tmp_path / "elsewhere" / RUN) == [4, 5, 6]
    assert logged_steps(tmp_path / "logs2" / RUN) == [4, 5, 6]
    assert {k: v for k, v in snapshot(tmp_path).items() if k.startswith(("results/", "logs/"))
            } == {k: v for k, v in before.items() if k.startswith(("results/", "logs/"))}
    # a checkpoint whose networks are not the run's: named, and no command that fails again
    checkpoint = weights / "checkpoint_step_00000003.pth"
    saved = torch.load(checkpoint, weights_only=True)
    saved["generator"] = {k: v[:1] if v.dim() else v for k, v in saved["generator"].items()}
    torch.save(saved, checkpoint)
    config = (tmp_path / "results" / RUN / "config.json").read_text()
    resumed = run_train(*flags, "--resume", str(checkpoint), "--n_epochs", "3", code=1)
    assert last_line(resumed).startswith(f"train.py: error: {checkpoint} does not fit this "
                                         "run's networks (RuntimeError: Error(s) in loading")
    assert "--resume" not in last_line(resumed)
    assert (tmp_path / "results" / RUN / "config.json").read_text() == config  # as it trained
    for checkpoint in weights.glob("checkpoint_step_*.pth"):
        checkpoint.unlink()  # to free disk, say
    before = snapshot(tmp_path)
    named = run_train(*flags, "--resume", "auto", code=2)
    assert named.stdout.splitlines() == [
        f"--resume auto: no run with a checkpoint in {tmp_path / 'weights'}/ to continue (with "
        "--run_name: of that name), starting a new run"]
    assert last_line(named) == (
        f"train.py: error: --run_name {RUN}: {weights} exists; choose another --run_name")
    assert snapshot(tmp_path) == before
    unnamed = run_train(*quick_flags(mnist_root, tmp_path), "--resume", "auto", "--n_epochs",
                        "1", "--limit_batches", "2")  # the run trained last has no checkpoint
    assert unnamed.stdout.splitlines()[0] == named.stdout.splitlines()[0]
    (new,) = [p for p in run_folders(tmp_path / "results") if p.name != RUN]
    assert csv_steps(new) == [1, 2]
    assert kept(before, tmp_path) == before


# --- the other scripts replace only what they are told to ---

def test_evaluate_and_generate_write_their_files_and_replace_one_only_when_told(
        short_run, tiny_judge, mnist_root, tmp_path):
    weights = str(short_run / "weights" / RUN / "generator_final.pth")
    report = tmp_path / "report.json"
    args = ["--weights", weights, "--judge", str(tiny_judge), "--data_dir", str(mnist_root),
            "--n", "100", "--device", "cpu", "--out", str(report)]
    judge = tmp_path / "judge.pth"  # a judge whose record is not JSON
    shutil.copy(tiny_judge, judge)
    judge.with_suffix(".json").write_text("{not json")
    broken = run_script("evaluate.py", *args, "--judge", str(judge), code=1)
    assert broken.stdout == "" and not report.exists()  # before scoring anything
    assert last_line(broken) == (f"evaluate.py: error: {judge.with_suffix('.json')}, the "
                                 "judge's record, is not a JSON object; delete it, or make the "
                                 "judge again with train_judge.py")
    first = run_script("evaluate.py", *args)
    assert "FID (judge features), lower is better" in first.stdout
    assert "real data" in first.stdout and "n/a" in first.stdout
    scores = json.loads(report.read_text())
    assert scores["n"] == 100
    record = scores["judge"]  # what train_judge.py wrote beside the judge
    assert record == json.loads(tiny_judge.with_suffix(".json").read_text())
    assert record["test_accuracy"] > 0.9  # the synthetic digits are easy
    assert record["epochs"] == 3 and record["seed"] == 0
    assert record["command"].startswith("python train_judge.py --data_dir ")
    for part in (scores["model"], scores["real_data"]):
        assert {"fid", "kid", "inception_score", "precision", "recall", "density", "coverage",
                "digit_kl", "digit_shares"} <= set(part)
        assert len(part["digit_shares"]) == 10
    report.write_text("{}")
    kept_report = run_script("evaluate.py", *args, code=2)
    assert report.read_text() == "{}"
    assert last_line(kept_report) == (f"evaluate.py: error: --out {report} exists; choose "
                                      "another name, or add --overwrite to replace it")
    run_script("evaluate.py", *args, "--overwrite")
    assert json.loads(report.read_text())["model"] == scores["model"]  # the same scores again
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "mine.txt").write_text("x")
    (samples / "00002.png").write_text("an earlier set's")
    args = ["--weights", weights, "--n", "4", "--out_dir", str(samples), "--device", "cpu"]
    taken = run_script("generate.py", *args, code=2)
    assert last_line(taken) == (
        f"generate.py: error: --out_dir {samples / '00002.png'} exists; choose another name, or "
        "add --overwrite to replace it")
    assert sorted(os.listdir(samples)) == ["00002.png", "mine.txt"]
    replaced = run_script("generate.py", *args, "--overwrite")
    assert replaced.stdout.strip() == (f"wrote 4 images, 00000.png to 00003.png, into {samples}/ "
                                       "(1 other files there are as they were)")
    assert (samples / "mine.txt").read_text() == "x"
    with Image.open(samples / "00002.png") as image:
        assert image.format == "PNG" and image.size == (28, 28)
    run_script("generate.py", "--weights", weights, "--n", "9", "--out",
               str(tmp_path / "d.jpg"), "--device", "cpu")
    with Image.open(tmp_path / "d.jpg") as image:  # what the name says: a grid of 3 x 3
        assert image.format == "JPEG" and image.size == (3 * 30 + 2, 3 * 30 + 2)


def test_train_judge_replaces_no_judge_or_record_unless_told(mnist_root, tmp_path):
    (tmp_path / "judge.json").write_text('{"test_accuracy": 0.99}')
    result = run_script("train_judge.py", "--data_dir", str(mnist_root), "--out",
                        str(tmp_path / "judge.pt"), "--device", "cpu", code=2)
    assert last_line(result) == (f"train_judge.py: error: --out {tmp_path / 'judge.json'} "
                                 "exists; choose another name, or add --overwrite to replace it")
    assert os.listdir(tmp_path) == ["judge.json"]
    assert (tmp_path / "judge.json").read_text() == '{"test_accuracy": 0.99}'
    shipped = run_script("train_judge.py", "--data_dir", str(mnist_root), "--device", "cpu",
                         cwd=REPO, code=2)  # the default --out is the shipped judge
    assert last_line(shipped) == (
        "train_judge.py: error: --out weights/judge.pth exists; choose another name, or add "
        "--overwrite to replace it")
    record = run_script("train_judge.py", "--out", str(tmp_path / "config.json"), code=2)
    assert "give a .pth name" in last_line(record)


def test_an_output_that_cannot_be_printed_is_named(capsys):
    assert report("train.py", OSError(errno.ENOSPC, "No space left on device"), "") == 1
    assert capsys.readouterr().err == ("train.py: error: [Errno 28] No space left on device "
                                       "(printing to stdout or stderr)\n")


def test_a_tensorboard_folder_full_at_the_start_says_the_step_and_how_to_continue(
        mnist_root, tmp_path, monkeypatch):
    monkeypatch.setattr("utils.recorder.SummaryWriter", full_disk)
    out = tmp_path / "my runs"  # the command to continue is quoted for a shell
    flags = [*quick_flags(mnist_root, out), "--run_name", RUN]
    result = run_train(*flags, code=1)
    checkpoint = out / "weights" / RUN / STEP_0
    assert last_line(result) == (
        f"train.py: error: [Errno 28] cannot write TensorBoard events in {out / 'logs' / RUN}"
        f" (SummaryWriter): No space left on device; stopped at step 0; "
        + resume_hint(checkpoint, flags))


REFUSED = ("{} exists and is not this run's: a resumed run writes into folders that exist only "
           "when its checkpoint is in {}/ and they hold its .run_id; give the run's "
           "--weights_dir, --results_dir and --log_dir, or new ones")


def test_a_checkpoint_from_elsewhere_gets_new_folders_never_a_namesakes(
        short_run, mnist_root, tiny_judge, tmp_path, monkeypatch):
    shutil.copytree(short_run, tmp_path / "here")  # a finished run named RUN, here
    copy = shutil.copytree(short_run / "weights" / RUN, tmp_path / "elsewhere" / RUN)
    checkpoint = copy / "checkpoint_step_00000003.pth"  # of another clone, also named RUN
    flags = [*resume_flags(mnist_root, tiny_judge, tmp_path / "here"), "--n_epochs", "3"]
    before = snapshot(tmp_path)
    refused = run_train(*flags, "--resume", str(checkpoint), code=2)
    weights = tmp_path / "here" / "weights" / RUN
    assert last_line(refused) == "train.py: error: " + REFUSED.format(weights, weights)
    assert snapshot(tmp_path) == before  # no final weights replaced, no CSV rewound
    # new folders, which hold the checkpoint from the resume's start: it continues there
    new = [*flags, "--resume", str(checkpoint), *roots(tmp_path / "new")]
    monkeypatch.setattr("utils.recorder.SummaryWriter", full_disk)  # fails once started
    failed = run_train(*new, code=1)
    started = tmp_path / "new" / "weights" / RUN / "checkpoint_step_00000003.pth"
    assert last_line(failed).endswith("; stopped at step 3; " + resume_hint(started, new))
    monkeypatch.undo()
    run_train(*shlex.split(last_line(failed).split("to continue: ")[1])[2:])
    assert csv_steps(tmp_path / "new" / "results" / RUN) == list(range(4, 10))
    assert snapshot(tmp_path / "elsewhere") == {  # read there, never written
        k.removeprefix("elsewhere/"): v for k, v in before.items() if k.startswith("elsewhere/")}
    # linked into the run's weights folder, it is still from elsewhere
    (weights / "linked.pth").symlink_to(checkpoint)
    before = snapshot(tmp_path / "here")
    linked = run_train(*flags, "--resume", str(weights / "linked.pth"), code=2)
    assert last_line(linked) == "train.py: error: " + REFUSED.format(weights, weights)
    # in place, but with the results of another run of the same name (in other roots)
    results = tmp_path / "here" / "results" / RUN
    (results / ".run_id").write_text("another run's")
    namesake = run_train(*flags, "--resume", str(weights / "checkpoint_step_00000003.pth"),
                         code=2)
    assert last_line(namesake) == "train.py: error: " + REFUSED.format(results, weights)
    marker = f"results/{RUN}/.run_id"  # the test's edit: nothing else changed
    assert {k: v for k, v in snapshot(tmp_path / "here").items() if k != marker} == {
        k: v for k, v in before.items() if k != marker}


def test_a_resumed_run_writes_into_no_folder_that_no_run_made(
        short_run, mnist_root, tiny_judge, tmp_path):
    shutil.copytree(short_run, tmp_path / "run")
    clone = tmp_path / "clone"  # a clone's shipped folders: files, and no run's lock file
    for folder in ("weights", "results"):
        (clone / folder).mkdir(parents=True)
        (clone / folder / "generator_final.pth").write_text("shipped")
    run = tmp_path / "run" / "weights" / RUN
    flags = [*resume_flags(mnist_root, tiny_judge, tmp_path / "run"), "--n_epochs", "3"]
    # a run named "results" whose results would go where the clone ships its gallery
    checkpoint = run.rename(run.with_name("results")) / "checkpoint_step_00000003.pth"
    before = snapshot(tmp_path)
    refused = run_train(*flags, "--resume", str(checkpoint), "--run_name", "results",
                        "--results_dir", str(clone), code=2)
    assert last_line(refused) == "train.py: error: " + REFUSED.format(
        clone / "results", checkpoint.parent)
    assert snapshot(tmp_path) == before
    # a checkpoint at the top of the clone's weights: read there, written in --weights_dir
    top = Path(shutil.copy(checkpoint, clone / "weights"))
    flags[flags.index("--run_name") + 1] = "weights"
    run_train(*flags, "--resume", str(top))
    assert (tmp_path / "run" / "weights" / "weights" / "generator_final.pth").is_file()
    assert kept(before, tmp_path) == before and sorted(os.listdir(clone / "weights")) == [
        top.name, "generator_final.pth"]


def test_roots_that_are_one_folder_through_a_link_hold_one_run(mnist_root, tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)  # the results root: the others', through a link
    flags = [*quick_flags(mnist_root, tmp_path), "--weights_dir", str(tmp_path), "--log_dir",
             str(tmp_path), "--results_dir", str(tmp_path / "link")]
    run_train(*flags, "--n_epochs", "1", "--limit_batches", "2", "--run_name", RUN)
    files = os.listdir(tmp_path / RUN)
    assert {"generator_final.pth", "training_data.csv", "config.json"} <= set(files)
    assert len([name for name in files if name.startswith("events.out.tfevents.")]) == 1
    (tmp_path / "alias").symlink_to(tmp_path / RUN)  # the run's folder through a link
    resumed = run_train(*flags, "--resume", str(tmp_path / "alias"), "--n_epochs", "2")
    assert f"resuming run {RUN} from {tmp_path / 'alias' / 'checkpoint_step_00000002.pth'}" in (
        resumed.stdout)  # the run of the folder it is in
    assert csv_steps(tmp_path / RUN) == [1, 2, 3, 4]
