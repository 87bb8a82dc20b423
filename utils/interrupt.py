"""Stopping cleanly on Ctrl-C (SIGINT), SIGTERM, or SIGHUP (the terminal closed)."""

import os
import signal
import sys
from contextlib import suppress
from types import FrameType, TracebackType

# SIGHUP: the terminal or SSH session closed (POSIX only).
SIGNALS = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


class GracefulStop:
    """Turn the first SIGINT, SIGTERM or SIGHUP into a request to stop; exit at once on a second.

    Within the block, the first signal only sets ``signum``, so the training loop can finish
    its batch, write a checkpoint and exit; a second one exits at once.

    Exiting at once is safe because every file is written atomically (``utils/files.py``): the
    last complete checkpoint stays as it was. The exit status is 128 + the signal number, the
    shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. SIGQUIT keeps its
    default, a core dump at once: it is the user's way to quit without a checkpoint.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def exit_code(self) -> int:
        """The shell's status for death by the signal received."""
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == getattr(signal, "SIGHUP", None):
            detach_terminal()
        if self.signum is not None:
            say(f"\n{name} again: exiting now; the last checkpoint is intact")
            os._exit(128 + signum)
        self.signum = signum
        say(f"\n{name}: finishing this batch and writing a checkpoint (interrupt again to quit "
            "at once)")


def say(message: str) -> None:
    """Print ``message`` to stderr, or nowhere if stderr is gone (a closed pipe, say)."""
    with suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def detach_terminal() -> None:
    """Send what goes to the terminal from now on to ``os.devnull``.

    After SIGHUP the terminal is gone, and every write to it fails (EIO): the progress bar
    would stop the run before its checkpoint. Output redirected to a file is kept.
    """
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        if os.isatty(fd):
            os.dup2(null, fd)
    os.close(null)
