"""Nothing lost, nothing cryptic: exact resume, kills at random moments, signals, bad input."""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from models import Discriminator, Generator
from tests.conftest import (
    NARROW,
    REPO,
    RUN,
    output_flags,
    run_train,
    start_train,
    wait_for_rows,
    write_idx,
)
from utils.checkpoint import CheckpointError, load_generator, load_state_dict_from

# 3 epochs of 13 batches (200 synthetic images, batch 16), a checkpoint every 4 batches,
# an evaluation every 2 epochs and after the last.
LONG_RUN = [*NARROW, "--n_epochs", "3", "--batch_size", "16", "--checkpoint_interval", "4",
            "--keep_checkpoints", "100", "--save_interval", "1", "--sample_interval", "5",
            "--eval_interval", "2", "--eval_samples", "64", "--device", "cpu"]
N_STEPS = 39


@pytest.fixture(scope="module")
def long_run(mnist_root: Path, tiny_judge: Path) -> Callable[[Path], list[str]]:
    """The flags of LONG_RUN on the synthetic MNIST with the tiny judge, writing under a folder."""

    def flags(out: Path) -> list[str]:
        return [*LONG_RUN, "--data_dir", str(mnist_root), "--judge", str(tiny_judge),
                *output_flags(out)]

    return flags


