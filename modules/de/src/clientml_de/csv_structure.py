"""Where each record of a source CSV file begins and ends, found the RFC 4180 way before any row is parsed.

The rules (``modules/de/README.md``, "Source files"):

- Fields are separated by commas; a record ends at a line feed (LF) or CR LF outside quotes, and a file
  may mix the two; the last record may lack a line end. A field may be enclosed in double quotes, inside
  which ``""`` is one quote and commas and line breaks are data (RFC 4180, section 2).
- A record is malformed when a quote stands inside an unquoted field, text follows a closing quote, a
  carriage return is not followed by a line feed outside quotes, a quote is never closed, its field count
  differs from the header's, or it is longer than :data:`MAX_RECORD_BYTES`.
- A malformed record on one physical line is quarantined whole. A malformed record that would span
  several lines (an unclosed quote) is cut at its first line end: that one line is quarantined and reading
  resumes at the next line as a new record, so a stray quote never absorbs the lines after it.
- ``rows_read`` is the number of records after the header, so every line is accounted for: it is a
  record of its own, part of a legitimately quoted multi-line record, or a quarantined line. A blank line
  is a record with one empty field (quarantined unless the header has one column).

The scan is vectorised with NumPy over windows of the memory-mapped file: the parity of the quotes before a
byte tells whether it is inside a quoted field, so record ends, delimiters and misplaced quotes come out
of a few array operations per window, and only the malformed lines are looked at byte by byte (in
:func:`clientml_de.csv_line.split_line`, which also explains them). The file's bytes are checked as
UTF-8 in the same pass (:mod:`clientml_de.encoding`).

What the scan finds goes to a :class:`StructureSink` as it is found (the quarantined lines, the line
offsets, where each well-formed record starts), never into lists that grow with the file: memory stays
within a few windows whatever the file size, and the pages of the map already scanned are given back.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from clientml_de.csv_line import (
    MAX_RECORD_BYTES,
    Header,
    describe_fault,
    field_count_reason,
    read_header_line,
    split_line,
)
from clientml_de.encoding import check_text

LF, CR, QUOTE, COMMA = 0x0A, 0x0D, 0x22, 0x2C
# Bytes examined per step; a window grows (doubling) only while one record does not fit, up to
# MAX_RECORD_BYTES (so it must not exceed it): a record that still does not fit is quarantined by its bytes.
WINDOW_BYTES = 16 << 20
_NO_OFFSET = -(1 << 62)


@dataclass(frozen=True)
class BadRecord:
    """A quarantined line: where it is and why.

    Attributes:
        line: its 1-based line number in the file (the header is line 1).
        start: byte offset of its first byte in the file.
        end: byte offset just past its line end (the end of the file for a last line without one).
        reason: what is malformed, naming the field and byte offset where it applies.
        text: the line as read, without its line end; ``None`` when longer than :data:`MAX_RECORD_BYTES`
            (``start`` and ``end`` then locate it).
    """

    line: int
    start: int
    end: int
    reason: str
    text: str | None


class StructureSink(Protocol):
    """Where :func:`scan` sends what it finds, in file order, as it finds it."""

    def bad_record(self, record: BadRecord) -> None:
        """A quarantined line."""

    def line_offsets(self, ordinals: np.ndarray, offsets: np.ndarray) -> None:
        """``(ordinal, offset)`` pairs, ascending (int64 arrays): the well-formed record number ``k`` (1-based,
        counting only those) starts on line ``k + offset`` of the last pair whose ordinal is ``<= k``."""

    def record_starts(self, starts: np.ndarray) -> None:
        """Where the next well-formed records start (int64 array), as byte offsets in the file *without its
        quarantined lines* (the file the CSV reader parses): there, record ``k`` spans ``[start k, start k+1)``,
        the last one up to the end of that file."""


@dataclass(frozen=True)
class FileStructure:
    """The records of one source file, as :func:`scan` found them (the details went to its sink).

    Attributes:
        path: the file scanned.
        header: its header line.
        records: the number of records after the header: ``rows_read``.
        bad_records: how many of them were quarantined.
        longest_record: the length in bytes of the longest well-formed record, line end included.
    """

    path: Path
    header: Header
    records: int
    bad_records: int
    longest_record: int

    @property
    def data_start(self) -> int:
        """Byte offset of the first data record (after the header line)."""
        return self.header.data_start

    @property
    def good_records(self) -> int:
        """The well-formed records: the rows the CSV reader parses."""
        return self.records - self.bad_records


class _Window:
    """One window of the file: where its quotes, line feeds, commas and stray carriage returns are."""

    def __init__(self, data: np.ndarray, at_eof: bool) -> None:
        self.data, self.size, self.at_eof = data, data.size, at_eof
        self.quotes = np.flatnonzero(data == QUOTE)
        self.lfs = np.flatnonzero(data == LF)
        self.commas = np.flatnonzero(data == COMMA)
        crs = np.flatnonzero(data == CR)
        self.lone_crs = crs[self._following(crs) != LF]
        # A quote opens a field only at its start (after a comma, a line end or the window start, which is
        # always a record start), or it is the second of a "" pair; it closes one only before a comma, a
        # line end or the next quote of a pair.
        # (A quote at the window's start reads itself as the byte before, a quote: it opens, rightly.)
        before = np.take(data, self.quotes - 1, mode="clip")
        after = self._following(self.quotes)
        self.opens_ok = (before == COMMA) | (before == LF) | (before == QUOTE)
        self.closes_ok = (after == COMMA) | (after == LF) | (after == QUOTE) | (after == -1)
        at_cr = np.flatnonzero(after == CR)
        self.closes_ok[at_cr] = self._following(self.quotes[at_cr] + 1) == LF
        self._records: dict[int, _Records] = {}
        self._parity: np.ndarray | None = None

    def _following(self, positions: np.ndarray) -> np.ndarray:
        """The byte after each of the ascending ``positions``, -1 past the end of the window."""
        out = np.take(self.data, positions + 1, mode="clip").astype(np.int16)
        out[np.searchsorted(positions, self.size - 1) :] = -1
        return out

    def quotes_before(self, positions: np.ndarray | int) -> np.ndarray:
        return np.searchsorted(self.quotes, positions)

    def parity(self, positions: np.ndarray) -> np.ndarray:
        """1 where a byte that is not a quote is preceded by an odd number of quotes in the window, else 0."""
        if self.quotes.size == 0:
            return np.zeros(np.size(positions), dtype=np.uint8)
        if self._parity is None:  # one pass: the running XOR of "is a quote" (linear, unlike searches)
            self._parity = np.bitwise_xor.accumulate(self.data == QUOTE, dtype=np.uint8)
        return self._parity[positions]

    def records(self, base: int, columns: int) -> _Records:
        """The window's records for a quote parity ``base`` behind the reading position (computed once)."""
        if base not in self._records:
            self._records[base] = _Records(self, base, columns)
        return self._records[base]


