"""Train the judge, the MNIST classifier whose features and labels score generated digits.

    python train_judge.py --data_dir data --overwrite   # replaces the shipped judge

Writes its weights to weights/judge.pth and its test accuracy, seed and settings to
weights/judge.json. The shipped judge was made by exactly this command (see judge.json).
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim import Adam
from torch.optim.lr_scheduler import CosineAnnealingLR
from tqdm import tqdm

from models import Judge
from utils.checkpoint import save_atomic
from utils.cli import (
    OneLineErrorParser,
    check_output,
    in_repository,
    path,
    positive_float,
    positive_int,
    report,
    seed,
)
from utils.data_loader import load_mnist, make_loader
from utils.device import resolve_device
from utils.errors import ArgumentError
from utils.files import atomic_path
from utils.metrics import judge_images


def accuracy(judge: Judge, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` that ``judge`` (in eval mode) labels correctly."""
    _, probabilities = judge_images(judge.eval(), images)
    return (probabilities.argmax(1) == labels).sum().item() / len(images)


def train_judge(images: torch.Tensor, labels: torch.Tensor, epochs: int, batch_size: int,
                lr: float, seed: int, device: torch.device) -> Judge:
    """A Judge trained on ``images`` in [-1, 1] and ``labels``: cross-entropy, Adam, cosine."""
    torch.manual_seed(seed)
    judge = Judge().to(device)
    optimizer = Adam(judge.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    loader = make_loader(torch.arange(len(images)), batch_size, order)  # batches of indices
    schedule = CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    for epoch in range(1, epochs + 1):
        judge.train()
        for index in tqdm(loader, desc=f"judge epoch {epoch}/{epochs}", unit="batch"):
            loss = F.cross_entropy(judge(images[index].to(device)), labels[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return judge.eval()


def main(argv: list[str] | None = None) -> int:
    """Train, test and save the judge; returns the exit status."""
    parser = OneLineErrorParser(prog="train_judge.py", description="Train the MNIST judge network.")
    add = parser.add_argument
    add("--data_dir", type=path, default="data",
        help="folder holding MNIST/raw (default: %(default)s)")
    add("--epochs", type=positive_int, default=6, help="epochs (default: %(default)s)")
    add("--batch_size", type=positive_int, default=128, help="batch size (default: %(default)s)")
    add("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    add("--seed", type=seed, default=0, help="seed, in [0, 2**32) (default: %(default)s)")
    add("--out", type=path, default=in_repository("weights/judge.pth"),
        help="weights file; a .json with its accuracy goes beside it. Existing files (such as the "
             "shipped judge, with which every score of this repository was measured) are "
             "replaced only with --overwrite (default: %(default)s)")
    add("--overwrite", action="store_true",
        help="let --out and its .json replace existing files (default: off)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="default: %(default)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        if Path(args.out).suffix == ".json":
            raise ArgumentError(f"--out {args.out}: the judge's record goes beside its weights "
                                "as a .json file; give a .pth name")
        out = check_output(args.out, "--out", args.overwrite)
        check_output(out.with_suffix(".json"), "--out", args.overwrite)
        return train_and_save(args, out, shlex.join(["python", "train_judge.py", *argv]))
    except (Exception, KeyboardInterrupt) as error:
        return report("train_judge.py", error, "a smaller --batch_size may fit")


def train_and_save(args: argparse.Namespace, out: Path, command: str) -> int:
    """Train and test the judge as the flags say; save it and its record beside it."""
    device = resolve_device(args.device)
    train_images, train_labels = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    started = time.time()
    judge = train_judge(train_images, train_labels, args.epochs, args.batch_size, args.lr,
                        args.seed, device)
    test_accuracy = accuracy(judge, test_images, test_labels)
    save_atomic({k: v.cpu() for k, v in judge.state_dict().items()}, out, args.overwrite)
    record = {"test_accuracy": test_accuracy, "train_accuracy":
              accuracy(judge, train_images, train_labels), "seed": args.seed,
              "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "train_images": len(train_images), "test_images": len(test_images),
              "seconds": round(time.time() - started), "device": str(device),
              "torch_version": str(torch.__version__), "date": time.strftime("%Y-%m-%d"),
              "command": command}
    with atomic_path(out.with_suffix(".json"), replace=args.overwrite) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    print(f"test accuracy {100 * test_accuracy:.2f}% on {len(test_images)} images; "
          f"saved {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
