"""``replace_partition``: a partition's rows replaced in one step, the others kept, on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from clientml_de.partitions import replace_partition
from clientml_de.warehouse import WarehouseError, connect

SCHEMA = pa.schema(
    [("run_id", pa.string()), ("feature", pa.string()), ("value", pa.float64()), ("flag", pa.bool_()),
     ("created_at", pa.timestamp("us"))]
)  # fmt: skip
WHEN = datetime(2026, 12, 1, 9, 30)


def _rows(run_id: str, values: dict[str, float | None]) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(values),
            "feature": list(values),
            "value": list(values.values()),
            "flag": [v is not None and v > 1 for v in values.values()],
            "created_at": [WHEN] * len(values),
        },
        schema=SCHEMA,
    )


def _read(url: str) -> list[tuple[object, ...]]:
    with connect(url, read_only=True) as warehouse:
        frame = warehouse.table("report").to_pyarrow().to_pylist()
    return sorted((r["run_id"], r["feature"], r["value"], r["flag"], r["created_at"]) for r in frame)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


def test_a_partition_is_replaced_and_the_others_kept(url: str) -> None:
    with connect(url) as warehouse:
        replace_partition(warehouse, "report", _rows("a", {"x": 1.0, "y": None}), key="run_id", value="a")
        replace_partition(warehouse, "report", _rows("b", {"x": 2.5}), key="run_id", value="b")
        replace_partition(warehouse, "report", _rows("a", {"z": 3.0}), key="run_id", value="a")  # a rerun of a
    assert _read(url) == [("a", "z", 3.0, True, WHEN), ("b", "x", 2.5, True, WHEN)]
    with connect(url) as warehouse:  # the same rows again: the same table
        replace_partition(warehouse, "report", _rows("a", {"z": 3.0}), key="run_id", value="a")
        replace_partition(warehouse, "report", _rows("b", {}), key="run_id", value="b")  # no rows: removed
    assert _read(url) == [("a", "z", 3.0, True, WHEN)]


def test_a_failed_write_leaves_the_table_as_it_was(url: str) -> None:
    with connect(url) as warehouse:
        replace_partition(warehouse, "report", _rows("a", {"x": 1.0}), key="run_id", value="a")
    before = _read(url)
    # A value the table's column cannot hold: the insert fails after the delete ran, and nothing stays.
    broken = pa.table({**{n: _rows("a", {"x": 1.0, "y": 2.0}).column(n) for n in SCHEMA.names}, "value": ["1", "two"]})
    with connect(url) as warehouse, pytest.raises(Exception, match="two"):
        replace_partition(warehouse, "report", broken, key="run_id", value="a")
    assert _read(url) == before


def test_bad_partitions_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with connect(url) as warehouse:
        with pytest.raises(ValueError, match=r"hold other run_id values: \['b'\]"):
            replace_partition(warehouse, "report", _rows("b", {"x": 1.0}), key="run_id", value="a")
        with pytest.raises(ValueError, match="key column 'run' is not among"):
            replace_partition(warehouse, "report", _rows("a", {"x": 1.0}), key="run", value="a")
        odd = pa.table({"run_id": ["a"], "blob": [b"x"]})
        with pytest.raises(TypeError, match="does not store Arrow type binary"):
            replace_partition(warehouse, "report", odd, key="run_id", value="a")
        assert not warehouse.has_table("report")
        replace_partition(warehouse, "report", _rows("a", {"x": 1.0}), key="run_id", value="a")
        other = pa.table({"run_id": ["a"], "feature": ["x"]})
        with pytest.raises(WarehouseError, match=r"table 'report' .* has columns .* not the \['run_id', 'feature'\]"):
            replace_partition(warehouse, "report", other, key="run_id", value="a")
    with connect(url, read_only=True) as warehouse, pytest.raises(WarehouseError, match="read-only"):
        replace_partition(warehouse, "report", _rows("a", {"x": 1.0}), key="run_id", value="a")


@pytest.mark.spark
@pytest.mark.slow
def test_a_partition_is_replaced_on_spark(tmp_path: Path) -> None:
    url = f"spark:///{tmp_path / 'spark'}"
    with connect(url) as warehouse:
        replace_partition(warehouse, "report", _rows("a", {"x": 1.0, "y": None}), key="run_id", value="a")
        replace_partition(warehouse, "report", _rows("b", {"x": 2.5}), key="run_id", value="b")
        replace_partition(warehouse, "report", _rows("a", {"z": 3.0}), key="run_id", value="a")
        rows = warehouse.table("report").to_pyarrow().to_pylist()
    assert sorted((r["run_id"], r["feature"], r["value"], r["flag"]) for r in rows) == [
        ("a", "z", 3.0, True),
        ("b", "x", 2.5, True),
    ]
