"""Errors a user can fix. train.py prints their one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input or a missing or broken file; the message names it and says what to do.

    ``exit_code`` is the process exit status that train.py uses: 2 for command-line
    arguments (as argparse does), 1 for everything else. ``resumable``: whether continuing
    from the last checkpoint may get past it (not when it would only happen again).
    """

    exit_code, resumable = 1, True


class ArgumentError(UserError):
    """A command-line value that cannot work, found after argparse's own checks."""

    exit_code, resumable = 2, False


def already_exists(flag: str, path: object) -> ArgumentError:
    """The error for an output file that exists and may not be replaced."""
    return ArgumentError(f"{flag} {path} exists; choose another name, or add --overwrite to "
                         "replace it")
