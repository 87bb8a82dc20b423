"""Stopping cleanly on Ctrl-C (SIGINT), SIGTERM, or SIGHUP (the terminal closed)."""

import os
import signal
import sys
from contextlib import suppress
from types import FrameType

SIGNALS = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


class GracefulStop:
    """Turn the first SIGINT, SIGTERM or SIGHUP into a request to stop; exit at once on a second.

    The first only sets ``signum``: the loop finishes its batch, writes a checkpoint and exits
    with 128 + the signal number. Every file is written atomically, so a second can exit at
    once. SIGQUIT keeps its default: quit, no checkpoint.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            say(f"\n{name} again: exiting now; files are written whole or not at all")
            os._exit(128 + signum)
        self.signum = signum
        say(f"\n{name}: finishing this batch and writing a checkpoint (interrupt again to quit "
            "at once)")


def say(message: str) -> None:
    """Print ``message`` to stderr, or nowhere if it cannot be written (a closed terminal)."""
    with suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)
