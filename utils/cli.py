"""Command-line helpers shared by the scripts: checked values, output paths, one-line errors."""

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from utils.device import is_out_of_memory
from utils.errors import ArgumentError, UserError


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with 2."""

    def error(self, message: str) -> None:  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


REPOSITORY = Path(__file__).resolve().parents[1]


def in_repository(name: str) -> str:
    """A file of this repository (``weights/judge.pth``, ``train.py``), as a path from here.

    The scripts' defaults for the files the repository ships, and the commands they print,
    resolve against the repository, so that they work from any folder; outputs and
    ``--data_dir`` stay relative to the current folder, as users expect of a script.
    """
    try:
        return os.path.relpath(REPOSITORY / name)
    except ValueError:  # Windows: the repository is on another drive
        return str(REPOSITORY / name)


def printable_output() -> None:
    """Let stdout and stderr print any text, so that no run fails over a message.

    Characters that the terminal's encoding lacks (an ASCII locale, a Windows console
    redirected to a file in the locale's code page) are printed as backslash escapes.
    """
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # not when a test captures the output
            stream.reconfigure(errors="backslashreplace")


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


def int_at_least(least: int) -> Callable:
    """An argparse type: an integer of at least ``least``."""
    return _checked(int, lambda v: v >= least, f"an integer of at least {least}")


positive_int = _checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a positive number")
unit_interval = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
# A run's sub-folder name: no path separators, nothing hidden, nothing that walks up; at most
# 60 characters, so that with a suffix (-2) it stays under the 255 bytes a file system allows.
FOLDER_NAME = re.compile(r"\w[\w.+-]{0,59}")
folder_name = _checked(str, lambda v: FOLDER_NAME.fullmatch(v) is not None,
                       "a folder name of at most 60 letters, digits and _ . + - (not starting "
                       "with . + -)")
# NumPy's seeds are 32-bit; torch's would take 64 bits, but a run seeds both.
seed = _checked(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")


def describe(error: BaseException) -> str:
    """One line for an error, at most about 200 characters.

    An ``OSError``'s own message (it names the file), else the type and the message's first line.
    """
    if isinstance(error, OSError):
        return str(error)
    return f"{type(error).__name__}: {(str(error).strip() or '?').splitlines()[0][:200]}"


def report(script: str, error: BaseException, out_of_memory_hint: str) -> int:
    """Print ``error`` (or Ctrl-C) as the script's one-line error; returns the exit status.

    A ``UserError`` says what to do itself; running out of memory gets
    ``out_of_memory_hint`` (which flag to lower); anything else its type and first line.
    """
    if isinstance(error, KeyboardInterrupt):
        message, code = "interrupted (Ctrl-C); files are written whole or not at all", 130
    elif isinstance(error, UserError):
        message, code = str(error), error.exit_code
    elif is_out_of_memory(error):
        size = re.search(r"tried to allocate ([\d.]+ ?\w+)", str(error), re.IGNORECASE)
        wanted = f" (it tried to allocate {size.group(1)})" if size else ""
        message, code = f"out of memory{wanted}; {out_of_memory_hint}", 1
    else:
        message, code = describe(error), 1
    print(f"{script}: error: {message}", file=sys.stderr)
    return code


def check_output_file(path: str | Path, flag: str, overwrite: bool = False,
                      how_to_replace: str = "add --overwrite to replace it") -> Path:
    """Make ``path``'s folder and check that a file can be written there, before any work.

    Raises:
        ArgumentError: naming ``flag``: ``path`` is a folder, exists (unless ``overwrite``;
            the message then says ``how_to_replace``), or its folder cannot be made or written.
    """
    path = Path(path)
    if path.is_dir():
        raise ArgumentError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ArgumentError(f"{flag} {path} exists; choose another name, or {how_to_replace}")
    check_output_folder(path.parent, flag, path)
    return path


def check_output_folder(folder: str | Path, flag: str, shown: str | Path | None = None) -> Path:
    """Make ``folder`` if missing and check that files can be written in it.

    Raises:
        ArgumentError: naming ``flag`` and ``shown`` (default: the folder).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ArgumentError(f"{flag} {shown or folder}: cannot create or write there "
                            f"({error.strerror}); choose a writable place") from None
    return folder
