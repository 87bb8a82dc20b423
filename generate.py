"""Draw digits with a trained generator.

    python generate.py                                # 64 digits, weights/generator_final.pth
    python generate.py --n 16 --digit 7 --out sevens.png
    python generate.py --n 100 --out_dir samples/     # 100 separate PNG files

An existing --out file or a --out_dir holding files is replaced only with --overwrite.

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
    check_output_file,
    check_output_folder,
    in_repository,
    positive_int,
    printable_output,
    report,
    seed,
)
from utils.device import resolve_device
from utils.errors import ArgumentError
from utils.visualization import save_image_grid
from utils.visualize import sample_digit


def main(argv: list[str] | None = None) -> int:
    """Generate and save; returns the exit status."""
    printable_output()
    parser = OneLineErrorParser(prog="generate.py",
                                description="Draw MNIST digits with a trained generator.")
    parser.add_argument("--weights", default=in_repository("weights/generator_final.pth"),
                        help="generator weights or checkpoint (default: %(default)s)")
    parser.add_argument("--n", type=positive_int, default=64,
                        help="how many digits (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="one PNG grid of all digits; an existing file is replaced only with "
                             "--overwrite (default: generated.png)")
    parser.add_argument("--out_dir", default=None,
                        help="write one PNG per digit into this folder instead of a grid; a "
                             "folder that holds files only with --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --out or --out_dir replace existing files (default: off)")
    parser.add_argument("--digit", type=int, choices=range(10), default=None,
                        help="only this digit, as the judge sees it (default: any)")
    parser.add_argument("--min_confidence", type=float, default=0.9,
                        help="with --digit: the judge's least probability (default: %(default)s)")
    parser.add_argument("--max_draws", type=positive_int, default=None,
                        help="with --digit: give up after this many samples "
                             "(default: 50 per digit asked for, at least 20000)")
    parser.add_argument("--judge", default=in_repository("weights/judge.pth"),
                        help="judge weights for --digit (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=0,
                        help="seed, in [0, 2**32) (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="default: %(default)s")
    args = parser.parse_args(argv)
    if not 0 < args.min_confidence <= 1:
        parser.error(f"argument --min_confidence: expected a number in (0, 1], "
                     f"got {args.min_confidence}")
    try:
        return generate(args)
    except (Exception, KeyboardInterrupt) as error:
        return report("generate.py", error, "a smaller --n may fit")


def generate(args: argparse.Namespace) -> int:
    """Draw ``args.n`` digits as the flags say and save them."""
    if args.out_dir:
        folder = check_output_folder(args.out_dir, "--out_dir")
        if any(folder.iterdir()) and not args.overwrite:
            raise ArgumentError(f"--out_dir {folder} holds files; choose an empty folder, or "
                                "add --overwrite to replace its 00000.png, 00001.png, ...")
    else:
        out = check_output_file(args.out or "generated.png", "--out", overwrite=args.overwrite)
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
            save_image_grid(image[None], folder / f"{i:05d}.png", nrow=1)
        print(f"wrote {len(images)} images to {folder}/")
    else:
        save_image_grid(images, out, nrow=math.ceil(math.sqrt(len(images))))
        print(f"wrote a grid of {len(images)} images to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