class _Records:
    """The records of a window when reading starts with ``base`` quotes' parity (0 or 1) behind it.

    Reading restarts mid-window after an unclosed quote, where the parity of the quotes already passed may
    be odd: both parities are computed once per window, so every restart costs a binary search. Arrays of
    window positions: ``ends`` (the line feeds that end records), ``delims`` (the commas outside quotes),
    ``faults`` (misplaced quotes and carriage returns), and per record ``faulty`` and ``restarts`` (the
    indices of the malformed records that span several lines).
    """

    def __init__(self, w: _Window, base: int, columns: int) -> None:
        self.base, self.columns = base, columns
        if w.quotes.size == 0:  # the common case: every line is a record, every comma a delimiter
            self.ends, self.delims, self.faults = w.lfs, w.commas, w.lone_crs
        else:
            self.ends = w.lfs[w.parity(w.lfs) == base]
            self.delims = w.commas[w.parity(w.commas) == base]
            opening = (np.arange(w.quotes.size) & 1) == base
            bad_quotes = w.quotes[np.where(opening, ~w.opens_ok, ~w.closes_ok)]
            self.faults = np.union1d(bad_quotes, w.lone_crs[w.parity(w.lone_crs) == base])
        fields = np.diff(np.searchsorted(self.delims, self.ends), prepend=0) + 1
        self.faulty = fields != columns
        holder = np.searchsorted(self.ends, self.faults)
        self.faulty[holder[holder < self.ends.size]] = True
        if w.quotes.size == 0:
            multiline = np.zeros(self.ends.size, dtype=bool)
        else:
            multiline = np.diff(np.searchsorted(w.lfs, self.ends, side="right"), prepend=0) > 1
        self.restarts = np.flatnonzero(self.faulty & multiline)

    def tail_is_good(self, w: _Window, start: int) -> bool:
        """Whether the last record, from ``start`` to the end of the file (no line end), is well-formed."""
        closed = (w.quotes.size - int(w.quotes_before(start))) % 2 == 0
        fields = self.delims.size - int(np.searchsorted(self.delims, start)) + 1
        return closed and fields == self.columns and not (self.faults >= start).any()


