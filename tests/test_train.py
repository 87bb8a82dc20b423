"""train.py end to end: every promised file, the logs' contents, resume, the CLI."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from tests.conftest import (
    REPO,
    RUN,
    assert_same_weights,
    logged_steps,
    run_python,
    run_train,
    short_run_flags,
)
from utils.averaging import BN_BATCH_SIZE, BN_SAMPLES
from utils.config import make_config
from utils.errors import ArgumentError
from utils.recorder import COLUMNS, EVALUATION_COLUMNS, TENSORBOARD_TAGS

N_STEPS = 6  # SHORT_RUN: 2 epochs x 3 batches


def test_every_promised_file_is_written_and_named(short_run):
    results, weights = short_run / "results" / RUN, short_run / "weights" / RUN
    assert {p.name for p in results.iterdir()} == {
        ".train.lock", ".run_id",  # in each of the run's folders: its lock, and its id
        "config.json", "training_data.csv", "training_data.json", "training_curves.png",
        "epoch_1_final.png", "epoch_2_final.png", "epoch_1_ema.png", "epoch_2_ema.png",
        "interpolation_epoch_1.png", "interpolation_epoch_2.png", "sample_step_2.png",
        "sample_step_4.png", "sample_step_6.png", "evaluation_history.csv",
        "training_progress.gif"}
    assert (weights / ".run_id").read_text() == (results / ".run_id").read_text() == json.loads(
        (results / "config.json").read_text())["run_id"]
    assert {p.name for p in weights.iterdir()} == {
        "checkpoint_step_00000000.pth",  # the start: a run is resumable from its first moment
        "checkpoint_step_00000003.pth", "checkpoint_step_00000006.pth",  # the epoch ends
        "generator_final.pth", "discriminator_final.pth", "generator_ema.pth",
        "generator_epoch_1.pth", "generator_epoch_2.pth",
        "discriminator_epoch_1.pth", "discriminator_epoch_2.pth", "generator_best.pth",
        ".train.lock", ".run_id"}
    with Image.open(results / "epoch_2_final.png") as grid:
        assert grid.size == (242, 242)  # 8 x 8 tiles of 28 pixels, 2-pixel borders
    with Image.open(results / "interpolation_epoch_2.png") as grid:
        assert grid.size == (10 * 30 + 2, 8 * 30 + 2)  # 8 rows of 10 steps
    with Image.open(results / "training_curves.png") as curves:
        assert curves.size == (1000, 700)
    with Image.open(results / "training_progress.gif") as gif:
        assert gif.n_frames == 2 and gif.size == (242, 242)  # epoch 1, then epoch 2
    printed = (short_run / "stdout.txt").read_text().splitlines()  # where they are
    assert printed[0] == "device: cpu"
    assert printed[1] == (f"run {RUN}: 200 images, 3 batches an epoch; TensorBoard: "
                          f"tensorboard --logdir={short_run / 'logs'}")
    assert printed[-1].endswith(
        f": weights in {weights}/, images in {results}/, TensorBoard logs in "
        f"{short_run / 'logs' / RUN}/; draw digits with: python generate.py "
        f"--weights={weights / 'generator_final.pth'}")


def test_the_logs_hold_each_batch_and_evaluation_alike(short_run):
    csv = pd.read_csv(short_run / "results" / RUN / "training_data.csv")
    assert tuple(csv.columns) == COLUMNS and csv["step"].tolist() == list(range(1, N_STEPS + 1))
    assert csv["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert csv["batch"].tolist() == [1, 2, 3, 1, 2, 3]
    records = json.loads((short_run / "results" / RUN / "training_data.json").read_text())
    assert len(records) == N_STEPS and set(records[0]) == set(COLUMNS)
    assert records[4]["D(G(z))"] == pytest.approx(csv["D(G(z))"][4], abs=1e-7)
    history = pd.read_csv(short_run / "results" / RUN / "evaluation_history.csv")
    assert tuple(history.columns) == EVALUATION_COLUMNS
    assert history["epoch"].tolist() == [1, 1, 2, 2] and history["step"].tolist() == [3, 3, 6, 6]
    assert history["generator"].tolist() == ["raw", "ema", "raw", "ema"]
    assert np.isfinite(history.drop(columns=["epoch", "step", "generator"]).to_numpy()).all()
    assert (history["fid"] > 0).all() and history["coverage"].between(0, 1).all()
    assert (history["fid"][::2].to_numpy() != history["fid"][1::2].to_numpy()).all()
    (run_dir,) = (short_run / "logs").iterdir()
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for column, tag in TENSORBOARD_TAGS.items():
        series = events.Scalars(tag)
        assert [e.step for e in series] == csv["step"].tolist()
        assert [e.value for e in series] == pytest.approx(csv[column].tolist(), rel=1e-6)
    for tag, generator in (("eval/fid", "raw"), ("eval_ema/fid", "ema")):
        fid = events.Scalars(tag)
        assert [e.step for e in fid] == [3, 6]
        expected = history.loc[history["generator"] == generator, "fid"].tolist()
        assert [e.value for e in fid] == pytest.approx(expected, rel=1e-6)
    for tag in ("samples/fixed_noise", "samples/fixed_noise_ema"):
        images = events.Images(tag)
        assert [e.step for e in images] == [3, 6]
        assert (images[0].width, images[0].height) == (242, 242)


def test_the_weights_checkpoint_and_config_describe_the_run(short_run):
    weights = short_run / "weights" / RUN
    config = json.loads((short_run / "results" / RUN / "config.json").read_text())
    assert config["batch_size"] == 16 and config["lr"] == 0.0002 and config["beta1"] == 0.5
    assert config["device"] == "cpu" and config["seed"] == 0
    checkpoint = torch.load(weights / "checkpoint_step_00000006.pth", weights_only=True)
    assert checkpoint["epochs_done"] == 2 and checkpoint["batch"] == 0
    assert checkpoint["step"] == N_STEPS and checkpoint["config"]["n_epochs"] == 2
    assert checkpoint["fixed_noise"].shape == (64, 100, 1, 1)
    assert set(checkpoint) >= {"generator", "discriminator", "optimizer_G", "optimizer_D", "rng"}
    final = torch.load(weights / "generator_final.pth", weights_only=True)
    history = pd.read_csv(short_run / "results" / RUN / "evaluation_history.csv")
    raw = history[history["generator"] == "raw"]
    best = int(raw.loc[raw["fid"].idxmin(), "epoch"])  # the epoch of the best FID
    assert_same_weights(weights / "generator_best.pth", weights / f"generator_epoch_{best}.pth")
    averaged = torch.load(weights / "generator_ema.pth", weights_only=True)
    assert {k: v.shape for k, v in averaged.items()} == {k: v.shape for k, v in final.items()}
    assert checkpoint["average"]["updates"] == N_STEPS
    for key, value in averaged.items():
        if key.endswith(".weight"):  # the averaged weights, which differ from the generator's
            assert torch.equal(value, checkpoint["average"]["generator"][key])
            assert not torch.equal(value, final[key])
        elif key.endswith("num_batches_tracked"):  # estimated on BN_SAMPLES noise vectors
            assert value.item() == BN_SAMPLES // BN_BATCH_SIZE


def readme_snippets() -> list[str]:
    """The README's Python blocks that load weights/generator_final.pth."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    return [b for b in blocks if "weights/generator_final.pth" in b]


