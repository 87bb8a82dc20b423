"""Score a generator against real MNIST, beside the same scores for real images.

    python evaluate.py                                   # weights/generator_final.pth
    python evaluate.py --weights weights/generator_epoch_10.pth --n 10000 --seed 0

Prints one table (metric, model, real-data reference) and writes results/evaluation.json.
What each metric means: utils/metrics.py and README.md, "Measuring quality".
"""

import json
import sys
import time
from pathlib import Path

import torch

from utils.checkpoint import load_generator, load_judge
from utils.cli import OneLineErrorParser, positive_int
from utils.data_loader import load_mnist
from utils.errors import UserError
from utils.files import atomic_path
from utils.metrics import evaluate_generator, make_reference, real_data_scores
from utils.training import resolve_device

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
        value = scores.get(key)
        if value is None:
            return "n/a"
        return fmt.format(value)

    lines = [f"{'metric':50s} {'model':>10s} {'real data':>10s}", "-" * 72]
    lines += [f"{label:50s} {cell(model, key, fmt):>10s} {cell(real, key, fmt):>10s}"
              for key, label, fmt in ROWS]
    lines.append(f"{'digit shares 0-9 (model)':50s} " + " ".join(
        f"{share:.3f}" for share in model["digit_shares"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print and save; returns the exit status."""
    parser = OneLineErrorParser(description="Score a generator's samples on MNIST.")
    parser.add_argument("--weights", default="weights/generator_final.pth",
                        help="generator weights or checkpoint (default: %(default)s)")
    parser.add_argument("--judge", default="weights/judge.pth",
                        help="judge weights, made by train_judge.py (default: %(default)s)")
    parser.add_argument("--data_dir", default="data",
                        help="folder holding MNIST/raw (default: %(default)s)")
    parser.add_argument("--n", type=positive_int, default=10_000,
                        help="samples to score (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the samples (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="default: %(default)s")
    parser.add_argument("--out", default="results/evaluation.json",
                        help="where to write the scores (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"argument --n: expected at least 2, got {args.n}")
    started = time.time()
    try:
        device = resolve_device(args.device)
        netG = load_generator(args.weights, device)
        judge = load_judge(args.judge, device)
        train_images, _ = load_mnist(args.data_dir, train=True)
        test_images, test_labels = load_mnist(args.data_dir, train=False)
    except UserError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return error.exit_code
    with torch.no_grad():
        reference = make_reference(judge, test_images, test_labels, train_images)
        model = evaluate_generator(netG, judge, reference, args.n, args.seed)
        real = real_data_scores(judge, reference, min(args.n, len(train_images)), args.seed)
    print(f"{args.weights}: {args.n} samples (seed {args.seed}) against the {len(test_images)} "
          "MNIST test images")
    print(format_table(model, real))
    judge_record = Path(args.judge).with_suffix(".json")
    report = {"weights": args.weights, "n": args.n, "seed": args.seed, "model": model,
              "real_data": real, "seconds": round(time.time() - started, 1),
              "judge": json.loads(judge_record.read_text()) if judge_record.exists() else None}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
