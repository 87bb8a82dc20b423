"""Errors a user can fix. train.py prints their one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input or a missing or broken file; the message names it and says what to do.

    ``exit_code``: 2 for arguments (as argparse), else 1. ``resumable``: whether continuing
    from the last checkpoint may get past it.
    """

    exit_code, resumable = 1, True


class ArgumentError(UserError):
    """A command-line value that cannot work, found after argparse's own checks."""

    exit_code, resumable = 2, False


def already_exists(flag: str, path: object) -> ArgumentError:
    """The error for an output file that exists and may not be replaced."""
    return ArgumentError(f"{flag} {path} exists; choose another name, or add --overwrite to "
                         "replace it")