def test_readme_snippets_run_on_the_shipped_weights(tmp_path):
    original, helper = readme_snippets()
    assert "generate_fixed_noise_grid(netG, noise, 'my_generated_images.png')" in original
    (tmp_path / "weights").mkdir()  # a clone's folder, the README's snippet builds Generator()
    shutil.copy(REPO / "weights" / "generator_final.pth", tmp_path / "weights")
    run_python("-c", original, cwd=tmp_path)  # as a user runs it, in a clone's folder
    run_python("-c", helper + "\nassert not netG.training and netG.nz == 100\n", cwd=tmp_path)
    with Image.open(tmp_path / "my_generated_images.png") as grid:
        assert grid.size == (242, 242)
        assert len(np.unique(np.asarray(grid.convert("L")))) > 10  # an image, not a blank


def test_a_resumed_run_is_the_unbroken_run(short_run, mnist_root, tiny_judge, tmp_path):
    flags, weights = short_run_flags(mnist_root, tiny_judge, tmp_path), tmp_path / "weights" / RUN
    run_train(*flags, "--n_epochs", "1")  # a finished run, then trained further
    for step in (3, 0):  # the end of epoch 1; then the start, as if killed before step 3
        resumed = run_train(*flags, "--resume", "auto")
        checkpoint = weights / f"checkpoint_step_{step:08d}.pth"
        assert f"resuming run {RUN} from {checkpoint}: " in resumed.stdout
        for name in ("training_data.csv", "evaluation_history.csv"):
            assert (tmp_path / "results" / RUN / name).read_bytes() == (
                short_run / "results" / RUN / name).read_bytes()
        for name in ("generator_final.pth", "discriminator_final.pth", "generator_ema.pth",
                     "generator_best.pth"):
            assert_same_weights(weights / name, short_run / "weights" / RUN / name)
        assert logged_steps(tmp_path / "logs" / RUN) == list(range(1, N_STEPS + 1))  # each once
        for path in weights.iterdir():
            if path.name not in ("checkpoint_step_00000000.pth", ".train.lock", ".run_id"):
                path.unlink()