class _Scan:
    """The state of one scan: counts, quarantined lines and line offsets so far."""

    def __init__(
        self, path: Path, header: Header, mapped: np.ndarray, sink: StructureSink, release: Callable[[int], None]
    ) -> None:
        self.path, self.header, self.mapped = path, header, mapped
        self.sink, self.release = sink, release
        self.names = header.names
        self.columns = len(header.names)
        self.records = self.good = self.longest = self.bad = 0
        self.removed = 0  # bytes of the quarantined lines so far: the shift of offsets in the file without them
        self.offset = _NO_OFFSET
        self.base_line = 1  # lines before the window: the header's
        self.checked = header.data_start

    def run(self) -> FileStructure:
        at, size = self.header.data_start, self.mapped.size
        while at < size:
            width = WINDOW_BYTES
            while True:
                end = min(at + width, size)
                window = _Window(self.mapped[at:end], at_eof=end == size)
                self._check_text(window, at)
                consumed = self._walk(window, at)
                if consumed or window.at_eof:
                    break
                if width >= MAX_RECORD_BYTES:
                    consumed = self._oversized(window, at)
                    break
                width *= 2
            self.base_line += int(np.searchsorted(window.lfs, consumed))
            at += consumed
            self.release(at)
        return FileStructure(self.path, self.header, self.records, self.bad, self.longest)

    def _line_at(self, window: _Window, at: int) -> Callable[[int], int]:
        return lambda offset: self.base_line + int(np.searchsorted(window.lfs, offset - at)) + 1

    def _check_text(self, window: _Window, at: int) -> None:
        """UTF-8 check of the window's bytes not checked yet, up to its last line end (or the file's end)."""
        upto = window.size if window.at_eof else (int(window.lfs[-1]) + 1 if window.lfs.size else 0)
        if at + upto > self.checked:
            chunk = window.data[self.checked - at : upto]
            check_text(self.path, chunk, self.checked, self._line_at(window, at))
            self.checked = at + upto

    def _walk(self, window: _Window, at: int) -> int:
        """Account for the records of the window; return how many of its bytes were consumed."""
        pos, base = 0, 0
        while True:
            recs = window.records(base, self.columns)
            first = int(np.searchsorted(recs.ends, pos))
            k = int(np.searchsorted(recs.restarts, first))
            stop = int(recs.restarts[k]) if k < recs.restarts.size else recs.ends.size
            if stop > first:
                self._emit(window, at, recs, (first, stop), pos)
            if stop < recs.ends.size:
                start = pos if stop == first else int(recs.ends[stop - 1]) + 1
                pos = self._first_line_bad(window, at, start)
                base = int(window.quotes_before(pos)) & 1
                continue
            tail = int(recs.ends[-1]) + 1 if stop > first else pos
            if not window.at_eof or tail == window.size:
                return tail
            if recs.tail_is_good(window, tail):
                span = (np.array([tail]), np.array([window.size - 1]))
                self._emit_good(window, at, span, np.array([self.removed]), all_single=False)
                self.records += 1
                return window.size
            if np.searchsorted(window.lfs, tail) < window.lfs.size:  # a multi-line tail: cut at its first line
                pos = self._first_line_bad(window, at, tail)
                base = int(window.quotes_before(pos)) & 1
                continue
            self.records += 1
            self._bad_line(window, at, tail, window.size)
            return window.size

    def _emit(self, window: _Window, at: int, recs: _Records, span: tuple[int, int], pos: int) -> None:
        """Account for records ``span[0]..span[1]-1`` of ``recs``, the first starting at ``pos``: none of them
        needs a restart."""
        first, stop = span
        ends = recs.ends[first:stop]
        starts = np.empty_like(ends)
        starts[0] = pos
        starts[1:] = ends[:-1] + 1
        faulty = recs.faulty[first:stop]
        self.records += ends.size
        # The bytes quarantined before each record (the faulty ones end at a line feed: their length + 1).
        dropped = np.where(faulty, ends - starts + 1, 0)
        removed = self.removed + np.cumsum(dropped) - dropped
        for index in np.flatnonzero(faulty):
            self._bad_line(window, at, int(starts[index]), int(ends[index]))
        lines = int(np.searchsorted(window.lfs, ends[-1], side="right") - np.searchsorted(window.lfs, pos))
        single = not faulty.any() and lines == ends.size
        self._emit_good(window, at, (starts[~faulty], ends[~faulty]), removed[~faulty], all_single=single)

    def _emit_good(
        self, window: _Window, at: int, span: tuple[np.ndarray, np.ndarray], removed: np.ndarray, all_single: bool
    ) -> None:
        """Send the line offsets and starts of the well-formed records ``span`` (window positions of their first
        and last bytes); ``removed`` is the quarantined bytes before each."""
        starts, ends = span
        if starts.size == 0:
            return
        self.sink.record_starts(at + starts - removed)
        self.longest = max(self.longest, int((ends - starts).max()) + 1)
        if all_single:  # consecutive lines: one offset for all
            offsets = np.array([self.base_line + int(np.searchsorted(window.lfs, starts[0])) + 1 - (self.good + 1)])
            changes = np.array([0]) if int(offsets[0]) != self.offset else np.array([], dtype=np.int64)
        else:
            lines = self.base_line + np.searchsorted(window.lfs, starts) + 1
            offsets = lines - (self.good + 1 + np.arange(starts.size))
            changes = np.flatnonzero(offsets != np.concatenate(([self.offset], offsets[:-1])))
        if changes.size:
            self.sink.line_offsets(self.good + 1 + changes, offsets[changes])
        self.offset = int(offsets[-1])
        self.good += starts.size

    def _first_line_bad(self, window: _Window, at: int, start: int) -> int:
        """Quarantine the first line of the multi-line record at ``start``; return where the next line starts."""
        lf = int(window.lfs[np.searchsorted(window.lfs, start)])
        self.records += 1
        self._bad_line(window, at, start, lf)
        return lf + 1

    def _bad_line(self, window: _Window, at: int, start: int, end: int) -> None:
        """Quarantine the line ``[start, end)`` of the window (``end`` is its line feed or the window's end)."""
        raw = window.data[start:end].tobytes()
        terminated = end < window.size
        body = raw.removesuffix(b"\r") if terminated else raw
        fields, fault = split_line(body)
        line_start = at + start
        if fault is not None:
            reason = describe_fault(fault, line_start, self.names)
        else:
            reason = field_count_reason(fields, self.names)
        line = self.base_line + int(np.searchsorted(window.lfs, start)) + 1
        self._quarantine(BadRecord(line, line_start, at + end + int(terminated), reason, body.decode()))

    def _quarantine(self, record: BadRecord) -> None:
        self.bad += 1
        self.removed += record.end - record.start
        self.sink.bad_record(record)

    def _oversized(self, window: _Window, at: int) -> int:
        """The record at the window's start has no end within :data:`MAX_RECORD_BYTES`: quarantine a line."""
        if window.lfs.size:  # a quote opened on the first line and not closed within the limit
            return self._first_line_bad(window, at, 0)
        found = _find_lf(self.mapped, at + window.size)
        end = found if found >= 0 else self.mapped.size
        stop = min(end + 1, self.mapped.size)
        check_text_in_chunks(self.path, self.mapped, self.checked, stop, lambda _offset: self.base_line + 1)
        self.checked = stop
        self.records += 1
        reason = (
            f"line too long: {end - at} bytes, more than the {MAX_RECORD_BYTES} bytes a record may have; "
            f"not stored: it is bytes {at} to {stop} of the file"
        )
        self._quarantine(BadRecord(self.base_line + 1, at, stop, reason, None))
        return stop - at


