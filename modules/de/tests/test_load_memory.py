"""A load runs within its memory budget whatever the file size: DuckDB spills to disk instead of failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clientml_de.duckdb_budget import Budget
from clientml_de.settings import get_settings
from clientml_de.warehouse import connect
from clientml_synthetic import generate

# About 5.5M sales rows, 320 MB of CSV: over three times the budget below.
CLIENTS = 185_000
BUDGET_MB = 100
# What the process may hold besides DuckDB's budget: Python with NumPy, PyArrow, Ibis and DuckDB imported
# (about 150 MB), the scan's windows, and DuckDB's allocations outside its buffer pool (measured: 390 MB in
# all). Without the budget the same load peaks near 2 GB.
PEAK_RSS_LIMIT_MB = 600

LOAD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from clientml_de.config import DatasetConfig
    from clientml_de.duckdb_budget import Budget
    from clientml_de.load import load_source
    from clientml_de.pipeline import peak_rss_mb
    from clientml_de.warehouse import connect

    data, url, budget_mb, spill = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    config = DatasetConfig()
    with connect(url, budget=Budget(budget_mb, spill)) as warehouse:
        limit = warehouse.scratch().execute("SELECT current_setting('memory_limit')").fetchone()[0]
        clients = load_source(str(data / "clients.csv"), config.clients_spec(), warehouse)
        sales = load_source(str(data / "sales.csv"), config.sales_spec(), warehouse)
    print(json.dumps({"limit": limit, "peak_mb": peak_rss_mb(), "clients": clients.to_dict(), "sales": sales.to_dict()}))
    """
)


@pytest.mark.slow
def test_a_file_three_times_the_budget_loads_with_exact_counts(tmp_path: Path) -> None:
    data = generate(tmp_path / "data", n_clients=CLIENTS, seed=3, bad_rows=0.01, progress=False)
    assert data.sales_path.stat().st_size > 3 * BUDGET_MB * 2**20
    spill = tmp_path / "spill"
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    command = [sys.executable, str(script), str(tmp_path / "data"), url, str(BUDGET_MB), str(spill)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)

    sales = outcome["sales"]
    assert outcome["limit"] == f"{BUDGET_MB}.0 MiB"
    assert sales["rows_read"] == data.n_sales_rows
    assert (sales["rows_loaded"], sales["rows_rejected"], sales["duplicates"]) == (
        data.n_sales,
        data.n_bad_sales_rows,
        data.n_duplicate_sales_rows,
    )
    clients = outcome["clients"]
    assert (clients["rows_loaded"], clients["rows_rejected"], clients["duplicates"]) == (
        data.n_clients,
        data.n_bad_client_rows,
        data.n_duplicate_client_rows,
    )
    assert outcome["peak_mb"] < PEAK_RSS_LIMIT_MB
    assert list(spill.iterdir()) == []  # each connection's spill directory is removed when it closes


@pytest.mark.parametrize("url", ["duckdb:///{tmp}/w.duckdb", "postgresql://nobody@localhost:1/none"])
def test_every_duckdb_database_gets_the_budget_and_a_private_spill_dir(tmp_path: Path, url: str) -> None:
    spill = tmp_path / "spill"
    # The PostgreSQL warehouse is not reached: only its scratch database (where files are validated) is opened.
    warehouse = connect(url.format(tmp=tmp_path), budget=Budget(123, spill, threads=1))
    con = warehouse.scratch()
    limit, temp, threads, ordered = (
        con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory'), current_setting('threads'), "
            "current_setting('preserve_insertion_order')"
        ).fetchone()
        or ()
    )
    assert (limit, threads, ordered) == ("123.0 MiB", 1, False)
    assert Path(temp).parent == spill
    con.execute("CREATE TABLE big AS SELECT range AS n, repeat('x', 100) AS s FROM range(2000000)")
    con.execute("CREATE TABLE sorted AS SELECT * FROM big ORDER BY s DESC, n DESC")  # 200+ MB: it spills
    warehouse.close()
    assert list(spill.iterdir()) == []


def test_spill_dir_defaults_to_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CLIENTML_SPILL_DIR", raising=False)
    get_settings.cache_clear()
    try:
        assert Budget.from_settings() == Budget(1024, tmp_path / "state" / "spill", 0)
    finally:
        get_settings.cache_clear()
