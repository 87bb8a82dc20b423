"""Nothing lost, nothing cryptic: exact resume, kills at random moments, signals, bad input."""

import errno
import io
import json
import os
import random
import shlex
import shutil
import signal
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import train
from models import Discriminator, Generator
from tests.conftest import (
    NARROW,
    REPO,
    RUN,
    assert_same_weights,
    last_line,
    logged_steps,
    output_flags,
    resume_hint,
    roots,
    run_train,
    start_train,
    wait_for_rows,
    write_idx,
)
from utils.checkpoint import CheckpointError, load_generator, load_state_dict_from
from utils.run import ID_NAME, LOCK_NAME

# 3 epochs of 13 batches (200 synthetic images, batch 16), a checkpoint every 4 batches,
# an evaluation after epoch 1, epoch 2 and the last.
LONG_RUN = [*NARROW, "--n_epochs", "3", "--batch_size", "16", "--checkpoint_interval", "4",
            "--keep_checkpoints", "100", "--save_interval", "1", "--sample_interval", "5",
            "--eval_interval", "2", "--eval_samples", "64", "--device", "cpu"]
N_STEPS = 39
# Its checkpoints: at the start, every 4 steps inside an epoch, and at each epoch's end.
CHECKPOINT_STEPS = [0, 4, 8, 12, 13, 16, 20, 24, 26, 28, 32, 36, 39]


@pytest.fixture(scope="module")
def long_run(mnist_root: Path, tiny_judge: Path) -> Callable[[Path], list[str]]:
    """The flags of LONG_RUN on the synthetic MNIST with the tiny judge, writing under a folder."""

    def flags(out: Path) -> list[str]:
        return [*LONG_RUN, "--data_dir", str(mnist_root), "--judge", str(tiny_judge),
                *output_flags(out)]

    return flags


