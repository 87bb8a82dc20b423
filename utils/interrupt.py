"""Stopping cleanly on Ctrl-C (SIGINT) or SIGTERM."""

import os
import signal
import sys
from types import FrameType, TracebackType


class GracefulStop:
    """Turn the first SIGINT or SIGTERM into a request to stop; exit at once on a second.

    Within the block, the first signal only sets ``signum``, so the training loop can finish
    its batch, write a checkpoint and exit; a second one exits at once.

    Exiting at once is safe because every file is written atomically (``utils/files.py``): the
    last complete checkpoint stays as it was. The exit status is 128 + the signal number, the
    shell's convention: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        for signum in (signal.SIGINT, signal.SIGTERM):
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
        if self.signum is not None:
            print(f"\n{name} again: exiting now; the last checkpoint is intact", file=sys.stderr,
                  flush=True)
            os._exit(128 + signum)
        self.signum = signum
        print(f"\n{name}: finishing this batch and writing a checkpoint "
              "(interrupt again to quit at once)", file=sys.stderr, flush=True)