def test_help_and_the_docs_table_list_every_flag_with_one_default():
    options = run_train("--help").stdout.split("options:")[1]
    flags = set(re.findall(r"^\s+(--\w+)", options, re.MULTILINE)) - {"--help"}
    parser = {f"--{action.dest}" for action in train.build_parser()._actions} - {"--help"}
    section = (REPO / "docs" / "training.md").read_text().split("## Training parameters")[1]
    rows = re.findall(r"^\| `(--\w+)` \| ([^|]+) \|", section.split("\n## ")[0], re.MULTILINE)
    table = {flag: default.strip().strip("`") for flag, default in rows}  # flag: its default
    assert flags == parser == set(table)
    text = " ".join(options.split())  # undo argparse's line wrapping
    for flag, default in table.items():
        assert re.findall(rf"{flag}\b.*?\(default: ([^,)]+)", text)[:1] == [default], flag


def test_the_configuration_is_frozen_and_checked_at_a_resume(monkeypatch):
    config = make_config(vars(train.build_parser().parse_args(["--device", "cpu"])), {"device"})
    assert {field.name for field in dataclasses.fields(config)} == set(
        vars(train.build_parser().parse_args([])))  # one field per flag
    assert (config.lr, config.batch_size, config.run_name) == (0.0002, 128, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.1
    flags = vars(train.build_parser().parse_args(["--device", "cpu", "--resume", "auto",
                                                  "--run_name", "r"]))
    monkeypatch.setattr("utils.config.amp_supported", lambda device: False)
    with pytest.raises(ArgumentError, match="--amp: this cpu has no native bfloat16"):
        make_config(flags, given={"resume"}, resumed={**flags, "amp": True})
    with pytest.raises(ArgumentError, match="--ema_decay 0.99 differs from the resumed run's "
                                            "0.999; leave --ema_decay out to resume"):
        make_config({**flags, "ema_decay": 0.99}, given={"resume", "ema_decay"}, resumed=flags)
    paths = ("results_dir", "log_dir", "weights_dir", "data_dir", "judge", "device")
    config = make_config(flags, given={"resume"},
                         resumed={**flags, **dict.fromkeys(paths, "/elsewhere"), "n_epochs": 7})
    assert config.n_epochs == 7  # inherited; never the paths and device: the command line's
    assert {name: getattr(config, name) for name in paths} == {name: flags[name] for name in paths}
    assert flags["results_dir"] == "results" and flags["device"] == "cpu"
