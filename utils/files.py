"""Writing files so that a crash or a full disk never leaves a half-written one."""

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

# The names atomic_path writes to first: .<name>.<pid>-<8 hex digits>.tmp
TEMPORARY = re.compile(r"\..+\.\d+-[0-9a-f]{8}\.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a new temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    ``os.replace`` is atomic on POSIX and Windows, so readers see either the old
    complete file or the new complete file. On an exception the temporary file is removed
    and ``path`` is left as it was; a failed write (say, a full disk) is reported as an
    ``OSError`` naming ``path``, not the temporary file.
    """
    path = Path(path)
    # A name of its own (matching TEMPORARY), so two writers of one file never share it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def append_line(file: BinaryIO, line: str) -> None:
    """Append ``line`` (with its newline) to ``file`` whole, or not at all.

    ``file`` is opened unbuffered for appending (``open(path, "ab", buffering=0)``). If the
    write fails part-way (a full disk), the file is cut back to its previous length, so it
    never ends in half a line; the error names the file.
    """
    data = line.encode()
    size = file.seek(0, os.SEEK_END)
    try:
        written = 0
        while written < len(data):
            written += file.write(data[written:])
    except OSError as error:
        with suppress(OSError):  # if even this fails, a resume drops the incomplete line
            file.truncate(size)
        raise OSError(error.errno, f"cannot write {file.name}: {error.strerror}") from None