def assert_every_file_complete(out: Path) -> None:
    """Every file a run left (its temporary files aside) opens and reads in full."""
    for path in (out / "results" / RUN).iterdir():
        if path.name.endswith(".tmp"):
            continue
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".csv":
            assert not pd.read_csv(path).isna().any().any(), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
    for path in (out / "weights" / RUN).glob("*.pth"):
        torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def reference(long_run: Callable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted LONG_RUN."""
    out = tmp_path_factory.mktemp("reference")
    result = run_train(*long_run(out))
    assert result.returncode == 0, result.stderr
    return out


def assert_same_run(out: Path, reference: Path) -> None:
    """Same per-batch numbers and evaluations (exactly) and final weights as the reference."""
    for name in ("training_data.csv", "evaluation_history.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / "results" / RUN / name),
                                      pd.read_csv(reference / "results" / RUN / name),
                                      check_exact=True)
    for name in ("generator_final.pth", "discriminator_final.pth", "generator_best.pth",
                 "generator_ema.pth"):
        ours = torch.load(out / "weights" / RUN / name, weights_only=True)
        theirs = torch.load(reference / "weights" / RUN / name, weights_only=True)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name


def test_resume_from_a_mid_epoch_checkpoint_is_exact(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    checkpoint = out / "weights" / RUN / "checkpoint_step_00000008.pth"  # epoch 1, batch 8 of 13
    resumed = run_train("--resume", str(checkpoint), *output_flags(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "0 epochs and 8 batches done" in resumed.stdout
    assert_same_run(out, reference)
    (run_dir,) = (out / "logs").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()  # events after step 8 were purged, then written again: no duplicates
    assert [e.step for e in events.Scalars("loss/G")] == list(range(1, N_STEPS + 1))


def test_sigkill_at_random_moments_loses_nothing(
    reference: Path, long_run: Callable, tmp_path: Path
) -> None:
    flags = [*long_run(tmp_path), "--resume", "auto"]
    chance = random.Random(0)
    for rows in sorted(chance.sample(range(2, N_STEPS - 1), 3)):
        process = start_train(*flags)
        wait_for_rows(tmp_path / "results" / RUN / "training_data.csv", rows, process)
        time.sleep(chance.uniform(0, 0.3))  # sometimes inside a checkpoint or image write
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert_every_file_complete(tmp_path)
    finished = run_train(*flags)
    assert finished.returncode == 0, finished.stderr
    assert not list((tmp_path / "weights" / RUN).glob(".*.tmp"))  # leftovers cleaned at start
    assert_same_run(tmp_path, reference)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finishes_the_batch_checkpoints_and_tells_how_to_resume(
    signum: int, code: int, reference: Path, long_run: Callable, tmp_path: Path
) -> None:
    process = start_train(*long_run(tmp_path))
    wait_for_rows(tmp_path / "results" / RUN / "training_data.csv", 7, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    command = stderr.strip().splitlines()[-1].split("to continue: ")[1].split()
    assert command[:3] == ["python", "train.py", "--resume"]
    checkpoint = torch.load(command[3], weights_only=True)
    rows = pd.read_csv(tmp_path / "results" / RUN / "training_data.csv")
    assert checkpoint["step"] == rows["step"].iloc[-1]  # the batch in flight was finished
    assert_every_file_complete(tmp_path)
    resumed = subprocess.run([sys.executable, str(REPO / "train.py"), *command[2:]], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path, reference)


def test_second_interrupt_exits_at_once(long_run: Callable, tmp_path: Path) -> None:
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
    assert "SIGINT again: exiting now" in stderr
    assert_every_file_complete(tmp_path)


def test_divergence_stops_with_the_step_and_saves_nothing(
    long_run: Callable, tmp_path: Path
) -> None:
    result = run_train(*long_run(tmp_path), "--lr", "1e30")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("train.py: error: training diverged at step 1 (epoch 1, batch 1)")
    assert "the last good checkpoint is none" in message
    assert not list((tmp_path / "weights" / RUN).glob("*.pth"))


# --- bad input: one line naming the flag or file, exit 2 for arguments, 1 for the rest ---
# An argument may be a function of the test's folders (Where) that makes the bad file.

class Where:
    """The folders a bad-input case may use: its own, a finished run's, the synthetic MNIST."""

    def __init__(self, tmp: Path, run: Path, mnist: Path) -> None:
        self.tmp, self.run, self.mnist = tmp, run, mnist


def not_a_folder(at: Where) -> str:
    (at.tmp / "file").write_text("x")
    return str(at.tmp / "file" / "sub")


def run_checkpoint(at: Where) -> str:
    return str(at.run / "weights" / RUN / "checkpoint_step_00000006.pth")


def run_weights(at: Where) -> str:
    return str(at.run / "weights" / RUN / "generator_final.pth")


def truncated_checkpoint(at: Where) -> str:
    data = Path(run_checkpoint(at)).read_bytes()
    (at.tmp / "cut.pth").write_bytes(data[: len(data) // 2])
    return str(at.tmp / "cut.pth")


def random_bytes(at: Where) -> str:
    (at.tmp / "noise.pth").write_bytes(np.random.default_rng(0).bytes(5000))
    return str(at.tmp / "noise.pth")


def text_file(at: Where) -> str:
    (at.tmp / "notes.pth").write_text("these are not weights\n")
    return str(at.tmp / "notes.pth")


def foreign_checkpoint(at: Where) -> str:
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3}, at.tmp / "other.pth")
    return str(at.tmp / "other.pth")


def no_mnist(at: Where) -> str:
    return str(at.tmp / "none")


def damaged_mnist(damage: Callable[[Path], None]) -> Callable[[Where], str]:
    """A copy of the synthetic MNIST with ``damage`` done to its raw folder."""

    def make(at: Where) -> str:
        shutil.copytree(at.mnist, at.tmp / "data")
        damage(at.tmp / "data" / "MNIST" / "raw")
        return str(at.tmp / "data")

    return make


def truncate_images(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])


def overwrite_header(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(b"GIF89a" + path.read_bytes()[6:])


def too_few_labels(raw: Path) -> None:
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(7, np.uint8))


