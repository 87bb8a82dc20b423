"""The shipped model and gallery: one finished run, whose files agree with each other and README."""

import json

import pandas as pd
import pytest
import torch

from tests.conftest import REPO
from utils.checkpoint import load_generator, load_judge
from utils.metrics import digit_shares, generate_images, judge_images

RESULTS, WEIGHTS = REPO / "results", REPO / "weights"


def scores(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def test_the_shipped_run_finished_the_readme_configuration_with_a_whole_log():
    config = scores("config.json")
    assert config["command"] == "python train.py --data_dir ../shared/data"
    assert (config["n_epochs"], config["batch_size"], config["seed"]) == (50, 128, 0)
    assert (config["ema_decay"], config["amp"]) == (0.999, False)
    assert "finished" in config
    assert f"as run `{config['run_name']}`" in (REPO / "docs" / "quality.md").read_text()
    rows = pd.read_csv(RESULTS / "training_data.csv")
    assert len(rows) == 50 * 469  # 60,000 images in batches of 128, the last one partial
    assert rows.step.tolist() == list(range(1, len(rows) + 1))  # resumed twice, no gap or repeat
    assert rows.D_loss.max() < 30  # issue #13's bound (the --amp run before it reached 74)
    assert len(json.loads((RESULTS / "training_data.json").read_text())) == len(rows)


@pytest.mark.parametrize("generator, weights, evaluation", [
    ("raw", "generator_final.pth", "evaluation.json"),
    ("ema", "generator_ema.pth", "evaluation_ema.json"),
])
def test_shipped_scores_are_the_history_s_last_row_and_the_readme_s(generator, weights, evaluation):
    result = scores(evaluation)
    assert result["weights"] == f"weights/{weights}" and result["n"] == 10_000
    history = pd.read_csv(RESULTS / "evaluation_history.csv")
    last = history[(history.epoch == 50) & (history.generator == generator)].iloc[0]
    for column in ("fid", "kid", "inception_score", "precision", "recall", "coverage"):
        # evaluate.py in its own process: the same scores up to float rounding (1e-8 here)
        assert result["model"][column] == pytest.approx(last[column], rel=1e-6), column
    model, fid = result["model"], f"{result['model']['fid']:.1f}"
    row = "| **50** | **ema** | **{}** |" if generator == "ema" else "| **50** | raw | {} |"
    assert row.format(fid) in (REPO / "docs" / "quality.md").read_text()  # the full table's
    short = "| **average** | **{}** |" if generator == "ema" else "| generator | {} |"
    assert (short.format(fid) + f" {model['kid']:.2f} | {model['inception_score']:.2f} | "
            f"{model['precision']:.3f} | {model['recall']:.3f} | {model['coverage']:.3f} |"
            ) in (REPO / "README.md").read_text()  # the README's epoch-50 rows
    # The file is the one scored: the first 2,000 of evaluate.py's samples (its seed, 0) get
    # about the same judge confidence and digit mix as all 10,000 did.
    images = generate_images(load_generator(WEIGHTS / weights), 2_000, result["seed"], nz=100)
    _, probabilities = judge_images(load_judge(WEIGHTS / "judge.pth"), images)
    confidence = probabilities.max(1).values.mean().item()
    assert confidence == pytest.approx(result["model"]["judge_confidence"], abs=0.01)
    torch.testing.assert_close(digit_shares(probabilities),
                               torch.tensor(result["model"]["digit_shares"], dtype=torch.float64),
                               rtol=0, atol=0.03)


def test_the_average_is_the_better_shipped_generator_as_the_readme_says():
    raw, ema = scores("evaluation.json")["model"], scores("evaluation_ema.json")["model"]
    assert ema["fid"] <= 0.8 * raw["fid"]  # issue #13: at least 20% lower
    final, average = (torch.load(WEIGHTS / name, weights_only=True)
                      for name in ("generator_final.pth", "generator_ema.pth"))
    assert not torch.equal(final["main.0.weight"], average["main.0.weight"])  # not a copy
    averaging = " ".join((REPO / "docs" / "averaging.md").read_text().split())
    assert f"FID {ema['fid']:.1f} against the generator's {raw['fid']:.1f}" in averaging
