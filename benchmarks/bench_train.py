"""Training speed: the textbook DCGAN loop against this repository's trainer, side by side.

    python -m benchmarks.bench_train --data_dir ../shared/data      # and appends RESULTS.md
    python -m benchmarks.bench_train --quick                          # seconds; checks it works

In one process, each mode gets its own networks (same initial weights) and data pipeline,
is warmed up, then the modes take turns for several rounds, each timing the same number of
batches; the median images/s over the rounds is reported with its ratio to the faster
textbook variant. The textbook loop is the PyTorch DCGAN example's: a DataLoader over
torchvision's MNIST with ToTensor and Normalize, eager float32, D's gradients computed in G's
update, `.item()` every batch. A measurement, not a test: nothing here asserts a speed.
"""

import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.optim import Adam
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST, FakeData

from models import Discriminator, Generator
from utils.cli import OneLineErrorParser
from utils.data_loader import load_mnist, make_loader, to_model_range
from utils.device import amp_supported, fastest_memory_format, resolve_device
from utils.errors import UserError
from utils.provenance import describe_machine
from utils.step import gan_step

RESULTS = Path(__file__).with_name("RESULTS.md")
TEXTBOOK_TRANSFORM = transforms.Compose([transforms.ToTensor(),
                                         transforms.Normalize((0.5,), (0.5,))])


def textbook_mode(dataset: torch.utils.data.Dataset, batch_size: int, workers: int,
                  device: torch.device) -> Callable[[], None]:
    """One batch of the PyTorch DCGAN example's training loop, per call."""
    torch.manual_seed(0)
    netG, netD = Generator().to(device), Discriminator().to(device)
    opt_G = Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = Adam(netD.parameters(), 2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    batches = cycle(DataLoader(dataset, batch_size, shuffle=True, num_workers=workers,
                               persistent_workers=workers > 0))

    def step() -> None:
        real = next(batches)[0].to(device)
        b = real.size(0)
        netD.zero_grad()
        label = torch.full((b,), 1.0, device=device)
        output = netD(real).view(-1)
        err_real = criterion(output, label)
        err_real.backward()
        d_x = output.mean().item()
        fake = netG(torch.randn(b, 100, 1, 1, device=device))
        label.fill_(0.0)
        output = netD(fake.detach()).view(-1)
        err_fake = criterion(output, label)
        err_fake.backward()
        d_g_z1 = output.mean().item()
        opt_D.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake).view(-1)
        err_G = criterion(output, label)
        err_G.backward()
        d_g_z2 = output.mean().item()
        opt_G.step()
        _ = (err_real + err_fake).item(), err_G.item(), d_x, d_g_z1, d_g_z2

    return step


def repository_mode(images: torch.Tensor, batch_size: int, device: torch.device, amp: bool,
                    compile: bool) -> Callable[[], None]:
    """One batch of train.py's training path (gan_step over the in-memory loader), per call."""
    torch.manual_seed(0)
    memory_format = fastest_memory_format(device)  # as train.py builds the networks
    netG = Generator().to(device, memory_format=memory_format)
    netD = Discriminator().to(device, memory_format=memory_format)
    opt_G = Adam(netG.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = Adam(netD.parameters(), 2e-4, betas=(0.5, 0.999))
    autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16) if amp else nullcontext
    stepG, stepD = (torch.compile(netG), torch.compile(netD)) if compile else (netG, netD)
    batches = cycle(make_loader(images.to(device), batch_size, torch.Generator().manual_seed(0)))
    pending: list[torch.Tensor] = []
    flush_every = 1 if device.type == "cpu" else 50  # as train.py reads statistics back

    def step() -> None:
        real = next(batches).to(memory_format=memory_format)
        pending.append(gan_step(stepG, stepD, opt_G, opt_D, real, 100, autocast))
        if len(pending) >= flush_every:
            torch.stack(pending).tolist()
            pending.clear()

    return step


def cycle(loader: DataLoader) -> Iterator:
    """Batches of ``loader``, epoch after epoch."""
    while True:
        yield from loader


def measure(step: Callable[[], None], batches: int, device: torch.device) -> tuple[float, float]:
    """Seconds for ``batches`` calls of ``step``, and the peak GPU memory (GiB) meanwhile."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return time.perf_counter() - start, peak


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table, append it to RESULTS.md (not with --quick)."""
    parser = OneLineErrorParser(description="Training speed, textbook loop vs this repo.")
    parser.add_argument("--data_dir", default="data", help="MNIST root; synthetic if absent")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per turn")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every mode")
    parser.add_argument("--modes", default="textbook-0,textbook-2,default,amp,compile,amp+compile",
                        help="comma-separated: textbook-W (W DataLoader workers), default, "
                             "amp, compile, amp+compile")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--quick", action="store_true",
                        help="2 batches, 1 round, synthetic data, no compile, no RESULTS.md")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except UserError as error:
        parser.error(str(error))
    modes = args.modes.split(",")
    if args.quick:
        args.batches, args.warmup, args.rounds, args.batch_size = 2, 1, 1, 32
        modes = [m for m in modes if "compile" not in m]
    if not amp_supported(device):
        modes = [m for m in modes if "amp" not in m]

    try:
        if args.quick:
            raise UserError("synthetic data for --quick")
        images, _ = load_mnist(args.data_dir)
        textbook_data = MNIST(args.data_dir, train=True, transform=TEXTBOOK_TRANSFORM)
        data_name = "real MNIST"
    except UserError:
        textbook_data = FakeData(512, (1, 28, 28), 10, TEXTBOOK_TRANSFORM,
                                 random_offset=0)
        images = to_model_range((torch.rand(512, 28, 28) * 255).to(torch.uint8))
        data_name = "synthetic 28x28 images"

    steps = {}
    for mode in modes:
        if mode.startswith("textbook-"):
            steps[mode] = textbook_mode(textbook_data, args.batch_size, int(mode[9:]), device)
        else:
            steps[mode] = repository_mode(images, args.batch_size, device, amp="amp" in mode,
                                          compile="compile" in mode)
        measure(steps[mode], args.warmup, device)  # warm-up, and compilation for compile

    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    peaks: dict[str, float] = {}
    for _ in range(args.rounds):
        for mode in modes:
            elapsed, peaks[mode] = measure(steps[mode], args.batches, device)
            seconds[mode].append(elapsed)
    speed = {m: args.batches * args.batch_size / statistics.median(s) for m, s in seconds.items()}
    textbook = max((v for m, v in speed.items() if m.startswith("textbook")), default=None)

    header = "| mode | images/s | x textbook | peak GPU memory |\n|---|---|---|---|"
    rows = []
    for mode, value in speed.items():
        ratio = f"{value / textbook:.2f}" if textbook else "n/a"
        peak = f"{peaks[mode]:.2f} GiB" if device.type == "cuda" else "n/a (CPU)"
        rows.append(f"| {mode} | {value:.0f} | {ratio} | {peak} |")
    where = describe_machine(device)
    setting = (f"{data_name}, batch {args.batch_size}, {args.warmup} warm-up batches, "
               f"{args.rounds} rounds of {args.batches} batches per mode, median")
    print(where)
    print(setting)
    print("\n".join([header, *rows]))
    if not args.quick:
        command = shlex.join(["python", "-m", "benchmarks.bench_train",
                              *(sys.argv[1:] if argv is None else argv)])
        with open(RESULTS, "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')} — {where}\n\n`{command}`; "
                    f"{setting}.\n\n{header}\n" + "\n".join(rows) + "\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