BAD_INPUTS = [  # (id, arguments, exit status, text the one-line message must hold)
    ("batch_size 0", ["--batch_size", "0"], 2, "argument --batch_size: expected a positive"),
    ("batch_size 1.5", ["--batch_size", "1.5"], 2, "argument --batch_size: expected a posit"),
    ("n_epochs abc", ["--n_epochs", "abc"], 2, "argument --n_epochs: expected a positive"),
    ("n_epochs -3", ["--n_epochs", "-3"], 2, "argument --n_epochs"),
    ("lr -1", ["--lr", "-1"], 2, "argument --lr: expected a positive number, got '-1'"),
    ("lr 0", ["--lr", "0"], 2, "argument --lr"),
    ("lr nan", ["--lr", "nan"], 2, "argument --lr"),
    ("lr inf", ["--lr", "inf"], 2, "argument --lr"),
    ("beta1 1", ["--beta1", "1"], 2, "argument --beta1: expected a number in [0, 1)"),
    ("beta1 -0.1", ["--beta1", "-0.1"], 2, "argument --beta1"),
    ("nz 0", ["--nz", "0"], 2, "argument --nz"),
    ("save_interval 0", ["--save_interval", "0"], 2, "argument --save_interval"),
    ("sample_interval -5", ["--sample_interval", "-5"], 2, "argument --sample_interval"),
    ("checkpoint_interval x", ["--checkpoint_interval", "x"], 2,
     "argument --checkpoint_interval"),
    ("keep_checkpoints 0", ["--keep_checkpoints", "0"], 2, "argument --keep_checkpoints"),
    ("num_workers -1", ["--num_workers", "-1"], 2, "argument --num_workers"),
    ("device tpu", ["--device", "tpu"], 2, "argument --device: invalid choice: 'tpu'"),
    ("run_name ../x", ["--run_name", "../x"], 2, "argument --run_name: expected a folder name"),
    ("run_name empty", ["--run_name", ""], 2, "argument --run_name: expected a folder name"),
    ("seed -1", ["--seed", "-1"], 2, "argument --seed: expected an integer in [0, 2**32)"),
    ("seed 2**32", ["--seed", "4294967296"], 2, "argument --seed: expected an integer in [0,"),
    ("eval_samples 1", ["--eval_samples", "1"], 2,
     "argument --eval_samples: expected an integer of at least 6"),
    ("nz too large", ["--nz", "100000000000"], 1, "smaller --nz, --ngf, --ndf or --batch_size"),
    ("unknown flag", ["--epochs", "5"], 2, "unrecognized arguments: --epochs 5"),
    ("results_dir under a file", ["--results_dir", not_a_folder], 2,
     "/file/sub: cannot create or write there"),
    ("weights_dir under a file", ["--weights_dir", not_a_folder], 2, "--weights_dir"),
    ("resume missing file", ["--resume", "missing.pth"], 1, "missing.pth: no such file"),
    ("resume truncated", ["--resume", truncated_checkpoint], 1, "is not a readable PyTorch"),
    ("resume random bytes", ["--resume", random_bytes], 1, "is not a readable PyTorch file"),
    ("resume text file", ["--resume", text_file], 1, "is not a readable PyTorch file"),
    ("resume a folder without checkpoints", ["--resume", lambda at: str(at.tmp)], 1,
     "holds no checkpoint_step_*.pth; pass another run's folder or checkpoint"),
    ("resume weights file", ["--resume", run_weights], 1,
     "holds weights (a state dict), not a training checkpoint"),
    ("resume foreign", ["--resume", foreign_checkpoint], 1,
     "holds something else, not a training checkpoint"),
    ("resume other nz", ["--resume", run_checkpoint, "--nz", "50"], 2,
     "--nz 50 differs from the resumed run's 100; leave --nz out"),
    ("resume other batch", ["--resume", run_checkpoint, "--batch_size", "8"], 2,
     "--batch_size 8 differs from the resumed run's 16"),
    ("MNIST missing", ["--data_dir", no_mnist], 1, "MNIST is not in "),
    ("IDX truncated", ["--data_dir", damaged_mnist(truncate_images)], 1,
     "train-images-idx3-ubyte is truncated (5000 bytes, "),
    ("IDX wrong header", ["--data_dir", damaged_mnist(overwrite_header)], 1,
     "train-images-idx3-ubyte is not an MNIST IDX file"),
    ("IDX counts differ", ["--data_dir", damaged_mnist(too_few_labels)], 1,
     "images but 7 labels"),
]
if not torch.cuda.is_available():
    BAD_INPUTS.append(("device cuda", ["--device", "cuda"], 2,
                       "--device cuda: PyTorch sees no cuda device here"))


