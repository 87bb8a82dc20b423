"""Writing files: whole or not at all, and never over a file that must not be replaced."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from utils.errors import already_exists

# Appends never follow a symbolic link planted at the file's name (where the OS can tell).
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)


@contextmanager
def atomic_path(path: str | Path, replace: bool = True, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it as ``path`` when the block succeeds.

    A reader sees the old whole file or the new one. With ``replace`` it goes in by
    ``os.replace``; without, by ``os.link``, which fails if ``path`` exists at that moment:
    of two writers racing for one name the second gets ``already_exists`` naming ``flag``.
    A failed write is an ``OSError`` naming ``path``.
    """
    path = Path(path)
    # Hidden, and short enough for any folder: 40 characters are at most 160 bytes.
    tmp = path.with_name(f".{path.name[:40]}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise already_exists(flag, path) from None
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None
    finally:
        with suppress(OSError):  # the error above, if any, is the one to tell
            tmp.unlink(missing_ok=True)


def open_for_append(path: Path) -> int:
    """Open ``path`` for appending whole lines (``append_line``); a link there is refused."""
    try:
        return os.open(path, APPEND, 0o644)
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None


def append_line(fd: int, line: str, name: Path) -> None:
    """Append ``line`` to the open file ``fd`` (of ``name``) whole, or not at all.

    A write that fails part-way (a full disk) is cut back off; the error names the file.
    """
    data, size = line.encode(), os.lseek(fd, 0, os.SEEK_END)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError as error:
        with suppress(OSError):  # if even this fails, a resume drops the incomplete line
            os.ftruncate(fd, size)
        raise OSError(error.errno, f"cannot write {name}: {error.strerror}") from None
