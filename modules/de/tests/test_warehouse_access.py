"""Concurrent access to the DuckDB warehouse file, and read-only connections on every engine.

Readers open the file read-only and close it after each read; a writer that finds the file locked waits
(bounded, logged) and then fails naming the file and the process holding it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import ibis
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.tasks import build_features
from clientml_de.warehouse import Warehouse, WarehouseError, connect

CONFIG = DatasetConfig()

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    con.execute("SELECT count(*) FROM clients").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)

# An API-like reader: open read-only, read, close, again and again, until told to stop.
POLL = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from clientml_de.warehouse import connect
    url, stop = sys.argv[1], Path(sys.argv[2])
    reads, errors = 0, []
    print("polling", flush=True)
    while not stop.exists():
        try:
            with connect(url, read_only=True, lock_timeout_s=60) as warehouse:
                warehouse.table("clients").count().to_pyarrow()
            reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.02)
    print(json.dumps({"reads": reads, "errors": errors}))
    """
)


def _load(warehouse: Warehouse, sources: tuple[Path, Path]) -> None:
    load_source(str(sources[0]), CONFIG.clients_spec(), warehouse)
    load_source(str(sources[1]), CONFIG.sales_spec(), warehouse)


@pytest.fixture
def loaded_file(tmp_path: Path, sources: tuple[Path, Path]) -> Path:
    path = tmp_path / "shared.duckdb"
    with connect(f"duckdb:///{path}") as warehouse:
        _load(warehouse, sources)
    return path


def _start(tmp_path: Path, script: str, *args: str, ready: str) -> subprocess.Popen[str]:
    program = tmp_path / f"{ready}.py"
    program.write_text(script)
    process = subprocess.Popen(
        [sys.executable, str(program), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == ready, process.stderr
    return process


@pytest.fixture
def holder(tmp_path: Path, loaded_file: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the warehouse file read-only for 2 seconds."""
    process = _start(tmp_path, HOLD, str(loaded_file), "2", ready="holding")
    yield process
    process.kill()
    process.wait()


def test_load_waits_for_a_reader_then_succeeds(
    loaded_file: Path, sources: tuple[Path, Path], holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="clientml_de.duckdb_file"),
        connect(f"duckdb:///{loaded_file}", lock_timeout_s=30) as warehouse,
    ):
        summary = load_source(str(sources[1]), CONFIG.sales_spec(), warehouse)

    assert summary.rows_loaded == 5
    assert time.monotonic() - started > 0.5
    waits = [r.getMessage() for r in caplog.records]
    assert waits and all(f"is locked by process {holder.pid} (" in w for w in waits)
    assert all(str(loaded_file) in w and "giving up after 30 s" in w for w in waits)


def test_writer_gives_up_naming_the_file_and_the_holder(
    loaded_file: Path, sources: tuple[Path, Path], holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(WarehouseError) as failure, connect(f"duckdb:///{loaded_file}", lock_timeout_s=0.5) as warehouse:
        load_source(str(sources[1]), CONFIG.sales_spec(), warehouse)

    message = str(failure.value)
    assert message.startswith(f"warehouse file {loaded_file} is locked by process {holder.pid} (")
    assert "gave up after waiting 0.5 s (CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S)" in message
    assert "IO Error" not in message and "Conflicting lock" not in message  # not DuckDB's own words


def test_loads_and_a_feature_build_succeed_while_readers_poll(
    tmp_path: Path, loaded_file: Path, sources: tuple[Path, Path]
) -> None:
    url, stop = f"duckdb:///{loaded_file}", tmp_path / "stop"
    readers = [_start(tmp_path, POLL, url, str(stop), ready="polling") for _ in range(2)]
    try:
        time.sleep(0.5)
        for _ in range(2):
            with connect(url, lock_timeout_s=30) as warehouse:
                _load(warehouse, sources)
            assert build_features(url, None)["rows"] == 3
    finally:
        stop.touch()
        outputs = [json.loads(reader.communicate(timeout=60)[0]) for reader in readers]
    for output in outputs:
        assert output["errors"] == [] and output["reads"] > 0


def test_read_only_duckdb_reads_and_refuses_writes(tmp_path: Path, loaded_file: Path) -> None:
    url = f"duckdb:///{loaded_file}"
    with connect(url, read_only=True) as first, connect(url, read_only=True) as second:
        assert first.table("clients").count().to_pyarrow().as_py() == 3
        assert second.table("sales").count().to_pyarrow().as_py() == 5
        with pytest.raises(WarehouseError, match="was opened read-only: it cannot be written"):
            first.replace_table("copy", first.table("clients"))
    with pytest.raises(WarehouseError, match=f"warehouse file {tmp_path / 'none.duckdb'} does not exist"):
        connect(f"duckdb:///{tmp_path / 'none.duckdb'}", read_only=True).table("clients")
    assert not (tmp_path / "none.duckdb").exists()


def test_read_only_postgres_reads_and_refuses_writes(postgres_url: str, sources: tuple[Path, Path]) -> None:
    with connect(postgres_url) as writer:
        _load(writer, sources)
    with connect(postgres_url, read_only=True) as reader:
        assert reader.table("clients").count().to_pyarrow().as_py() == 3
        with pytest.raises(WarehouseError, match="opened read-only"):
            reader.replace_table("copy", reader.table("clients"))
        # Lookups join an in-memory table of ids, which Ibis creates as a temporary table: allowed.
        wanted = ibis.memtable({"client_id": ["C1"]})
        assert reader.table("clients").semi_join(wanted, "client_id").count().to_pyarrow().as_py() <= 1


def test_read_only_spark_refuses_writes_before_starting_spark(tmp_path: Path) -> None:
    warehouse = connect(f"spark:///{tmp_path / 'spark'}", read_only=True)
    with pytest.raises(WarehouseError, match="opened read-only"):
        warehouse.replace_table("copy", ibis.table({"a": "int64"}, name="t"))
    assert "session" not in warehouse.__dict__ and not (tmp_path / "spark").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("duckdb:/wh.duckdb", "is malformed"),  # a slash missing: once taken as the path "duckdb:/wh.duckdb"
        ("duckdb:wh.duckdb", "is malformed"),
        ("duckdb://", "has no file path"),
        ("mysql://host/db", "unknown scheme 'mysql'"),
    ],
)
def test_a_malformed_warehouse_url_is_named(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WarehouseError, match=message) as raised:
        connect(url)
    assert repr(url) in str(raised.value)
    assert list(tmp_path.iterdir()) == [], "nothing is created for a malformed URL"


def test_a_missing_file_says_the_urls_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WarehouseError, match=r"/nowhere\.duckdb does not exist .*path is absolute"):
        connect("duckdb:///nowhere.duckdb", read_only=True).con  # noqa: B018 (the connection opens on first use)
