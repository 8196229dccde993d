"""Where a load's time goes: every SQL statement of ``load_source`` timed, the rest (the structure scan, the
Python around it) as one remainder, then the peak RSS. A profiling aid for ``modules/de/README.md``.

    python modules/de/bench/profile_load.py DATA_DIR duckdb:////tmp/profile.duckdb [--memory-limit-mb 2048]

``DATA_DIR`` holds ``clients.csv`` and ``sales.csv`` (``clientml generate``); both are loaded, clients
first. Statements under 50 ms are not listed. It runs whatever ``clientml_de`` is importable, so an older
version can be profiled the same way (``PYTHONPATH=<its modules/de/src>``).
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.warehouse import connect

SHOWN_SECONDS = 0.05


class TimedConnection:
    """A DuckDB connection whose ``execute`` calls are timed (everything else passes through)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.statements: list[tuple[float, str]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        result = self.raw.execute(sql, *args)
        self.statements.append((time.perf_counter() - started, re.sub(r"\s+", " ", sql.strip())[:100]))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("warehouse")
    parser.add_argument("--memory-limit-mb", type=int, default=None, help="the budget (default: the setting)")
    args = parser.parse_args()
    budget = None
    if args.memory_limit_mb:
        from clientml_de.duckdb_budget import Budget

        budget = Budget(args.memory_limit_mb, Budget.from_settings().spill_root)
    warehouse = connect(args.warehouse, budget=budget) if budget else connect(args.warehouse)
    timed = TimedConnection(warehouse.scratch())
    warehouse.scratch = lambda: timed  # type: ignore[method-assign]
    config = DatasetConfig()
    for name, spec in (("clients", config.clients_spec()), ("sales", config.sales_spec())):
        timed.statements.clear()
        started = time.perf_counter()
        summary = load_source(str(args.data / f"{name}.csv"), spec, warehouse)
        total = time.perf_counter() - started
        in_sql = sum(seconds for seconds, _ in timed.statements)
        print(
            f"== {name}: {total:.2f} s, of which {in_sql:.2f} s in SQL and {total - in_sql:.2f} s in Python "
            f"(structure scan and the rest); rows read {summary.rows_read:,}, loaded {summary.rows_loaded:,}, "
            f"rejected {summary.rows_rejected:,}, duplicates {summary.duplicates:,}"
        )
        for seconds, statement in timed.statements:
            if seconds >= SHOWN_SECONDS:
                print(f"  {seconds:7.2f} s  {statement}")
    started = time.perf_counter()
    warehouse.close()
    print(f"== close (DuckDB's checkpoint): {time.perf_counter() - started:.2f} s")
    print(f"== peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
