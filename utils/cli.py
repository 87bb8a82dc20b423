"""Command-line helpers shared by the scripts: one-line errors, checked number types."""

import argparse
from collections.abc import Callable


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _checked(convert: Callable, test: Callable, what: str) -> Callable:
    """An argparse type: ``convert`` the text, then require ``test`` of the value."""

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = _checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_interval = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
