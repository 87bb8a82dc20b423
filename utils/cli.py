"""What the four scripts and torch.hub share: checked values, output paths, one-line errors."""

import argparse
import numbers
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from utils.device import is_out_of_memory
from utils.errors import ArgumentError, UserError, already_exists


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {printable(message)} (see --help)\n")


REPOSITORY = Path(__file__).resolve().parents[1]


def in_repository(name: str) -> str:
    """A file of this repository (``weights/judge.pth``, ``train.py``), as a path from here.

    So shipped files and printed commands work from any folder; outputs and ``--data_dir``
    stay relative to the current folder, as users expect of a script.
    """
    try:
        return os.path.relpath(REPOSITORY / name)
    except ValueError:  # Windows: the repository is on another drive
        return str(REPOSITORY / name)


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, newlines) shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _checked(convert: Callable, test: Callable, what: str) -> Callable:
    """A checked type: ``convert`` the text, then require ``test`` of the value."""

    def parse(text: str) -> int | float | str:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def int_at_least(least: int) -> Callable:
    """An integer in [``least``, 2**31)."""
    return _checked(int, lambda v: least <= v < 2**31, f"an integer in [{least}, 2**31)")


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_interval = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
probability = _checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
seed = _checked(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
# Every path flag: a path prints, and pastes into a shell, as it is.
path = _checked(str, str.isprintable, "a path of printable characters")
# A run's sub-folder name: nothing hidden, no separators, at most 60 characters.
folder_name = _checked(str, lambda v: re.fullmatch(r"\w[\w.+-]{0,59}", v) is not None,
                       "a folder name of at most 60 letters, digits and _ . + - (not starting "
                       "with . + -)")


def check(name: str, value: object, kind: Callable) -> object:
    """A number from Python (``torch.hub.load``) checked by ``kind`` as a flag; ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # NumPy's too
        raise ValueError(f"{name}: expected a number, got {value!r}")
    try:
        return kind(str(value))
    except argparse.ArgumentTypeError as error:
        raise ValueError(f"{name}: {error}") from None


def report(script: str, error: BaseException, out_of_memory_hint: str) -> int:
    """Print ``error`` (or Ctrl-C) as the script's one-line error; returns the exit status.

    Running out of memory gets ``out_of_memory_hint`` (which flag to lower).
    """
    if isinstance(error, KeyboardInterrupt):
        message, code = "interrupted (Ctrl-C); files are written whole or not at all", 130
    elif isinstance(error, UserError):
        message, code = str(error), error.exit_code
    elif is_out_of_memory(error):
        message, code = f"out of memory; {out_of_memory_hint}", 1
    else:
        message, code = describe(error), 1
    print(f"{script}: error: {printable(message)}", file=sys.stderr)
    return code


def describe(error: BaseException) -> str:
    """One line for an error: an ``OSError``'s own, else its type and text.

    This program's file writes name their file: an ``OSError`` that names none is printing's.
    """
    if isinstance(error, OSError):
        named = error.filename or "cannot write" in str(error)
        return str(error) if named else f"{error} (printing to stdout or stderr)"
    return f"{type(error).__name__}: {(str(error).strip() or '?').splitlines()[0][:200]}"


def check_output(path: str | Path, flag: str, overwrite: bool = False) -> Path:
    """Check before any work that ``path`` can be written (``ArgumentError`` naming ``flag``).

    ``atomic_path(replace=overwrite)`` checks again as the file is written.
    """
    path = Path(path)
    if path.is_dir():
        raise ArgumentError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise already_exists(flag, path)
    check_folder(path.parent, flag)
    return path


def check_folder(folder: str | Path, flag: str) -> Path:
    """Make ``folder`` if missing and check that files can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ArgumentError(f"{flag} {folder}: cannot create or write there "
                            f"({error.strerror}); choose a writable place") from None
    return folder
