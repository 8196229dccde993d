"""Files that cannot be loaded fail with a clear error and leave the previous good tables untouched;
a load interrupted midway leaves no partial table visible."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from clientml_de import warehouse as warehouse_module
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.validate import SourceError
from clientml_de.warehouse import Warehouse, connect
from de_support import CLIENT_HEADER, SALES_HEADER, write_csv

CONFIG = DatasetConfig()


def _snapshot(warehouse: Warehouse) -> dict[str, Any]:
    """The content of the loaded tables, comparable with == (NaN and NULL become None)."""
    snapshot = {}
    for table in ("clients", "sales", "rejected_rows"):
        frame = warehouse.table(table).to_pandas()
        frame = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
        snapshot[table] = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return snapshot


def _load_good(warehouse: Warehouse, sources: tuple[Path, Path]) -> None:
    load_source(str(sources[0]), CONFIG.clients_spec(), warehouse)
    load_source(str(sources[1]), CONFIG.sales_spec(), warehouse)


def _empty(path: Path) -> Path:
    path.write_text("")
    return path


def _not_csv(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00")
    return path


BAD_FILES = [
    ("missing file", lambda p: p / "absent.csv", "file not found"),
    ("empty file", lambda p: _empty(p / "empty.csv"), "empty file"),
    ("binary file", lambda p: _not_csv(p / "image.csv"), "not a UTF-8 text file"),
    (
        "missing required column",
        lambda p: write_csv(p / "c.csv", [c for c in CLIENT_HEADER if c != "signup_date"], [["x"] * 9]),
        "required column(s) missing: signup_date",
    ),
    ("duplicated header", lambda p: write_csv(p / "c.csv", [*CLIENT_HEADER, "region"], []), "more than once"),
]


@pytest.mark.parametrize(("case", "make", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_unloadable_file_fails_naming_it_and_keeps_previous_tables(
    tmp_path: Path, duckdb_warehouse: Warehouse, sources: tuple[Path, Path], case: str, make: Any, message: str
) -> None:
    _load_good(duckdb_warehouse, sources)
    before = _snapshot(duckdb_warehouse)
    bad = make(tmp_path)

    with pytest.raises(SourceError) as failure:
        load_source(str(bad), CONFIG.clients_spec(), duckdb_warehouse)

    assert str(bad) in str(failure.value) and message in str(failure.value), case
    assert _snapshot(duckdb_warehouse) == before


def test_sales_before_clients_fails_clearly(duckdb_warehouse: Warehouse, sources: tuple[Path, Path]) -> None:
    with pytest.raises(SourceError, match="load clients first"):
        load_source(str(sources[1]), CONFIG.sales_spec(), duckdb_warehouse)


def test_failed_postgres_load_keeps_previous_tables(
    tmp_path: Path, postgres_url: str, sources: tuple[Path, Path]
) -> None:
    warehouse = connect(postgres_url)
    _load_good(warehouse, sources)
    before = _snapshot(warehouse)
    bad = write_csv(tmp_path / "bad.csv", [c for c in SALES_HEADER if c != "quantity"], [])
    with pytest.raises(SourceError, match="quantity"):
        load_source(str(bad), CONFIG.sales_spec(), warehouse)
    assert _snapshot(warehouse) == before
    warehouse.close()


def test_connection_dropped_during_postgres_copy_leaves_old_table(
    tmp_path: Path, postgres_url: str, sources: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = connect(postgres_url)
    _load_good(warehouse, sources)
    before = _snapshot(warehouse)
    bigger = write_csv(
        tmp_path / "sales2.csv",
        SALES_HEADER,
        [[f"n{i}", "c1", "2023-01-01", "home", "1", "1", "", ""] for i in range(5_000)],
    )
    real_copy = warehouse_module._copy_file

    def copy_then_drop(cur: Any, statement: str, path: Path) -> None:
        # Send part of the rows, then kill this session's backend from another connection.
        with cur.copy(statement) as copy, path.open("rb") as handle:
            copy.write(handle.read(4096))
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [cur.connection.info.backend_pid])
            copy.write(handle.read())

    monkeypatch.setattr(warehouse_module, "_copy_file", copy_then_drop)
    with pytest.raises(psycopg.OperationalError):
        load_source(str(bigger), CONFIG.sales_spec(), warehouse)
    monkeypatch.setattr(warehouse_module, "_copy_file", real_copy)

    assert _snapshot(warehouse) == before
    with psycopg.connect(postgres_url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "sales__loading" not in tables
    warehouse.close()


KILL_MIDWAY = textwrap.dedent(
    """
    import os, signal, sys
    from clientml_de.config import DatasetConfig
    from clientml_de.load import load_source
    from clientml_de.warehouse import connect

    class Dying:
        # Passes everything to the real connection, and kills the process right after the new table
        # has been written inside the still-open transaction.
        def __init__(self, raw):
            self.raw = raw

        def execute(self, sql, *args):
            result = self.raw.execute(sql, *args)
            if sql.startswith("DELETE FROM rejected_rows"):
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        def __getattr__(self, name):
            return getattr(self.raw, name)

    warehouse = connect(sys.argv[1])
    dying = Dying(warehouse.scratch())
    warehouse.scratch = lambda: dying
    load_source(sys.argv[2], DatasetConfig().sales_spec(), warehouse)
    """
)


@pytest.mark.slow
def test_process_killed_during_duckdb_publish_leaves_old_table(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    url = f"duckdb:///{tmp_path / 'killed.duckdb'}"
    warehouse = connect(url)
    _load_good(warehouse, sources)
    before = _snapshot(warehouse)
    warehouse.close()
    bigger = write_csv(
        tmp_path / "sales2.csv",
        SALES_HEADER,
        [[f"n{i}", "c1", "2023-01-01", "home", "1", "1", "", ""] for i in range(5_000)],
    )

    script = tmp_path / "kill_midway.py"
    script.write_text(KILL_MIDWAY)
    result = subprocess.run(
        [sys.executable, str(script), url, str(bigger)], capture_output=True, text=True, check=False
    )
    assert result.returncode == -9, result.stderr

    reopened = connect(url)
    assert _snapshot(reopened) == before
    reopened.close()