@pytest.fixture(scope="module")
def reference(long_run: Callable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted LONG_RUN (in this process), the run the others must repeat exactly."""
    out = tmp_path_factory.mktemp("reference")
    run_train(*long_run(out))
    return out


def checkpoint_file(out: Path, step: int) -> Path:
    return out / "weights" / RUN / f"checkpoint_step_{step:08d}.pth"


def checkpoint_steps(out: Path) -> list[int]:
    """The steps of the checkpoints in the run's weights folder."""
    return sorted(int(path.stem.split("_")[-1])
                  for path in (out / "weights" / RUN).glob("checkpoint_step_*.pth"))


def assert_every_file_complete(out: Path) -> None:
    """Every file a run left (its temporary, hidden ones aside) opens and reads in full."""
    for path in (out / "results" / RUN).glob("[!.]*"):
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".csv":
            assert not pd.read_csv(path).isna().any().any(), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
    for path in (out / "weights" / RUN).glob("*.pth"):
        torch.load(path, weights_only=True)


def assert_same_checkpoint(ours: Path, theirs: Path) -> None:
    """Two checkpoints hold the same training state (their provenance aside)."""
    assert_same_weights(ours, theirs, ignore=("config", "format"))  # commands, times


def assert_same_run(out: Path, reference: Path, stopped_at: int | None = None) -> None:
    """The reference's per-batch numbers, evaluations, weights and checkpoints, exactly (and the
    checkpoint of the step a signal ``stopped_at``)."""
    for name in ("training_data.csv", "evaluation_history.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / "results" / RUN / name),
                                      pd.read_csv(reference / "results" / RUN / name),
                                      check_exact=True)
    for name in ("generator_final.pth", "discriminator_final.pth", "generator_best.pth",
                 "generator_ema.pth"):
        assert_same_weights(out / "weights" / RUN / name, reference / "weights" / RUN / name)
    assert checkpoint_steps(reference) == CHECKPOINT_STEPS
    stops = [] if stopped_at is None else [stopped_at]
    assert checkpoint_steps(out) == sorted({*CHECKPOINT_STEPS, *stops})
    assert_same_checkpoint(checkpoint_file(out, N_STEPS), checkpoint_file(reference, N_STEPS))


def test_resume_from_a_mid_epoch_checkpoint_is_exact(reference, mnist_root, tiny_judge, tmp_path):
    out = shutil.copytree(reference, tmp_path / "copy")
    kept = {checkpoint_file(out, step) for step in (0, 4, 8)}
    for path in set((out / "weights" / RUN).glob("*.pth")) - kept:  # as a stop at step 8 left it
        path.unlink()
    checkpoint = checkpoint_file(out, 8)  # epoch 1, batch 8 of 13
    resumed = run_train("--resume", str(checkpoint), *output_flags(out), "--data_dir",
                        str(mnist_root), "--judge", str(tiny_judge))  # paths: never inherited
    assert (f"resuming run {RUN} from {checkpoint}: 0 epochs and 8 batches done (step 8)"
            in resumed.stdout)
    assert_same_run(out, reference)
    # events after step 8 were purged, then written again: no duplicates
    assert logged_steps(out / "logs" / RUN, "loss/G") == list(range(1, N_STEPS + 1))


def test_sigkill_at_random_moments_loses_nothing(reference, long_run, tmp_path):
    flags = [*long_run(tmp_path), "--resume", "auto"]
    csv = tmp_path / "results" / RUN / "training_data.csv"
    chance = random.Random(0)
    for rows in sorted(chance.sample(range(2, N_STEPS - 1), 3)):  # 4, 26, 28
        process = start_train(*flags)
        wait_for_rows(csv, rows, process)
        time.sleep(chance.uniform(0, 0.3))  # sometimes inside a checkpoint or image write
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL  # killed, not finished
        assert_every_file_complete(tmp_path)
    finished = run_train(*flags)
    assert f"resuming run {RUN} from " in finished.stdout
    assert_same_run(tmp_path, reference)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                              (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_finishes_the_batch_checkpoints_and_tells_how_to_resume(
        signum, code, reference, long_run, tmp_path):
    process = start_train(*long_run(tmp_path))
    wait_for_rows(tmp_path / "results" / RUN / "training_data.csv", 7, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert (f"{signal.Signals(signum).name}: finishing this batch and writing a checkpoint"
            in stderr)
    steps = pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")["step"].tolist()
    step = steps[-1]  # the batch in flight was finished, and logged
    assert step >= 7 and steps == list(range(1, step + 1))
    checkpoint = checkpoint_file(tmp_path, step)
    hint = resume_hint(checkpoint, long_run(tmp_path), cwd=REPO)  # start_train's folder
    assert last_line(stderr) == f"stopped after step {step}; {hint}"
    assert torch.load(checkpoint, weights_only=True)["step"] == step
    assert_every_file_complete(tmp_path)
    command = shlex.split(hint.split("to continue: ")[1])  # python train.py --resume=...
    run_train(*command[2:], cwd=REPO)
    assert_same_run(tmp_path, reference, stopped_at=step)


def test_a_signal_during_set_up_stops_at_the_checkpoint_of_step_0(
        reference, long_run, tmp_path, monkeypatch):
    load_mnist, sent = train.load_mnist, []

    def interrupted(*args: object, **kwargs: object) -> object:
        if not sent:  # once: a second Ctrl-C would end this process at once
            sent.append(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return load_mnist(*args, **kwargs)

    monkeypatch.setattr(train, "load_mnist", interrupted)  # after the lock, before step 0
    result = run_train(*long_run(tmp_path), code=130)
    checkpoint = checkpoint_file(tmp_path, 0)
    hint = resume_hint(checkpoint, long_run(tmp_path))
    assert last_line(result) == f"stopped after step 0; {hint}"
    assert checkpoint_steps(tmp_path) == [0]
    assert_same_checkpoint(checkpoint, checkpoint_file(reference, 0))  # resumes as the run


def test_second_interrupt_exits_at_once(long_run, tmp_path):
    # full width: the batch in flight must outlast the second Ctrl-C
    process = start_train(*long_run(tmp_path), "--batch_size", "64", "--ngf", "64", "--ndf", "64")
    wait_for_rows(tmp_path / "results" / RUN / "training_data.csv", 2, process)
    process.send_signal(signal.SIGINT)
    for line in process.stderr:  # wait until the first interrupt was taken
        if "finishing this batch" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "SIGINT again: exiting now; files are written whole or not at all" in stderr
    assert "stopped after step" not in stderr  # no checkpoint of the batch in flight
    assert_every_file_complete(tmp_path)


def test_divergence_stops_with_the_step_and_saves_nothing_after_step_0(long_run, tmp_path):
    result = run_train(*long_run(tmp_path), "--lr", "1e30", code=1)
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert message.startswith("train.py: error: training diverged at step 1 (epoch 1, batch 1)")
    assert message.endswith("a resume would diverge again: start a new run with a lower --lr")
    left = {path.name for path in (tmp_path / "weights" / RUN).iterdir()} - {LOCK_NAME, ID_NAME}
    assert left == {"checkpoint_step_00000000.pth"}  # nothing of the diverged weights
    assert torch.load(checkpoint_file(tmp_path, 0), weights_only=True)["step"] == 0


# --- bad input: one line naming the flag or file, exit 2 for arguments, 1 for the rest ---
# An argument may be a function of the test's folders (Where) that makes the bad file:
# its own, the reference run's, the synthetic MNIST's.
Where = namedtuple("Where", ["tmp", "run", "mnist"])


def written(name: str, content: Callable[[Where], bytes]) -> Callable[[Where], str]:
    """A bad-input argument: the file ``name`` in the test's folder, holding ``content``."""

    def make(at: Where) -> str:
        (at.tmp / name).write_bytes(content(at))
        return str(at.tmp / name)

    return make


def saved(content: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def flipped(at: Where) -> bytes:
    """The reference's checkpoint of step 8 with one bit of its middle (tensor data) flipped."""
    data = checkpoint_file(at.run, 8).read_bytes()
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]


class Payload:
    """A pickle whose loading would write a file: what a loader must never run."""

    def __reduce__(self) -> tuple:
        return (Path.write_text, (Path("ran.txt"), "loading ran code"))


def checkpoint_in(folder: str) -> Callable[[Where], str]:
    """A copy of the reference's checkpoint of step 8 in ``folder`` (from the test's folder)."""

    def make(at: Where) -> str:
        (at.tmp / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint_file(at.run, 8), at.tmp / folder)
        return str(Path(folder) / checkpoint_file(at.run, 8).name)

    return make


def not_a_folder(at: Where) -> str:
    (at.tmp / "file").write_text("x")
    return str(at.tmp / "file" / "sub")


def dangling_link(at: Where) -> str:
    (at.tmp / "gone").symlink_to(at.tmp / "nowhere")
    return str(at.tmp / "gone")


def damaged_mnist(damage: Callable[[Path], object]) -> Callable[[Where], str]:
    """A copy of the synthetic MNIST with ``damage`` done to its raw folder."""

    def make(at: Where) -> str:
        shutil.copytree(at.mnist, at.tmp / "data")
        damage(at.tmp / "data" / "MNIST" / "raw")
        return str(at.tmp / "data")

    return make


BAD_INPUTS = [  # (id, arguments, exit status, text the one-line message must hold)
    ("batch_size 0", ["--batch_size", "0"], 2,
     "argument --batch_size: expected an integer in [1, 2**31), got '0'"),
    ("lr nan", ["--lr", "nan"], 2, "argument --lr: expected a positive number, got 'nan'"),
    ("beta1 1", ["--beta1", "1"], 2, "argument --beta1: expected a number in [0, 1), got '1'"),
    ("run_name ../x", ["--run_name", "../x"], 2,
     "argument --run_name: expected a folder name of at most 60 letters"),
    ("nz too large", ["--nz", "2000000000"], 1,
     "out of memory at step 0 on cpu; smaller --nz, --ngf, --ndf, --batch_size or "
     "--eval_samples may fit"),
    ("unknown flag", ["--epochs", "5"], 2, "unrecognized arguments: --epochs 5"),
    ("results_dir under a file", ["--results_dir", not_a_folder], 2,
     "(Not a directory); give writable --weights_dir, --results_dir and --log_dir"),
    ("judge with a terminal escape", ["--judge", "\x1b]0;title\x07.pth"], 2,
     "argument --judge: expected a path of printable characters, got '\\x1b]0;title\\x07.pth'"),
    ("weights_dir a link to nothing", ["--weights_dir", dangling_link, "--run_name", "x"], 2,
     "/gone/x ("),
    ("resume missing file", ["--resume", "missing.pth"], 1, "missing.pth: no such file"),
    ("resume truncated", ["--resume", written(
        "cut.pth", lambda at: checkpoint_file(at.run, 8).read_bytes()[:5000])], 1,
     "cut.pth is damaged (its zip directory does not read back"),  # so random bytes or text
    ("resume bit flipped", ["--resume", written("flipped.pth", flipped)], 1,
     "flipped.pth is damaged (archive/data/"),
    ("resume pickled module", ["--resume", written("module.pth", lambda at: saved(
        {"net": torch.nn.Linear(2, 2), "payload": Payload()}))], 1,
     "module.pth holds pickled Python objects (a whole module, as torch.save(net, f) writes), "
     "not weights; loading it would run its code"),
    ("resume a folder without checkpoints", ["--resume", lambda at: str(at.tmp)], 1,
     "holds no checkpoint_step_*.pth; pass a run's weights folder or one of its checkpoints"),
    ("resume weights file", ["--resume", lambda at: str(
        at.run / "weights" / RUN / "generator_final.pth")], 1,
     "holds weights (a state dict), not a training checkpoint"),
    ("resume foreign", ["--resume", written("other.pth", lambda at: saved(
        {"model": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3}))], 1,
     "holds something else, not a training checkpoint"),
    ("resume odd position", ["--resume", written("odd.pth", lambda at: saved(
        {**torch.load(checkpoint_file(at.run, 8), weights_only=True), "step": "8"}))], 1,
     "odd.pth is a checkpoint of train.py without a readable position or configuration"),
    ("resume in 'a b'", ["--resume", checkpoint_in("a b")], 2,
     "--resume a b/checkpoint_step_00000008.pth: a run's name is its checkpoint's folder's, and "
     "'a b' is not one --run_name accepts; move the checkpoint into a folder of its own, named "
     "as the run"),
    ("resume other nz", ["--resume", checkpoint_in(f"copy/{RUN}"), "--nz", "50"], 2,
     "--nz 50 differs from the resumed run's 100; leave --nz out"),
    ("IDX not an IDX file", ["--data_dir", damaged_mnist(lambda raw: (
        raw / "train-images-idx3-ubyte").write_bytes(b"GIF89a" + bytes(5000)))], 1,
     "train-images-idx3-ubyte (5006 bytes) is truncated, corrupt or not an MNIST IDX file"),
    ("IDX counts differ", ["--data_dir", damaged_mnist(lambda raw: write_idx(
        raw / "train-labels-idx1-ubyte", np.zeros(7, np.uint8)))], 1,
     "train images of shape (28, 28) and 7 labels; MNIST has"),
]


@pytest.mark.parametrize(("args", "code", "text"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line(args, code, text, reference, mnist_root, tmp_path):
    at = Where(tmp_path, reference, mnist_root)
    argv = [arg(at) if callable(arg) else arg for arg in args]
    defaults = ["--data_dir", str(mnist_root), *roots(tmp_path)]
    for flag, value in zip(defaults[::2], defaults[1::2], strict=True):
        if flag not in argv and not (flag == "--weights_dir" and "--resume" in argv):
            argv += [flag, value]  # a resumed run's weights stay where its checkpoint is
    result = run_train(*argv, cwd=tmp_path, code=code)
    (line,) = result.stderr.strip().splitlines()  # no traceback
    assert line.startswith("train.py: error: ") and text in line
    left = [p for root in ("weights", "results", "logs") for p in (tmp_path / root).rglob("*")]
    assert left == []  # a run that failed before its first checkpoint leaves nothing
    assert not (tmp_path / "ran.txt").exists() and "\x1b" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pth: no such file"):
        run_train("--resume", str(tmp_path / "missing.pth"), "--debug", *output_flags(tmp_path))


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: the write past them fails part-way."""

    room = 100_000

    def write(self, data: bytes) -> int:
        left = self.room - self.tell()
        if len(data) > left:
            super().write(memoryview(data)[: max(left, 0)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_is_one_line_and_keeps_complete_files(
        reference, long_run, tmp_path, monkeypatch):
    # The disk fills up while the checkpoint of step 8 is written.
    def open_full(path: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "checkpoint_step_00000008.pth" in Path(path).name:
            return FullDisk(path, mode)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr("utils.checkpoint.open", open_full, raising=False)
    result = run_train(*long_run(tmp_path), code=1)
    assert "Traceback" not in result.stderr
    (message,) = [line for line in result.stderr.splitlines() if "error" in line]
    last = checkpoint_file(tmp_path, 4)
    hint = resume_hint(last, long_run(tmp_path))
    assert message == (f"train.py: error: [Errno 28] cannot write {checkpoint_file(tmp_path, 8)}: "
                       f"No space left on device; stopped at step 8; {hint}")
    assert checkpoint_steps(tmp_path) == [0, 4]  # no partial checkpoint
    assert not list((tmp_path / "weights" / RUN).glob(".*.tmp"))  # nor its temporary file
    assert_every_file_complete(tmp_path)
    assert_same_checkpoint(last, checkpoint_file(reference, 4))


def test_load_generator_takes_any_generator_file_and_names_the_wrong_network(reference, tmp_path):
    torch.save(Generator(nz=16, ngf=8).state_dict(), tmp_path / "small.pth")
    netG = load_generator(tmp_path / "small.pth")  # built with the stored sizes
    assert netG.nz == 16 and netG(torch.randn(2, 16, 1, 1)).shape == (2, 1, 28, 28)
    assert netG.main[0].out_channels == 64  # ngf 8: 8 * 8 channels in the first layer
    weights = reference / "weights" / RUN
    state = torch.load(weights / "generator_final.pth", weights_only=True)
    torch.save({f"_orig_mod.{k}": v for k, v in state.items()}, tmp_path / "compiled.pth")
    noise = torch.randn(4, 100, 1, 1)
    expected = load_generator(weights / "generator_final.pth")(noise)
    # the checkpoint's generator, not its average
    assert not torch.equal(load_generator(weights / "generator_ema.pth")(noise), expected)
    for path in (checkpoint_file(reference, N_STEPS), tmp_path / "compiled.pth"):
        netG = load_generator(path)
        assert not netG.training
        torch.testing.assert_close(netG(noise), expected, rtol=0, atol=0)
    discriminator = weights / "discriminator_final.pth"  # the wrong network is named
    with pytest.raises(CheckpointError, match="holds weights of the discriminator, not of a "
                                              "DCGAN generator"):
        load_generator(discriminator)
    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(CheckpointError, match="holds weights of another model"):
        load_state_dict_from(tmp_path / "linear.pth", "discriminator")
    state = load_state_dict_from(discriminator, "discriminator")
    assert set(state) == set(Discriminator().state_dict())
