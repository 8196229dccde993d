"""One physical line of a CSV file: its RFC 4180 fields, its first fault, and the texts that explain it.

:func:`split_line` is the byte-by-byte reading of one line that :mod:`clientml_de.csv_structure` applies to
the header and to the lines its vectorised scan finds malformed, to say what is wrong and where; the
reasons name the fault, the field (number and header name) and the byte offset in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clientml_de.encoding import check_text, text_start
from clientml_de.errors import SourceError

QUOTE, COMMA = 0x22, 0x2C
# The longest line of a header, and of a record kept with its text (a longer one is located by bytes).
MAX_RECORD_BYTES = 64 << 20


@dataclass(frozen=True)
class LineFault:
    """The first RFC 4180 fault of one physical line.

    Attributes:
        kind: ``stray quote``, ``text after closing quote``, ``unclosed quote`` or ``carriage return``.
        offset: where it is, in bytes from the start of the line.
        field: the 1-based field it is in.
    """

    kind: str
    offset: int
    field: int


def split_line(line: bytes) -> tuple[list[bytes], LineFault | None]:
    """Split one physical line (its line end removed) into its RFC 4180 fields, stopping at the first fault.

    Returns the fields read up to the fault and the fault (``None`` for a well-formed line). A well-formed
    line of ``n`` commas outside quotes has ``n + 1`` fields; an empty line has one empty field.
    """
    fields: list[bytes] = []
    at, number, size = 0, 1, len(line)
    while True:
        if at < size and line[at] == QUOTE:
            value, after = bytearray(), at + 1
            while True:
                close = line.find(b'"', after)
                if close < 0:
                    return fields, LineFault("unclosed quote", at, number)
                value += line[after:close]
                if line[close + 1 : close + 2] != b'"':
                    break
                value += b'"'
                after = close + 2
            end = close + 1
            if end < size and line[end] != COMMA:
                return fields, LineFault("text after closing quote", end, number)
            fields.append(bytes(value))
        else:
            comma = line.find(b",", at)
            end = size if comma < 0 else comma
            text = line[at:end]
            for kind, byte in (("stray quote", b'"'), ("carriage return", b"\r")):
                if (inner := text.find(byte)) >= 0:
                    return fields, LineFault(kind, at + inner, number)
            fields.append(text)
        if end >= size:
            return fields, None
        at, number = end + 1, number + 1


@dataclass(frozen=True)
class Header:
    """The header line of a source file.

    Attributes:
        names: the field names, decoded and stripped of surrounding spaces, in file order.
        text_start: byte offset of the header's first byte (3 after a UTF-8 byte-order mark, else 0).
        data_start: byte offset just past the header's line end.
    """

    names: tuple[str, ...]
    text_start: int
    data_start: int


def read_header_line(path: Path) -> Header:
    """Read and check the header line of ``path`` (one physical line, RFC 4180 fields, UTF-8).

    Raises:
        SourceError: the file is missing or empty, not UTF-8 (:mod:`clientml_de.encoding`), its first line
            is blank or malformed (a header name cannot span lines), or longer than :data:`MAX_RECORD_BYTES`.
    """
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    with path.open("rb") as handle:
        head = handle.read(4)
        start = text_start(path, head)
        handle.seek(start)
        line = handle.readline(MAX_RECORD_BYTES + 1)
    if not line:
        raise SourceError(f"{path}: empty file, expected a CSV header row")
    if len(line) > MAX_RECORD_BYTES:
        raise SourceError(f"{path}: line 1 (the header) is longer than {MAX_RECORD_BYTES} bytes; is it a CSV file?")
    data = np.frombuffer(line, dtype=np.uint8)
    check_text(path, data, start, lambda _offset: 1)
    body = line[:-1].removesuffix(b"\r") if line.endswith(b"\n") else line
    if not body.strip():
        raise SourceError(f"{path}: line 1 is blank, expected a CSV header row")
    fields, fault = split_line(body)
    if fault is not None:
        names = [value.decode().strip() for value in fields]
        raise SourceError(f"{path}: line 1 (the header): {describe_fault(fault, start, names)}")
    return Header(tuple(value.decode().strip() for value in fields), start, start + len(line))


def describe_fault(fault: LineFault, line_start: int, names: list[str] | tuple[str, ...]) -> str:
    """The reason text of a malformed line: the fault, the field (number and header name), the byte offset."""
    where = field_label(fault.field, names)
    at = f"byte offset {line_start + fault.offset}"
    match fault.kind:
        case "unclosed quote":
            return (
                f"unclosed quote: the quote opening {where} at {at} is not closed on this line "
                "(the lines after it are read as records of their own)"
            )
        case "stray quote":
            return f"stray quote in {where} at {at}: a quote may only enclose a whole field (RFC 4180)"
        case "text after closing quote":
            return f"text after the closing quote of {where} at {at} (RFC 4180: a quoted field ends at a comma)"
        case _:
            return f"carriage return without a line feed in {where} at {at} (a line ends with LF or CR LF)"


def field_label(number: int, names: list[str] | tuple[str, ...]) -> str:
    """``field 3 (sale_date)``: a 1-based field number and its header name, if the header has one."""
    name = names[number - 1] if number <= len(names) else ""
    return f"field {number} ({name})" if name else f"field {number}"


def field_count_reason(fields: list[bytes], names: list[str] | tuple[str, ...]) -> str:
    """The reason text of a line whose fields (as :func:`split_line` read them) differ in number from the
    header's ``names``, with a hint when a trailing comma on the line or on the header explains it."""
    count, expected = len(fields), len(names)
    if fields == [b""]:
        return f"blank line: fewer fields than the header (1, where the header has {expected})"
    side = "more" if count > expected else "fewer"
    reason = f"wrong number of fields: {side} fields than the header ({count}, where the header has {expected})"
    if count == expected + 1 and fields[-1] == b"":
        reason += "; the line ends with a comma"
    elif count == expected - 1 and not names[-1]:
        reason += "; the header ends with a comma (its last column has no name)"
    return reason
