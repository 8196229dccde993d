"""Property-based fuzzing of the loader (Hypothesis, seeded): a small valid pair of files, randomly broken.

Edits: inserted or deleted quotes, commas, line breaks, carriage returns, bytes that are not UTF-8, NUL
bytes and byte-order marks; empty, repeated or recased header names; huge, fractional or exponent numbers.
Whatever the edits, each load either fails with an error that starts with the file's name and leaves the
tables as they were, or reports ``rows_read`` equal to the file's records (by an independent reading of
the rules: :func:`reference_reading`) with loaded + quarantined + duplicates = rows_read. No message from
inside an engine reaches the user, neither in an error nor in a quarantine reason.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clientml_de import csv_structure
from clientml_de.config import DatasetConfig
from clientml_de.contract import TableSpec
from clientml_de.load import load_source
from clientml_de.validate import SourceError
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, GOOD_SALES, SALES_HEADER, csv_bytes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

CONFIG = DatasetConfig()
LF, CR, QUOTE, COMMA = 0x0A, 0x0D, 0x22, 0x2C
BOM = b"\xef\xbb\xbf"
ENGINE_WORDS = re.compile(
    r"Binder Error|Conversion Error|Invalid Input Error|Parser Error|Catalog Error|IO Error|duckdb|struct_pack|"
    r"Traceback|psycopg|Exception",
    re.IGNORECASE,
)
CLIENTS = csv_bytes(CLIENT_HEADER, GOOD_CLIENTS)
SALES = csv_bytes(SALES_HEADER, GOOD_SALES) + b's6,c3,2023-03-03,"garden, ""outdoor""",2,4.5,0.2,online\r\n'


def _fields(record: bytes) -> tuple[int, str]:
    """Read one record the RFC 4180 way, byte by byte: (its field count, ``ok`` / ``open`` / ``bad``)."""
    count, state = 1, "start"
    for byte in record:
        if state == "quoted":
            state = "closed" if byte == QUOTE else "quoted"
        elif state == "closed" and byte == QUOTE:
            state = "quoted"
        elif byte == COMMA:
            count, state = count + 1, "start"
        elif state == "closed" or byte == CR or (byte == QUOTE and state == "plain"):
            return count, "bad"
        else:
            state = "quoted" if byte == QUOTE else "plain"
    return count, "open" if state == "quoted" else "ok"


def reference_reading(data: bytes) -> tuple[int, list[int]] | None:
    """The records after the header and the lines quarantined, by the documented rules; ``None`` when the
    bytes are not UTF-8 text (then the load must fail)."""
    body = data.removeprefix(BOM)
    if b"\x00" in body or body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = body.split(b"\n")
    ended = [True] * (len(lines) - 1) + [False]
    if lines[-1] == b"":
        lines.pop(), ended.pop()
    columns = _fields(lines[0].removesuffix(b"\r") if ended[0] else lines[0])[0] if lines else 0
    records, bad, first = 0, [], 1
    while first < len(lines):
        last = first
        while True:
            record = b"\n".join(lines[first : last + 1])
            count, state = _fields(record.removesuffix(b"\r") if ended[last] else record)
            if state != "open" or last + 1 == len(lines):
                break
            last += 1
        records += 1
        if state == "ok" and count == columns:
            first = last + 1
        else:
            bad.append(first + 1)
            first += 1
    return records, bad


# What an edit inserts, deletes or rewrites.
INSERTS = [b'"', b'""', b",", b"\n", b"\r\n", b"\r", b"\xe9", b"\xff", b"\xc3", b"\x00", BOM, b'",', b' "x"']
NUMBERS = [b"1e33", b"99999999999999999999", b"1e400", b"2.5", b"1e3", b"2.0", b"-1", b"nan", b"1e16"]
HEADER_EDITS = ["empty name", "repeated name", "recased name", "trailing comma", "byte-order mark"]
EDIT = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(INSERTS)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 3)),
    st.tuples(st.just("header"), st.floats(0, 1), st.sampled_from(HEADER_EDITS)),
    st.tuples(st.just("number"), st.floats(0, 1), st.sampled_from(NUMBERS)),
)


def _edit(data: bytes, edit: tuple[str, float, Any]) -> bytes:
    kind, where, what = edit
    at = int(where * len(data))
    if kind == "insert":
        return data[:at] + what + data[at:]
    if kind == "delete":
        return data[:at] + data[at + what :]
    if kind == "number":
        numbers = list(re.finditer(rb"(?<![\w.])\d+(\.\d+)?(?![\w.])", data))
        hit = numbers[min(int(where * len(numbers)), len(numbers) - 1)] if numbers else None
        return data[: hit.start()] + what + data[hit.end() :] if hit else data
    header, _, rest = data.partition(b"\n")
    names = header.split(b",")
    index = min(int(where * len(names)), len(names) - 1)
    if what == "empty name":
        names[index] = b""
    elif what == "repeated name":
        names[index] = names[(index + 1) % len(names)]
    elif what == "recased name":
        names[index] = names[index].upper()
    elif what == "trailing comma":
        names.append(b"")
    else:
        return BOM + data
    return b",".join(names) + b"\n" + rest