@pytest.mark.parametrize(("args", "code", "text"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line(args: list, code: int, text: str, short_run: Path,
                               mnist_root: Path, tmp_path: Path) -> None:
    at = Where(tmp_path, short_run, mnist_root)
    argv = [arg(at) if callable(arg) else arg for arg in args]
    defaults = {"--data_dir": str(mnist_root), "--results_dir": str(tmp_path / "results"),
                "--weights_dir": str(tmp_path / "weights"), "--log_dir": str(tmp_path / "logs")}
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    # A closed local port as proxy: a missing MNIST fails to download fast, network or not.
    proxy = "http://127.0.0.1:9"
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy,
           "HTTPS_PROXY": proxy}
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *argv], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: error: ")
    assert text in lines[0]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_train("--resume", str(tmp_path / "missing.pth"), "--debug",
                       *output_flags(tmp_path))
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "CheckpointError" in result.stderr


# --- loading weights the way users do ---

def test_load_generator_accepts_every_kind_of_file(short_run: Path, tmp_path: Path) -> None:
    final = short_run / "weights" / RUN / "generator_final.pth"
    state = torch.load(final, weights_only=True)
    torch.save({f"_orig_mod.{k}": v for k, v in state.items()}, tmp_path / "compiled.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pth")
    noise = torch.randn(4, 100, 1, 1)
    expected = load_generator(final)(noise)
    for path in (short_run / "weights" / RUN / "checkpoint_step_00000006.pth",
                 tmp_path / "compiled.pth", tmp_path / "parallel.pth"):
        netG = load_generator(path)
        assert not netG.training
        torch.testing.assert_close(netG(noise), expected, rtol=0, atol=0)


def test_load_generator_builds_the_stored_sizes(tmp_path: Path) -> None:
    torch.save(Generator(nz=16, ngf=8).state_dict(), tmp_path / "small.pth")
    netG = load_generator(tmp_path / "small.pth")
    assert netG.nz == 16 and netG(torch.randn(2, 16, 1, 1)).shape == (2, 1, 28, 28)
    assert netG.main[0].out_channels == 64  # ngf 8: 8 * 8 channels in the first layer


def test_the_wrong_network_is_named(short_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="holds weights of the discriminator, not of a "
                                              "DCGAN generator"):
        load_generator(short_run / "weights" / RUN / "discriminator_final.pth")
    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(CheckpointError, match="holds weights of another model"):
        load_state_dict_from(tmp_path / "linear.pth", "discriminator")
    state = load_state_dict_from(short_run / "weights" / RUN / "discriminator_final.pth",
                                 "discriminator")
    assert set(state) == set(Discriminator().state_dict())


def test_a_full_disk_is_one_line_and_keeps_complete_files(
    long_run: Callable, tmp_path: Path
) -> None:
    # Files over 3 MB cannot be written: the first checkpoint (step 4, about 6.3 MB) fails as
    # it would on a full disk (Python ignores SIGXFSZ, so the write raises "File too large").
    limit = 3_000_000
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *long_run(tmp_path)], cwd=REPO,
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("train.py: error: [Errno 27] cannot write ")
    assert "checkpoint_step_00000004.pth: File too large;" in message
    assert "no checkpoint was written yet" in message  # the first one is what failed
    assert not list((tmp_path / "weights" / RUN).glob("*.pth"))  # no truncated checkpoint
    assert not list((tmp_path / "weights" / RUN).glob(".*.tmp"))  # nor its temporary file
    assert_every_file_complete(tmp_path)