def check_text_in_chunks(path: Path, mapped: np.ndarray, start: int, stop: int, line_at: Callable[[int], int]) -> None:
    """:func:`~clientml_de.encoding.check_text` over ``mapped[start:stop]`` in windows cut between characters."""
    while start < stop:
        cut = min(start + WINDOW_BYTES, stop)
        while cut < stop and int(mapped[cut]) & 0xC0 == 0x80:  # a UTF-8 continuation byte: not a boundary
            cut -= 1
        check_text(path, mapped[start:cut], start, line_at)
        start = cut


def _find_lf(mapped: np.ndarray, start: int) -> int:
    """Offset of the first line feed at or after ``start``, -1 if none (scanned in windows)."""
    for chunk in range(start, mapped.size, WINDOW_BYTES):
        hits = np.flatnonzero(mapped[chunk : chunk + WINDOW_BYTES] == LF)
        if hits.size:
            return chunk + int(hits[0])
    return -1


def scan(path: Path, sink: StructureSink, header: Header | None = None) -> FileStructure:
    """Find every record of ``path`` and check its structure and encoding, without parsing fields.

    What is found goes to ``sink`` as it is found (see :class:`StructureSink`). ``header`` is the file's
    :func:`read_header_line` (read again when omitted). Memory stays within a few times
    :data:`WINDOW_BYTES` whatever the file size (the map's pages are released behind the scan); the time
    is a few vectorised passes over the bytes.

    Raises:
        SourceError: the file is not UTF-8 (:func:`clientml_de.encoding.check_text`) or its header is
            unusable (:func:`read_header_line`); malformed records go to ``sink``, they are not raised.
    """
    header = header or read_header_line(path)
    if path.stat().st_size <= header.data_start:
        return FileStructure(path, header, 0, 0, 0)
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    mapped.madvise(mmap.MADV_SEQUENTIAL)

    released = 0

    def release(upto: int) -> None:
        # The scanned pages stay in the page cache, but no longer count in this process's memory.
        nonlocal released
        upto -= upto % mmap.PAGESIZE
        if upto > released:
            mapped.madvise(mmap.MADV_DONTNEED, released, upto - released)
            released = upto

    try:
        return _Scan(path, header, np.frombuffer(mapped, dtype=np.uint8), sink, release).run()
    finally:
        # After a failure, arrays over the map may live on in the traceback: the map goes with the last.
        with contextlib.suppress(BufferError):
            mapped.close()