def _snapshot(warehouse: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(map(tuple, warehouse.table(table).to_pandas().astype(str).values))
        for table in ("clients", "sales", "rejected_rows", "load_runs")
        if warehouse.has_table(table)
    }


def _check_load(warehouse: Warehouse, path: Path, data: bytes, spec: TableSpec) -> str:
    """Load ``data`` from ``path`` and check the invariants of the module docstring; say what happened."""
    path.write_bytes(data)
    expected = reference_reading(data)
    before = _snapshot(warehouse)
    try:
        summary = load_source(str(path), spec, warehouse)
    except SourceError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert not ENGINE_WORDS.search(message.removeprefix(str(path))), message
        assert _snapshot(warehouse) == before
        if expected is not None:  # text: only a header problem fails it
            assert "not a UTF-8 text file" not in message, message
        return f"{spec.table} failed: {message.removeprefix(f'{path}: ')[:24]}"
    assert expected is not None, "bytes that are not UTF-8 text were loaded"
    records, bad_lines = expected
    assert summary.rows_read == records
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected + summary.duplicates
    rejected = warehouse.table("rejected_rows").to_pandas()
    rejected = rejected[rejected.source_table == spec.table]
    assert len(rejected) == summary.rows_rejected
    assert set(bad_lines) <= set(rejected.line_number)
    for reason in rejected.reason:
        assert not ENGINE_WORDS.search(reason), reason
    return f"{spec.table} loaded, {'some' if summary.rows_rejected else 'none'} quarantined"


@contextlib.contextmanager
def _window(size: int | None) -> Iterator[None]:
    default = csv_structure.WINDOW_BYTES
    csv_structure.WINDOW_BYTES = size or default
    try:
        yield
    finally:
        csv_structure.WINDOW_BYTES = default


@pytest.fixture(scope="module")
def fuzz_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    warehouse = connect("duckdb:///:memory:")
    for name, data, spec in (("clients", CLIENTS, CONFIG.clients_spec()), ("sales", SALES, CONFIG.sales_spec())):
        _check_load(warehouse, folder / f"{name}.csv", data, spec)
    yield warehouse, folder
    warehouse.close()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    target=st.sampled_from(["clients", "sales", "both"]),
    edits=st.lists(EDIT, min_size=1, max_size=4),
    window=st.sampled_from([None, None, 5, 64]),
)
def test_broken_files_fail_cleanly_or_account_for_every_record(
    fuzz_warehouse: tuple[Warehouse, Path], target: str, edits: list[tuple[str, float, Any]], window: int | None
) -> None:
    warehouse, folder = fuzz_warehouse
    clients, sales = CLIENTS, SALES
    for edit in edits:
        if target in ("clients", "both"):
            clients = _edit(clients, edit)
        if target in ("sales", "both"):
            sales = _edit(sales, edit)
    with _window(window):
        event(_check_load(warehouse, folder / "clients.csv", clients, CONFIG.clients_spec()))
        event(_check_load(warehouse, folder / "sales.csv", sales, CONFIG.sales_spec()))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"b", b",", b'"', b"\n", b"\r\n", b"\r", b'""', b"x,y", b" "]), max_size=80),
    columns=st.integers(1, 4),
    window=st.sampled_from([None, 3, 7, 16]),
)
def test_structure_scan_matches_the_reference_reading(
    tmp_path_factory: pytest.TempPathFactory, data: list[bytes], columns: int, window: int | None
) -> None:
    """The vectorised scan, over windows of any size, finds the records and bad lines the rules say."""
    content = b",".join(b"h%d" % n for n in range(columns)) + b"\n" + b"".join(data)
    path = tmp_path_factory.getbasetemp() / "scan.csv"
    path.write_bytes(content)
    sink = _Collected()
    with _window(window):
        structure = csv_structure.scan(path, sink)
    expected = reference_reading(content)
    assert expected is not None
    assert (structure.records, [bad.line for bad in sink.bad]) == expected
    assert structure.good_records == structure.records - len(sink.bad) == len(sink.starts)
    # In the file without its quarantined lines the good records are contiguous: they start after the header.
    kept = structure.data_start + sum(len(r) for r in _records_of(content, structure, sink))
    assert sink.starts == sorted(sink.starts)
    assert all(structure.data_start <= start < kept for start in sink.starts)


class _Collected:
    """A structure sink that keeps everything in lists (the loader's streams to DuckDB)."""

    def __init__(self) -> None:
        self.bad: list[csv_structure.BadRecord] = []
        self.starts: list[int] = []

    def bad_record(self, record: csv_structure.BadRecord) -> None:
        self.bad.append(record)

    def line_offsets(self, ordinals: Any, offsets: Any) -> None:
        assert len(ordinals) == len(offsets)

    def record_starts(self, starts: Any) -> None:
        self.starts.extend(int(s) for s in starts)


def _records_of(content: bytes, structure: csv_structure.FileStructure, sink: _Collected) -> list[bytes]:
    """The data bytes of the file without its quarantined lines."""
    kept, at = [], structure.data_start
    for bad in sink.bad:
        kept.append(content[at : bad.start])
        at = bad.end
    return [*kept, content[at:]]
