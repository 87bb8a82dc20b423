"""From any folder, on any terminal, under any signal, with two writers at once."""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import (
    NARROW,
    REPO,
    RUN,
    output_flags,
    run_process,
    run_script,
    run_train,
    synthetic_digits,
    write_idx,
)

QUICK = [*NARROW, "--batch_size", "16", "--eval_interval", "0", "--ema_decay", "0",
         "--device", "cpu"]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- two writers of one file ---

def test_two_generate_py_writing_one_file_at_once_both_succeed(short_run: Path,
                                                               tmp_path: Path) -> None:
    weights = str(short_run / "weights" / RUN / "generator_final.pth")
    out = tmp_path / "O.png"
    both = [subprocess.Popen([sys.executable, str(REPO / "generate.py"), "--weights", weights,
                              "--n", "2000", "--seed", str(seed), "--out", str(out),
                              "--overwrite", "--device", "cpu"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in (0, 1, 1)]  # two different, and two identical
    for process in both:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        assert stdout == f"wrote a grid of 2000 images to {out}\n"
    with Image.open(out) as grid:  # whole: one writer's complete image
        grid.load()
    assert not list(tmp_path.glob(".*.tmp"))


def test_generate_py_without_out_keeps_an_existing_generated_png(short_run: Path,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "generated.png").write_bytes(b"mine")
    weights = str(short_run / "weights" / RUN / "generator_final.pth")
    refused = run_script("generate.py", "--weights", weights, "--device", "cpu", cwd=tmp_path)
    assert refused.returncode == 2
    assert last_line(refused.stderr) == ("generate.py: error: --out generated.png exists; choose "
                                         "another name, or add --overwrite to replace it")
    assert (tmp_path / "generated.png").read_bytes() == b"mine"


# --- the repository's own files, from another folder ---

def test_from_another_folder_the_shipped_files_are_found(mnist_root: Path,
                                                         tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trained = run_train(*QUICK, "--n_epochs", "1", "--limit_batches", "2", "--eval_interval", "1",
                        "--eval_samples", "10", "--data_dir", str(mnist_root), cwd=elsewhere)
    assert trained.returncode == 0, trained.stderr
    assert "warning" not in trained.stderr  # the shipped judge was found
    (run,) = (elsewhere / "weights").iterdir()
    generate = os.path.relpath(REPO / "generate.py", elsewhere)
    command = last_line(trained.stdout).split("draw digits with: ")[1]
    weights = Path("weights") / run.name / "generator_final.pth"
    assert command == f"python {generate} --weights {weights}"
    history = pd.read_csv(elsewhere / "results" / run.name / "evaluation_history.csv")
    assert history["generator"].tolist() == ["raw"]
    drawn = run_script("generate.py", "--n", "4", "--digit", "1", "--min_confidence", "0.1",
                       "--device", "cpu", cwd=elsewhere)  # the shipped generator and judge
    assert drawn.returncode == 0, drawn.stderr
    with Image.open(elsewhere / "generated.png") as grid:
        assert grid.size == (2 * 30 + 2, 2 * 30 + 2)


def test_a_resumed_run_whose_tree_moved_finds_its_folders_beside_its_weights(
    mnist_root: Path, tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(mnist_root, old / "data")
    first = run_train(*QUICK, "--n_epochs", "1", "--limit_batches", "4", "--checkpoint_interval",
                      "2", "--data_dir", str(old / "data"), *output_flags(old))
    assert first.returncode == 0, first.stderr
    for name in ("checkpoint_step_00000004.pth", "generator_final.pth"):  # killed at step 2
        (old / "weights" / RUN / name).unlink()
    old.rename(new)
    resumed = run_train("--resume", str(new / "weights" / RUN))
    assert resumed.returncode == 0, resumed.stderr
    for flag, root in (("results_dir", "results"), ("log_dir", "logs"), ("data_dir", "data")):
        assert (f"--{flag}: taking {new / root}, where {old / root} was beside the run's "
                f"weights, now in {new / 'weights' / RUN}") in resumed.stdout
    assert not old.exists()  # nothing written at the old place
    csv = pd.read_csv(new / "results" / RUN / "training_data.csv")
    assert csv["step"].tolist() == [1, 2, 3, 4]
    elsewhere = tmp_path / "elsewhere"
    new.rename(elsewhere)
    shutil.rmtree(elsewhere / "results")
    (elsewhere / "weights" / RUN / "generator_final.pth").unlink()
    lost = run_train("--resume", str(elsewhere / "weights" / RUN))
    assert lost.returncode == 2
    assert last_line(lost.stderr) == (
        f"train.py: error: --results_dir: {elsewhere / 'results'} is missing; give "
        "--results_dir to say where the run's files are, or should go")


def test_a_hand_edited_config_json_is_named_and_the_checkpoint_wins(
    mnist_root: Path, tmp_path: Path
) -> None:
    flags = [*QUICK, "--n_epochs", "1", "--limit_batches", "3", "--data_dir", str(mnist_root),
             *output_flags(tmp_path)]
    assert run_train(*flags).returncode == 0
    path = tmp_path / "results" / RUN / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "lr": 0.1, "n_epochs": 2}))
    resumed = run_train("--resume", "auto", *output_flags(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.splitlines()[0] == (
        f"train.py: warning: {path} differs from the checkpoint (n_epochs 2 there, 1 in the "
        "checkpoint; lr 0.1 there, 0.0002 in the checkpoint); the checkpoint's configuration "
        "is used: change a flag on the command line instead (see --resume in --help)")
    assert f"run {RUN} has finished its 1 epochs" in resumed.stdout
    longer = run_train("--resume", "auto", "--n_epochs", "2", *output_flags(tmp_path))
    assert longer.returncode == 0, longer.stderr  # a flag given is no hand edit's victim
    assert longer.stderr.splitlines()[0] == (
        f"train.py: warning: {path} differs from the checkpoint (lr 0.1 there, 0.0002 in the "
        "checkpoint); the checkpoint's configuration is used: change a flag on the command "
        "line instead (see --resume in --help)")


# --- terminals and signals ---

def test_a_terminal_that_cannot_print_the_run_name_still_trains(mnist_root: Path,
                                                                tmp_path: Path) -> None:
    result = run_process("train.py", *QUICK, "--n_epochs", "1", "--limit_batches", "2",
                         "--data_dir", str(mnist_root), "--results_dir", str(tmp_path / "r"),
                         "--weights_dir", str(tmp_path / "w"), "--log_dir", str(tmp_path / "l"),
                         "--run_name", "第二次", env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert "run \\u7b2c\\u4e8c\\u6b21: 200 images" in result.stdout
    assert (tmp_path / "w" / "第二次" / "generator_final.pth").is_file()


def test_sighup_with_the_terminal_gone_checkpoints_and_leaves_the_command(
    mnist_root: Path, tmp_path: Path
) -> None:
    terminal, child_end = pty.openpty()  # the run's stdout and stderr are a terminal
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *QUICK, "--n_epochs", "1000",
         "--data_dir", str(mnist_root), "--checkpoint_interval", "0", *output_flags(tmp_path)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=child_end, stderr=child_end)
    os.close(child_end)
    csv = tmp_path / "results" / RUN / "training_data.csv"
    deadline = time.time() + 120
    while not csv.exists() or len(csv.read_text().splitlines()) < 4:
        assert time.time() < deadline and process.poll() is None
        while select.select([terminal], [], [], 0)[0]:  # keep the terminal drained
            os.read(terminal, 65536)
        time.sleep(0.01)
    process.send_signal(signal.SIGHUP)  # the terminal window closes:
    os.close(terminal)  # writes to it fail from now on
    assert process.wait(timeout=120) == 129
    stopped = (tmp_path / "results" / RUN / "stopped.txt").read_text().strip()
    checkpoint = stopped.split("--resume ")[1]
    state = torch.load(checkpoint, weights_only=True)
    step = state["step"]
    assert step == pd.read_csv(csv)["step"].iloc[-1] > 0  # the batch in flight was finished
    assert stopped == (f"stopped after step {step}; the last checkpoint, {checkpoint}, is intact; "
                       f"to continue: python train.py --resume {checkpoint}")
    resumed = run_train("--resume", checkpoint, "--n_epochs", str(state["epochs_done"] + 1))
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "results" / RUN / "stopped.txt").exists()  # it went on


# --- messages ---

def test_evaluation_says_what_it_scores(short_run: Path) -> None:
    printed = (short_run / "stdout.txt").read_text().splitlines()
    for epoch in (1, 2):
        for generator in ("raw", "ema"):
            at = printed.index(f"epoch {epoch}, {generator}: scoring 64 samples ...")
            assert printed[at + 1].startswith(f"epoch {epoch}, {generator}: FID ")


def test_evaluate_py_with_few_samples_says_what_they_mean(short_run: Path, tiny_judge: Path,
                                                          mnist_root: Path,
                                                          tmp_path: Path) -> None:
    result = run_script("evaluate.py", "--weights",
                        str(short_run / "weights" / RUN / "generator_final.pth"), "--judge",
                        str(tiny_judge), "--data_dir", str(mnist_root), "--n", "30",
                        "--device", "cpu", "--out", str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("scoring 30 samples of ") and "and 30 real training images" \
        in lines[0]
    assert lines[-2] == ("note: both columns score 30 samples; with fewer than 10,000, FID and "
                         "KID are biased upward and the digit shares are noisier, for the real "
                         "data too: compare only scores of the same --n")
    assert json.loads((tmp_path / "e.json").read_text())["real_data"]["n"] == 30


def test_a_batch_larger_than_the_training_set_is_refused(mnist_root: Path,
                                                         tmp_path: Path) -> None:
    result = run_train(*QUICK, "--batch_size", "201", "--data_dir", str(mnist_root),
                       *output_flags(tmp_path))
    assert result.returncode == 2
    assert last_line(result.stderr) == ("train.py: error: --batch_size 201 is larger than the "
                                        "200 training images; give at most 200")
    assert not (tmp_path / "weights" / RUN).exists()  # the run's empty folders are gone


# --- what the hostile pass found: a run's files are its own, whatever is resumed from where ---

def stopped_run(mnist_root: Path, out: Path, **flags: str) -> list[str]:
    """A finished 4-step run named RUN under ``out``, with checkpoints at steps 0, 2, 4."""
    args = [*QUICK, "--n_epochs", "1", "--limit_batches", "4", "--checkpoint_interval", "2",
            "--data_dir", str(mnist_root), *output_flags(out)]
    for flag, value in flags.items():
        args += [f"--{flag}", value]
    assert run_train(*args).returncode == 0
    return args


def other_mnist(mnist_root: Path, root: Path, n_train: int) -> Path:
    """A copy of the tests' MNIST under ``root`` with ``n_train`` other training images."""
    raw = root / "MNIST" / "raw"
    shutil.copytree(mnist_root / "MNIST" / "raw", raw)
    images, labels = synthetic_digits(n_train, np.random.default_rng(1))
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    return root


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("where", ["top of weights", "another run's folder", "working folder"])
def test_a_checkpoint_outside_its_runs_folder_is_refused(where: str, mnist_root: Path,
                                                         tmp_path: Path) -> None:
    args = stopped_run(mnist_root, tmp_path)
    assert run_train(*args, "--run_name", "other").returncode == 0  # another run beside it
    copy = {"top of weights": tmp_path / "weights", "working folder": tmp_path,
            "another run's folder": tmp_path / "weights" / "other"}[where]
    shutil.copy(tmp_path / "weights" / RUN / "checkpoint_step_00000002.pth", copy)
    before = tree(tmp_path)
    result = run_train("--resume", str(copy / "checkpoint_step_00000002.pth"))
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"train.py: error: {copy / 'checkpoint_step_00000002.pth'} belongs to run {RUN}, which "
        f"resumes only from its own folder, <weights_dir>/{RUN}/ (beside <results_dir>/{RUN}/ "
        f"and <log_dir>/{RUN}/); move it, or rename the run's folders, back there to resume")
    assert tree(tmp_path) == before


def test_a_run_resumed_from_another_tree_writes_into_its_own(mnist_root: Path,
                                                             tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):  # two trees, each with a run of the same name, default (relative) roots
        root.mkdir()
        assert run_train(*QUICK, "--n_epochs", "1", "--limit_batches", "4", "--run_name", "x",
                         "--checkpoint_interval", "2", "--data_dir", str(mnist_root),
                         cwd=root).returncode == 0
    (a / "weights" / "x" / "checkpoint_step_00000004.pth").unlink()  # a's run: stopped at 2
    config = json.loads((a / "results" / "x" / "config.json").read_text())
    del config["finished"]
    (a / "results" / "x" / "config.json").write_text(json.dumps(config))
    before = tree(b)
    resumed = run_train("--resume", "../a/weights/x", cwd=b)  # from the other tree
    assert resumed.returncode == 0, resumed.stderr
    assert tree(b) == before  # b's own run is untouched
    assert "taking" not in resumed.stdout  # its folders, as recorded: a's
    assert pd.read_csv(a / "results" / "x" / "training_data.csv")["step"].tolist() == [1, 2, 3, 4]


def test_symbolic_links_to_a_run_lead_to_the_run_itself(mnist_root: Path,
                                                        tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path)
    weights = tmp_path / "weights"
    (weights / "latest").symlink_to(RUN)  # a convenience link to the run's folder
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link").symlink_to(weights)  # '..' after it leads to tmp_path
    through_dotdot = tmp_path / "sub" / "link" / ".." / "weights" / RUN
    for resume, epochs in ((weights / "latest", "2"), (through_dotdot, "3"), ("auto", "4")):
        resumed = run_train("--resume", str(resume), "--n_epochs", epochs, "--weights_dir",
                            str(weights))
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming run {RUN} from {weights / RUN}/checkpoint_step_" in resumed.stdout
    for root in ("results", "logs"):
        assert [p.name for p in (tmp_path / root).iterdir()] == [RUN]
    assert not (tmp_path / "sub" / "weights").exists()
    steps = pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")["step"]
    assert steps.tolist() == list(range(1, 17))
    assert {torch.load(p, weights_only=True)["run_name"]
            for p in (weights / RUN).glob("checkpoint_*")} == {RUN}


@pytest.mark.parametrize("case", ["results", "results without config.json", "logs"])
def test_the_folders_of_another_run_of_the_same_name_are_refused(case: str, mnist_root: Path,
                                                                 tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    stopped_run(mnist_root, a)
    stopped_run(mnist_root, b, seed="1")  # another run, also named RUN
    if case == "results without config.json":
        (b / "results" / RUN / "config.json").unlink()
    flag, root = ("log_dir", b / "logs") if case == "logs" else ("results_dir", b / "results")
    before = tree(b)
    resumed = run_train("--resume", str(a / "weights" / RUN), "--n_epochs", "2", f"--{flag}",
                        str(root))
    assert resumed.returncode == 2
    whose = ("files but no config.json saying whose" if "without" in case else
             f"another run named {RUN}, started ")
    assert last_line(resumed.stderr).startswith(
        f"train.py: error: --{flag}: {root / RUN} holds {whose}")
    assert tree(b) == before


def test_a_copied_run_of_one_folder_writes_into_the_copy_and_needs_its_logs(
    mnist_root: Path, tmp_path: Path
) -> None:
    out, copy = tmp_path / "out", tmp_path / "copy"
    stopped_run(mnist_root, tmp_path, weights_dir=str(out), results_dir=str(out),
                log_dir=str(out))  # weights, results and logs: one folder
    shutil.copytree(out, copy)
    before = tree(out)
    resumed = run_train("--resume", str(copy / RUN), "--n_epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == before
    assert pd.read_csv(copy / RUN / "training_data.csv")["step"].tolist() == list(range(1, 9))
    partial = tmp_path / "partial"  # a copy of the default layout without its logs
    stopped_run(mnist_root, tmp_path / "full")
    for root in ("weights", "results"):
        shutil.copytree(tmp_path / "full" / root, partial / root)
    refused = run_train("--resume", str(partial / "weights" / RUN), "--n_epochs", "2")
    assert refused.returncode == 2
    assert last_line(refused.stderr) == (
        f"train.py: error: --log_dir: {partial / 'logs'} is missing; give --log_dir to say "
        "where the run's files are, or should go")


def test_a_copy_of_the_weights_alone_is_refused_and_a_move_keeps_the_results(
    mnist_root: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    stopped_run(mnist_root, a)
    shutil.copytree(a / "weights" / RUN, a / "backup" / RUN)  # the weights backed up, alone
    before = tree(a / "results"), tree(a / "logs")
    copied = run_train("--resume", str(a / "backup" / RUN), "--n_epochs", "2")
    assert copied.returncode == 2
    assert last_line(copied.stderr) == (
        f"train.py: error: --results_dir: the weights in {a / 'backup' / RUN} are a copy of "
        f"{a / 'weights' / RUN}, whose {a / 'results'} the copy would share; give "
        "--results_dir and --log_dir of the copy's own")
    assert (tree(a / "results"), tree(a / "logs")) == before
    for root in ("weights", "results", "logs"):
        (b / root).mkdir(parents=True)
    (a / "weights" / RUN).rename(b / "weights" / RUN)  # the weights moved alone
    moved = run_train("--resume", str(b / "weights" / RUN), "--n_epochs", "2")
    assert moved.returncode == 0, moved.stderr
    assert "_dir: taking" not in moved.stdout  # its results and logs stay where they are
    steps = pd.read_csv(a / "results" / RUN / "training_data.csv")["step"]
    assert steps.tolist() == list(range(1, 9))
    assert not list((b / "results").iterdir())


def test_a_run_is_found_where_it_is_through_links_and_beside_a_namesake(
    mnist_root: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "disk" / "weights").mkdir(parents=True)
    (home / "weights").symlink_to(tmp_path / "disk" / "weights")  # the weights on another disk
    assert run_train(*QUICK, "--n_epochs", "1", "--limit_batches", "4", "--run_name", RUN,
                     "--data_dir", str(mnist_root), cwd=home).returncode == 0
    stopped_run(mnist_root, tmp_path / "elsewhere", weights_dir=str(home / "w2"))  # a namesake
    for resume, epochs in ((home / "weights" / RUN, "2"), (home / "w2" / RUN, "2")):
        resumed = run_train("--resume", str(resume), "--n_epochs", epochs, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr  # from another working folder
        assert "_dir: taking" not in resumed.stdout
    assert pd.read_csv(home / "results" / RUN / "training_data.csv")["step"].tolist() == list(
        range(1, 9))
    elsewhere = tmp_path / "elsewhere" / "results" / RUN / "training_data.csv"
    assert pd.read_csv(elsewhere)["step"].tolist() == list(range(1, 9))
    (tmp_path / "disk" / "weights" / RUN).rename(tmp_path / "disk" / "moved")
    (tmp_path / "disk" / "weights" / RUN).symlink_to(tmp_path / "disk" / "moved")
    linked = run_train("--resume", "auto", "--n_epochs", "3", "--weights_dir",
                       str(home / "weights"), cwd=home)  # a run folder linked back
    assert linked.returncode == 0, linked.stderr
    assert pd.read_csv(home / "results" / RUN / "training_data.csv")["step"].tolist() == list(
        range(1, 13))


def test_a_refused_resume_does_not_make_its_run_the_latest(mnist_root: Path,
                                                           tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path, run_name="a")
    stopped_run(mnist_root, tmp_path, run_name="b")
    failed = run_train("--resume", str(tmp_path / "weights" / "a"), "--n_epochs", "2",
                       "--data_dir", str(other_mnist(mnist_root, tmp_path / "other", 100)))
    assert failed.returncode == 2, failed.stderr
    latest = run_train("--resume", "auto", "--n_epochs", "2", "--weights_dir",
                       str(tmp_path / "weights"))
    assert f"resuming run b from {tmp_path / 'weights' / 'b'}" in latest.stdout


def test_a_resume_that_fails_removes_nothing(mnist_root: Path, tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path)
    other = other_mnist(mnist_root, tmp_path / "other", 100)  # not the run's 200 images
    (tmp_path / "results" / RUN / "stopped.txt").write_text("stopped after step 2; ...\n")
    before = tree(tmp_path / "weights"), tree(tmp_path / "results")
    earlier = tmp_path / "weights" / RUN / "checkpoint_step_00000002.pth"
    rewound = run_train("--resume", str(earlier), "--n_epochs", "2", "--data_dir",
                        str(other))
    assert rewound.returncode == 2
    assert "holds 100 training images, the run trained on 200" in last_line(rewound.stderr)
    assert (tree(tmp_path / "weights"), tree(tmp_path / "results")) == before


def test_a_backup_copy_of_a_runs_folder_is_not_a_run(mnist_root: Path, tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path)
    weights = tmp_path / "weights"
    shutil.copytree(weights / RUN, weights / f"{RUN}.bak")  # newer files than the run's own
    resumed = run_train("--resume", "auto", "--n_epochs", "2", "--weights_dir", str(weights))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {RUN} from {weights / RUN}/checkpoint_step_00000004.pth" in (
        resumed.stdout)
    moved = run_train("--resume", str(weights / RUN), "--n_epochs", "3", "--weights_dir",
                      str(tmp_path / "elsewhere"))
    assert moved.returncode == 2
    assert last_line(moved.stderr) == (
        f"train.py: error: --weights_dir {tmp_path / 'elsewhere'}: a resumed run's weights stay "
        f"in its own folder, {weights / RUN}; move that folder to train it elsewhere")


def test_a_run_named_like_a_file_is_refused_and_leftovers_of_a_kill_go(
    mnist_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "config.json").write_text("{}")  # as the repository ships one
    named = run_train(*QUICK, "--data_dir", str(mnist_root), *output_flags(tmp_path),
                      "--run_name", "config.json")
    assert named.returncode == 2
    assert last_line(named.stderr) == (
        f"train.py: error: --run_name config.json: {tmp_path / 'results' / 'config.json'} is a "
        "file; choose another --run_name")
    assert not (tmp_path / "weights" / "config.json").exists()
    leftover = tmp_path / "weights" / RUN / ".checkpoint_step_00000000.pth.99-0a1b2c3d.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a checkpoint")  # a kill during the first checkpoint
    stopped_run(mnist_root, tmp_path)  # a new run of that name takes the folder
    assert not leftover.exists()


def test_train_judge_refuses_an_out_that_its_record_would_overwrite(mnist_root: Path,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"run": 1}')
    result = run_script("train_judge.py", "--data_dir", str(mnist_root), "--epochs", "1",
                        "--out", str(tmp_path / "config.json"))
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        f"train_judge.py: error: --out {tmp_path / 'config.json'}: the judge's record goes "
        "beside its weights as a .json file; give a .pth name")
    assert (tmp_path / "config.json").read_text() == '{"run": 1}'


def test_a_copied_tree_resumes_into_the_copy(mnist_root: Path, tmp_path: Path) -> None:
    original, copy = tmp_path / "original", tmp_path / "copy"
    stopped_run(mnist_root, original)  # its folders recorded as absolute paths
    shutil.copytree(original, copy)
    before = tree(original)
    resumed = run_train("--resume", str(copy / "weights" / RUN), "--n_epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    for flag, root in (("results_dir", "results"), ("log_dir", "logs")):
        assert (f"--{flag}: taking {copy / root}, where {original / root} was beside the run's "
                f"weights, now in {copy / 'weights' / RUN}") in resumed.stdout
    assert tree(original) == before
    steps = pd.read_csv(copy / "results" / RUN / "training_data.csv")["step"]
    assert steps.tolist() == list(range(1, 9))


def test_resuming_an_earlier_checkpoint_drops_the_later_ones(mnist_root: Path,
                                                             tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path)
    weights = tmp_path / "weights" / RUN
    rewound = run_train("--resume", str(weights / "checkpoint_step_00000002.pth"), "--n_epochs",
                        "1")
    assert rewound.returncode == 0, rewound.stderr
    assert ("--resume: step 2 is earlier than this run's newest checkpoint; removing the 1 after "
            "it") in rewound.stdout
    assert sorted(p.name for p in weights.glob("checkpoint_*")) == [
        "checkpoint_step_00000000.pth", "checkpoint_step_00000002.pth",
        "checkpoint_step_00000004.pth"]  # step 4 written anew by the rewound run
    assert pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")["step"].tolist() == [
        1, 2, 3, 4]


def test_a_run_killed_while_writing_its_final_files_is_not_finished(mnist_root: Path,
                                                                    tmp_path: Path) -> None:
    stopped_run(mnist_root, tmp_path)
    results, weights = tmp_path / "results" / RUN, tmp_path / "weights" / RUN
    config = json.loads((results / "config.json").read_text())
    del config["finished"]  # as if killed after generator_final.pth, before the rest
    (results / "config.json").write_text(json.dumps(config))
    for name in ("discriminator_final.pth", "training_progress.gif"):
        (weights / name if name.endswith(".pth") else results / name).unlink()
    again = run_train("--resume", "auto", *output_flags(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "has finished" not in again.stdout
    assert (weights / "discriminator_final.pth").is_file()
    assert (results / "training_progress.gif").is_file()
    assert "finished" in json.loads((results / "config.json").read_text())


def test_weights_and_results_in_one_folder(mnist_root: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    result = run_train(*QUICK, "--n_epochs", "1", "--limit_batches", "2", "--data_dir",
                       str(mnist_root), "--weights_dir", out, "--results_dir", out,
                       "--log_dir", out, "--run_name", RUN)
    assert result.returncode == 0, result.stderr
    assert {"generator_final.pth", "training_data.csv", "config.json"} <= {
        p.name for p in (tmp_path / "out" / RUN).iterdir()}
    assert [p.name for p in (tmp_path / "out").iterdir()] == [RUN]
