"""Publishing a validated file: the warehouse takes what ``validate()`` hands it, and writes every value as
a parameter (quotes, backslashes and non-ASCII text arrive as they were)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.validate import ValidatedLoad, read_header, stage_csv, validate
from clientml_de.warehouse import LOAD_RUNS, REJECTED_ROWS, LoadSummary, Warehouse, connect
from de_support import CLIENT_HEADER, GOOD_CLIENTS, write_csv

SPEC = DatasetConfig().clients_spec()
BAD_CLIENT = ["c9", "2023-02-30", "", "", "", "", "", "", "", ""]


def _validated(warehouse: Warehouse, path: Path) -> ValidatedLoad:
    header = read_header(path)
    stage_csv(warehouse.scratch(), path, header, SPEC.table)
    return validate(warehouse.scratch(), SPEC, header, str(path))


def _summary(validated: ValidatedLoad, rows_loaded: int) -> LoadSummary:
    counts = validated.counts
    return LoadSummary(
        table=SPEC.table,
        source_file=validated.source_file,
        rows_read=counts.rows_read,
        rows_loaded=rows_loaded,
        rows_rejected=counts.rows_rejected,
        duplicates=counts.duplicates,
        ignored_columns=counts.ignored_columns,
        run_id="r1",
    )


def test_publish_load_writes_the_relations_the_handle_names(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    path = write_csv(tmp_path / "clients.csv", CLIENT_HEADER, [*GOOD_CLIENTS, BAD_CLIENT])
    validated = _validated(duckdb_warehouse, path)
    assert (validated.counts.rows_read, validated.counts.rows_loaded, validated.counts.rows_rejected) == (4, 3, 1)
    assert validated.connection.execute(f"SELECT count(*) FROM {validated.valid}").fetchone() == (3,)

    # Relations under other names: publish_load follows the handle, not a naming convention.
    scratch = validated.connection
    scratch.execute(f"CREATE TEMP TABLE first_two AS SELECT * FROM {validated.valid} ORDER BY client_id LIMIT 2")
    scratch.execute(f"CREATE TEMP TABLE no_rejects AS SELECT * FROM {validated.rejected} LIMIT 0")
    other = dataclasses.replace(validated, valid="first_two", rejected="no_rejects")
    duckdb_warehouse.publish_load(other, _summary(other, rows_loaded=2))
    validated.drop()

    assert sorted(duckdb_warehouse.table("clients").client_id.to_pyarrow().to_pylist()) == ["c1", "c2"]
    assert duckdb_warehouse.table(REJECTED_ROWS).count().to_pyarrow().as_py() == 0
    assert scratch.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [validated.valid]).fetchone() == (
        0,
    )


# A file name a hand-escaped SQL literal would get wrong: quotes of both kinds, backslashes, non-ASCII.
AWKWARD_NAME = "o'brien \\ \"quoted\" ''twice'' \\' élève 客户 ✓.csv"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_awkward_source_name_survives_the_parameterised_writes(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    if engine == "duckdb":
        url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
        # The pre-2010 string syntax where a backslash escapes: a literal built by doubling quotes
        # breaks there, a parameter does not.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET standard_conforming_strings = off")
    source = str(write_csv(tmp_path / AWKWARD_NAME, CLIENT_HEADER, [*GOOD_CLIENTS, BAD_CLIENT]))
    warehouse = connect(url)
    try:
        summary = load_source(source, SPEC, warehouse)
        runs = warehouse.table(LOAD_RUNS).to_pandas()
        rejected = warehouse.table(REJECTED_ROWS).to_pandas()
    finally:
        warehouse.close()

    assert (summary.rows_loaded, summary.rows_rejected) == (3, 1)
    assert runs.to_dict("records")[0] | {"loaded_at": None} == {
        "run_id": summary.run_id,
        "source_table": "clients",
        "source_file": source,
        "rows_read": 4,
        "rows_loaded": 3,
        "rows_rejected": 1,
        "duplicates": 0,
        "ignored_columns": "",
        "loaded_at": None,
    }
    assert rejected.source_file.tolist() == [source]
