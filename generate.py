"""Draw digits with a trained generator.

    python generate.py                                # 64 digits, weights/generator_final.pth
    python generate.py --n 16 --digit 7 --out generated_sevens.png
    python generate.py --n 100 --out_dir samples/     # 100 separate PNG files

An existing file is replaced only with --overwrite. The image format is the one --out's
suffix names (.png, .jpg, ...).

With --digit, samples are drawn until the judge (weights/judge.pth, made by train_judge.py)
calls --n of them that digit with at least --min_confidence.
"""

import argparse
import math
import sys

import torch

from utils.checkpoint import load_generator, load_judge
from utils.cli import (
    OneLineErrorParser,
    check_folder,
    check_output,
    in_repository,
    path,
    positive_int,
    probability,
    report,
    seed,
)
from utils.device import resolve_device
from utils.errors import ArgumentError, already_exists
from utils.visualize import image_format, sample_digit, save_image_grid


def main(argv: list[str] | None = None) -> int:
    """Generate and save; returns the exit status."""
    parser = OneLineErrorParser(prog="generate.py",
                                description="Draw MNIST digits with a trained generator.")
    add = parser.add_argument
    add("--weights", type=path, default=in_repository("weights/generator_final.pth"),
        help="generator weights or checkpoint (default: %(default)s)")
    add("--n", type=positive_int, default=64, help="how many digits (default: %(default)s)")
    add("--out", type=path, default="generated.png",
        help="one grid of all digits, in the format its suffix names; an existing file is "
             "replaced only with --overwrite (default: %(default)s)")
    add("--out_dir", type=path, default=None,
        help="write one PNG per digit, 00000.png, 00001.png, ..., into this folder instead of a "
             "grid")
    add("--overwrite", action="store_true",
        help="let --out or --out_dir replace existing files (default: off)")
    add("--digit", type=int, choices=range(10), default=None,
        help="only this digit, as the judge sees it (default: any)")
    add("--min_confidence", type=probability, default=0.9,
        help="with --digit: the judge's least probability (default: %(default)s)")
    add("--max_draws", type=positive_int, default=None,
        help="with --digit: give up after this many samples (default: 50 per digit asked for, "
             "at least 20000)")
    add("--judge", type=path, default=in_repository("weights/judge.pth"),
        help="judge weights for --digit (default: %(default)s)")
    add("--seed", type=seed, default=0, help="seed, in [0, 2**32) (default: %(default)s)")
    add("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
        help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        return generate(args)
    except (Exception, KeyboardInterrupt) as error:
        return report("generate.py", error, "a smaller --n may fit")


def generate(args: argparse.Namespace) -> int:
    """Draw ``args.n`` digits as the flags say and save them."""
    if args.out_dir:
        folder = check_folder(args.out_dir, "--out_dir")
        taken = [p for p in folder.glob("*.png") if p.stem.isdigit() and int(p.stem) < args.n
                 and p.stem == f"{int(p.stem):05d}"]  # of the names 00000.png, 00001.png, ...
        if taken and not args.overwrite:
            raise already_exists("--out_dir", min(taken))
    elif check_output(args.out, "--out", args.overwrite) and image_format(args.out) is None:
        raise ArgumentError(f"--out {args.out}: no image format of that suffix; give a name "
                            "ending in .png (or .jpg, .bmp, ...)")
    device = resolve_device(args.device)
    netG = load_generator(args.weights, device)
    generator = torch.Generator().manual_seed(args.seed)
    if args.digit is None:
        noise = torch.randn(args.n, netG.nz, 1, 1, generator=generator)
    else:
        judge = load_judge(args.judge, device)
        noise = sample_digit(netG, judge, args.digit, args.n, netG.nz, generator,
                             args.min_confidence, max_draws=args.max_draws)
    with torch.no_grad():
        images = torch.cat([netG(z.to(device)).cpu() for z in noise.split(1000)])
    if args.out_dir:
        for i, image in enumerate(images):
            save_image_grid(image[None], folder / f"{i:05d}.png", nrow=1, replace=args.overwrite)
        others = len(list(folder.iterdir())) - len(images)
        print(f"wrote {len(images)} images, 00000.png to {len(images) - 1:05d}.png, into {folder}/"
              + (f" ({others} other files there are as they were)" if others else ""))
    else:
        save_image_grid(images, args.out, nrow=math.ceil(math.sqrt(len(images))),
                        replace=args.overwrite)
        print(f"wrote a grid of {len(images)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
