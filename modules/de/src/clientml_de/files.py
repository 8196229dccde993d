"""Files written whole or not at all: every module that publishes a file (CSV outputs, pointers) uses this."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file at a temporary name next to ``path``, fsynced and moved onto ``path`` only on success.

    Readers see the old file or the new one, never a part. On any exception the temporary file is removed
    and ``path`` is left as it was; ``OSError`` from creating, writing or moving the file propagates. The
    parent directory is created when missing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Not mkstemp: its 0600 mode would stick to the final file; this way the umask decides, as for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
