"""Shared fixtures: tiny MNIST-format files, a tiny judge, one short run; running the scripts."""

import importlib
import io
import os
import shlex
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

# One thread per test process, set before torch is imported so that the train.py processes
# of the tests inherit it: tests run two at a time (pytest-xdist) on this 2-core machine, and
# runs that are compared byte for byte must use the same thread count.
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST = 200, 50


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files (big-endian header)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_digits(n: int, rng: np.random.Generator,
                     label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 images (a bright bar placed by the label) and labels (random, or ``label``)."""
    labels = rng.integers(0, 10, n) if label is None else np.full(n, label)
    images = rng.integers(0, 40, (n, 28, 28))
    for image, label in zip(images, labels, strict=True):
        image[4:24, 2 + 2 * label : 6 + 2 * label] = 255
    return images, labels


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding MNIST/raw with the four IDX files, as a download leaves them."""
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images, labels = synthetic_digits(n, rng)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


def run_script(script: str, *args: str, cwd: Path | None = None,
               code: int = 0) -> subprocess.CompletedProcess:
    """Run a script's ``main(args)`` in this process (in ``cwd``), capturing what it prints;
    it must exit with ``code``."""
    main = importlib.import_module(script.removesuffix(".py")).main
    out, err, here = io.StringIO(), io.StringIO(), Path.cwd()
    os.chdir(cwd or here)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                returned = main(list(args))
            except SystemExit as exit:  # argparse: --help, or a bad flag
                returned = exit.code
    finally:
        os.chdir(here)
    assert returned == code, err.getvalue()
    return subprocess.CompletedProcess(args, returned, out.getvalue(), err.getvalue())


def run_train(*args: str, cwd: Path | None = None, code: int = 0) -> subprocess.CompletedProcess:
    """``train.py``'s ``main(args)``, in this process; it must exit with ``code``."""
    return run_script("train.py", *args, cwd=cwd, code=code)


def run_python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python *args`` in a new process (in ``cwd``, default REPO), the repository importable."""
    result = subprocess.run([sys.executable, *args], cwd=cwd or REPO, capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def start_train(*args: str) -> subprocess.Popen:
    """Start ``train.py`` in the background, output piped."""
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_rows(csv: Path, rows: int, process: subprocess.Popen) -> None:
    """Wait until the training CSV has at least ``rows`` data rows."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if csv.exists() and len(csv.read_text().splitlines()) - 1 >= rows:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError(f"{csv} never reached {rows} rows")


RUN = "run"  # the --run_name of the tests' runs: their files are in <root>/run/


def roots(out: Path) -> list[str]:
    """The three output roots under ``out``."""
    return ["--results_dir", str(out / "results"), "--weights_dir", str(out / "weights"),
            "--log_dir", str(out / "logs")]


def output_flags(out: Path) -> list[str]:
    """The flags that send every output of the run named RUN under ``out``."""
    return [*roots(out), "--run_name", RUN]


def assert_same_weights(ours: Path, theirs: Path, ignore: tuple[str, ...] = ()) -> None:
    """Two weights files or checkpoints hold the same keys, numbers and tensors, bit for bit."""
    a, b = (torch.load(path, weights_only=True) for path in (ours, theirs))
    assert a.keys() == b.keys()
    torch.testing.assert_close({k: a[k] for k in a.keys() - set(ignore)},
                               {k: b[k] for k in b.keys() - set(ignore)}, rtol=0, atol=0)


def logged_steps(folder: Path, tag: str = "loss/D") -> list[int]:
    """The steps of a scalar in the TensorBoard events in ``folder``, as TensorBoard reads them."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def last_line(result: subprocess.CompletedProcess | str) -> str:
    """The last line a script printed to stderr (or of a text)."""
    return (result if isinstance(result, str) else result.stderr).strip().splitlines()[-1]


def resume_hint(checkpoint: Path, flags: list[str], cwd: Path | None = None) -> str:
    """What a run started with ``flags`` in ``cwd`` says when it stops: the command that
    continues it, repeating every flag given but --run_name and --resume, in --help's order."""
    import train

    parser = train.build_parser()
    values = vars(parser.parse_args(flags))
    given = {flag for flag in flags if flag.startswith("--")}
    repeated = [f"--{action.dest}" if values[action.dest] is True
                else f"--{action.dest}={values[action.dest]}" for action in parser._actions
                if action.option_strings[0] in given - {"--run_name", "--resume"}]
    script = os.path.relpath(REPO / "train.py", cwd or Path.cwd())
    return (f"the last checkpoint, {checkpoint}, is intact; to continue: "
            + shlex.join(["python", script, f"--resume={checkpoint}", *repeated]))


@pytest.fixture(scope="session")
def tiny_judge(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A judge trained by train_judge.py on the synthetic MNIST (its weights file)."""
    out = tmp_path_factory.mktemp("judge") / "judge.pth"
    run_script("train_judge.py", "--data_dir", str(mnist_root), "--epochs", "3",
               "--batch_size", "32", "--out", str(out), "--device", "cpu")
    return out


# Networks a quarter as wide as the paper's (--ngf/--ndf 64), a sixteenth of the arithmetic:
# the tests' runs check files, resume and signals, which do not depend on the widths.
NARROW = ["--ngf", "16", "--ndf", "16"]

# A short run: 2 epochs of 3 batches of 16, every output switched on, evaluated every epoch.
SHORT_RUN = [*NARROW, "--n_epochs", "2", "--limit_batches", "3", "--batch_size", "16",
             "--save_interval", "1", "--sample_interval", "2", "--eval_interval", "1",
             "--eval_samples", "64", "--device", "cpu"]


def short_run_flags(mnist_root: Path, judge: Path, out: Path) -> list[str]:
    """SHORT_RUN on the synthetic MNIST with the tiny judge, writing under ``out``."""
    return [*SHORT_RUN, "--data_dir", str(mnist_root), "--judge", str(judge),
            *output_flags(out)]


@pytest.fixture(scope="session")
def short_run(mnist_root: Path, tiny_judge: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short run, as ``python train.py`` in a process of its own; its output in stdout.txt."""
    out = tmp_path_factory.mktemp("run")
    result = run_python(str(REPO / "train.py"), *short_run_flags(mnist_root, tiny_judge, out))
    (out / "stdout.txt").write_text(result.stdout)
    return out
