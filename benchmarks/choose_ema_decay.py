"""How the generator average's decay and warm-up were chosen: several averages, one short run.

    python -m benchmarks.choose_ema_decay --data_dir ../shared/data --epochs 5

Trains the default configuration (train.py's networks, step and data order, built here as
train.py builds them) and keeps
several averages of the same generator side by side, then scores each with ``evaluate.py``'s
metrics at a few epochs. Only training images are used: the reference is the last 10,000
training images, never the test set that the README's numbers are measured on. A
measurement, not a test; prints a table and appends it to ``benchmarks/RESULTS.md``.
"""

import shlex
import sys
import time
from itertools import islice

import torch
from torch.optim import Adam

from benchmarks.bench_train import RESULTS
from models import Discriminator, Generator
from utils.averaging import GeneratorAverage
from utils.checkpoint import load_judge
from utils.cli import OneLineErrorParser, positive_int
from utils.data_loader import load_mnist, make_loader
from utils.device import fastest_memory_format, resolve_device
from utils.metrics import evaluate_generator, make_reference
from utils.provenance import describe_machine
from utils.step import gan_step

REFERENCE_IMAGES = 10_000  # the last training images (trained on too) serve as the reference


class NoWarmup(GeneratorAverage):
    """The naive average: the full decay from the first step on."""

    def decay_at(self, updates: int) -> float:
        """Always ``decay``."""
        return self.decay


CANDIDATES = {  # name: (class, decay)
    "0.999, no warm-up": (NoWarmup, 0.999),
    "0.98, warm-up": (GeneratorAverage, 0.98),
    "0.99, warm-up": (GeneratorAverage, 0.99),
    "0.995, warm-up": (GeneratorAverage, 0.995),
    "0.9999, warm-up": (GeneratorAverage, 0.9999),  # in 5 epochs: the ramp alone, as is 0.999
}


def main() -> None:
    """Train, average, score; print and record the table."""
    p = OneLineErrorParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="data")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--eval_epochs", default="1,3,5", help="comma-separated (default: 1,3,5)")
    p.add_argument("--samples", type=positive_int, default=5000)
    p.add_argument("--limit_batches", type=positive_int, default=None)
    args = p.parse_args()
    eval_epochs = {int(e) for e in args.eval_epochs.split(",")}
    p.add_argument("--judge", default="weights/judge.pth")
    args = p.parse_args()
    eval_epochs = {int(e) for e in args.eval_epochs.split(",")}
    device, seed = resolve_device("auto"), 0
    torch.manual_seed(seed)  # as train.py: the networks, their optimisers, the data order
    images, labels = load_mnist(args.data_dir, train=True)
    memory_format = fastest_memory_format(device)
    netG = Generator().to(device, memory_format=memory_format)
    netD = Discriminator().to(device, memory_format=memory_format)
    opt_G = Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = Adam(netD.parameters(), 2e-4, betas=(0.5, 0.999))
    loader = make_loader(images.to(device), 128, torch.Generator().manual_seed(seed))
    judge = load_judge(args.judge, device)
    n = REFERENCE_IMAGES
    reference = make_reference(judge, images[-n:], labels[-n:], images[:-n])
    averages = {name: cls(netG, decay, seed) for name, (cls, decay) in CANDIDATES.items()}
    table = []
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        for real in islice(loader, args.limit_batches or len(loader)):
            gan_step(netG, netD, opt_G, opt_D, real.to(memory_format=memory_format), nz=100)
            for average in averages.values():
                average.update(netG)
        print(f"epoch {epoch}: {time.time() - started:.0f} s", flush=True)
        if epoch not in eval_epochs:
            continue
        row = {"epoch": epoch}
        for name, net in [("raw", netG), *((n, a.generator()) for n, a in averages.items())]:
            scores = evaluate_generator(net, judge, reference, args.samples, seed=seed)
            row[name] = (scores["fid"], scores["inception_score"])
            print(f"  {name}: FID {scores['fid']:.2f}, IS {scores['inception_score']:.3f}",
                  flush=True)
        table.append(row)
    names = ["raw", *CANDIDATES]
    lines = [f"\n## Generator average: decay and warm-up ({time.strftime('%Y-%m-%d')})\n",
             f"`{shlex.join(['python', '-m', 'benchmarks.choose_ema_decay', *sys.argv[1:]])}` "
             f"on {describe_machine(device)}; FID / Inception Score of "
             f"{args.samples} samples against the last {REFERENCE_IMAGES} training images "
             "(which it trains on too; no test images); default configuration, float32, seed 0.\n",
             "| epoch | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {row['epoch']} | " + " | ".join(
        f"{row[name][0]:.1f} / {row[name][1]:.2f}" for name in names) + " |" for row in table]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
