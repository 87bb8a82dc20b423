"""Score a generator against real MNIST, beside the same scores for real images.

    python evaluate.py                                   # weights/generator_final.pth
    python evaluate.py --weights weights/<run>/generator_epoch_10.pth --n 10000 --seed 0

Prints one table (metric, model, real-data reference) and writes it as JSON into the
current folder (weights/generator_final.pth -> generator_final_evaluation.json), or to --out.
What each metric means: utils/metrics.py and docs/quality.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from utils.checkpoint import load_generator, load_judge
from utils.cli import (
    OneLineErrorParser,
    check_output,
    in_repository,
    int_at_least,
    path,
    report,
    seed,
)
from utils.data_loader import load_mnist
from utils.device import resolve_device
from utils.errors import UserError
from utils.files import atomic_path
from utils.metrics import MIN_SAMPLES, evaluate_generator, make_reference, real_data_scores

STANDARD_SAMPLES = 10_000  # the README's scores: 10,000 samples against 10,000 test digits
# (key, label, format): the rows of the printed table
ROWS = [
    ("fid", "FID (judge features), lower is better", "{:.3f}"),
    ("kid", "KID, lower is better", "{:.4g}"),
    ("inception_score", "Inception Score (judge), max 10", "{:.3f}"),
    ("judge_confidence", "mean judge confidence", "{:.4f}"),
    ("digit_kl", "KL(digit shares || real), 0 is best", "{:.4f}"),
    ("min_digit_ratio", "rarest digit's share / real share", "{:.3f}"),
    ("precision", "precision (k=5)", "{:.4f}"),
    ("recall", "recall (k=5)", "{:.4f}"),
    ("density", "density (k=5)", "{:.4f}"),
    ("coverage", "coverage (k=5)", "{:.4f}"),
    ("nn_distance_ratio", "nearest-training-image distance / test's", "{:.3f}"),
    ("copies", "share nearer a training image than 99% of test", "{:.4f}"),
]


def format_table(model: dict, real: dict) -> str:
    """The scores of the model and of real data, one metric a row."""

    def cell(scores: dict, key: str, fmt: str) -> str:
        return "n/a" if scores.get(key) is None else fmt.format(scores[key])

    lines = [f"{'metric':50s} {'model':>10s} {'real data':>10s}", "-" * 72]
    lines += [f"{label:50s} {cell(model, key, fmt):>10s} {cell(real, key, fmt):>10s}"
              for key, label, fmt in ROWS]
    lines.append(f"{'digit shares 0-9 (model)':50s} " + " ".join(
        f"{share:.3f}" for share in model["digit_shares"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print and save; returns the exit status."""
    parser = OneLineErrorParser(prog="evaluate.py",
                                description="Score a generator's samples on MNIST.")
    add = parser.add_argument
    add("--weights", type=path, default=in_repository("weights/generator_final.pth"),
        help="generator weights or checkpoint (default: %(default)s)")
    add("--judge", type=path, default=in_repository("weights/judge.pth"),
        help="judge weights, made by train_judge.py (default: %(default)s)")
    add("--data_dir", type=path, default="data",
        help="folder holding MNIST/raw (default: %(default)s)")
    add("--n", type=int_at_least(MIN_SAMPLES), default=STANDARD_SAMPLES,
        help=f"samples to score, at least {MIN_SAMPLES} (default: %(default)s)")
    add("--seed", type=seed, default=0,
        help="seed of the samples, in [0, 2**32) (default: %(default)s)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="default: %(default)s")
    add("--out", type=path, default=None,
        help="where to write the scores as JSON; an existing file is replaced only with "
             "--overwrite (default: <weights' name>_evaluation.json in the current folder)")
    add("--overwrite", action="store_true",
        help="let --out replace an existing file (default: off)")
    args = parser.parse_args(argv)
    try:
        return evaluate(args)
    except (Exception, KeyboardInterrupt) as error:
        return report("evaluate.py", error, "a smaller --n may fit")


def evaluate(args: argparse.Namespace) -> int:
    """Score ``args.weights`` as the flags say; print the table and write the JSON."""
    started = time.time()
    out = check_output(args.out or f"{Path(args.weights).stem}_evaluation.json", "--out",
                       args.overwrite)
    device = resolve_device(args.device)
    netG = load_generator(args.weights, device)
    judge = load_judge(args.judge, device)
    judge_record = read_judge_record(Path(args.judge).with_suffix(".json"))
    train_images, _ = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    n_real = min(args.n, len(train_images))
    print(f"scoring {args.n} samples of {args.weights} (seed {args.seed}), and {n_real} real "
          f"training images, against the {len(test_images)} MNIST test images ...", flush=True)
    with torch.no_grad():
        reference = make_reference(judge, test_images, test_labels, train_images)
        model = evaluate_generator(netG, judge, reference, args.n, args.seed)
        real = real_data_scores(judge, reference, n_real, args.seed)
    print(format_table(model, real))
    if args.n < STANDARD_SAMPLES:
        print(f"note: both columns score {args.n} samples; with fewer than {STANDARD_SAMPLES:,}, "
              "FID and KID are biased upward and the digit shares are noisier, for the real "
              "data too: compare only scores of the same --n")
    scores = {"weights": args.weights, "n": args.n, "seed": args.seed, "model": model,
              "real_data": real, "seconds": round(time.time() - started, 1),
              "judge": judge_record}
    with atomic_path(out, replace=args.overwrite) as tmp:
        tmp.write_text(json.dumps(scores, indent=2) + "\n")
    print(f"wrote the scores to {out} ({scores['seconds']} s)")
    return 0


def read_judge_record(path: Path) -> dict | None:
    """The judge's record beside its weights (train_judge.py writes it), if there is one."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        record = error
    if not isinstance(record, dict):
        raise UserError(f"{path}, the judge's record, is not a JSON object; delete it, or "
                        "make the judge again with train_judge.py")
    return record


if __name__ == "__main__":
    sys.exit(main())
