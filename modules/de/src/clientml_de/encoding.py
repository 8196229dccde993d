"""Source files are UTF-8 text: one rule for every byte of the file, wherever it is.

The rule (``modules/de/README.md``, "Source files"): a source file is UTF-8 (RFC 3629) from its first byte
to its last. A UTF-8 byte-order mark (``EF BB BF``) at the very start is skipped. A UTF-16 or UTF-32 mark,
any byte sequence that is not UTF-8, and a NUL byte fail the file before anything is written, with an error
naming the file, the line, the byte offset and the encoding expected; it is the same check and the same
message whether the byte is in the first kilobytes or far down the file. Byte offsets are 0-based from the
start of the file (a byte-order mark counts); lines are 1-based (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from clientml_de.errors import SourceError

UTF8_BOM = b"\xef\xbb\xbf"
# Longest first: the UTF-32 little-endian mark starts with the UTF-16 one.
_OTHER_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
_HIGH_BIT = 0x80


def text_start(path: Path | str, head: bytes) -> int:
    """Offset of the first byte of text: 3 after a UTF-8 byte-order mark, else 0.

    ``head`` is the start of the file (4 bytes are enough).

    Raises:
        SourceError: the file starts with a UTF-16 or UTF-32 byte-order mark.
    """
    if head.startswith(UTF8_BOM):
        return len(UTF8_BOM)
    for mark, encoding in _OTHER_MARKS:
        if head.startswith(mark):
            shown = " ".join(f"0x{byte:02X}" for byte in mark)
            raise SourceError(
                f"{path}: not a UTF-8 text file: it starts with a {encoding} byte-order mark ({shown}); "
                "expected UTF-8 (save the file as UTF-8, e.g. 'CSV UTF-8')"
            )
    return 0


def check_text(path: Path | str, data: np.ndarray, offset: int, line_at: Callable[[int], int]) -> None:
    """Fail on the first byte of ``data`` that is not UTF-8 or is NUL.

    ``data`` is a uint8 array of the file's bytes from byte ``offset`` on; it must not cut a line (it ends
    just after a line feed, or at the end of the file), so no UTF-8 sequence is split. ``line_at(o)`` gives
    the line number of file offset ``o``. A pure ASCII chunk costs two vectorised passes (min and max).

    Raises:
        SourceError: names the file, the line, the byte offset and the bytes, and says UTF-8 was expected.
    """
    if data.size == 0:
        return
    first_nul = int(np.argmin(data)) if int(data.min()) == 0 else None
    bad_utf8: UnicodeDecodeError | None = None
    if int(data.max()) >= _HIGH_BIT:
        try:
            data.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_utf8 = exc
    if bad_utf8 is not None and (first_nul is None or bad_utf8.start < first_nul):
        at = offset + bad_utf8.start
        shown = " ".join(f"0x{byte:02X}" for byte in bad_utf8.object[bad_utf8.start : bad_utf8.end])
        what = "bytes {} are" if bad_utf8.end - bad_utf8.start > 1 else "byte {} is"
        raise SourceError(
            f"{path}: not a UTF-8 text file: line {line_at(at)}, byte offset {at}: {what.format(shown)} "
            f"not valid UTF-8 ({bad_utf8.reason}); expected UTF-8 (save the file as UTF-8, e.g. 'CSV UTF-8')"
        )
    if first_nul is not None:
        at = offset + first_nul
        raise SourceError(
            f"{path}: not a UTF-8 text file: line {line_at(at)}, byte offset {at}: a NUL byte (0x00), which "
            "UTF-8 text has none of (is the file UTF-16 or binary?); expected UTF-8"
        )
