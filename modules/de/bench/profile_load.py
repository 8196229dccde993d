"""Where a load's time goes: every SQL statement of ``load_source`` timed (wall and CPU seconds of the process,
DuckDB's threads included: CPU time is what other work on a shared machine disturbs least), the rest (the
structure scan, the Python around it) as one remainder, then the peak RSS. A profiling aid for ``modules/de/README.md``.

    python modules/de/bench/profile_load.py DATA_DIR duckdb:////tmp/profile.duckdb [--memory-limit-mb 1024]

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


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedConnection:
    """A DuckDB connection whose ``execute`` calls are timed (everything else passes through)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.statements: list[tuple[float, float, str]] = []

    def execute(self, sql: str, *args: Any) -> Any:
        started, cpu = time.perf_counter(), cpu_seconds()
        result = self.raw.execute(sql, *args)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        self.statements.append((seconds, cpu, re.sub(r"\s+", " ", sql.strip())[:100]))
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
        started, cpu = time.perf_counter(), cpu_seconds()
        summary = load_source(str(args.data / f"{name}.csv"), spec, warehouse)
        total, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        in_sql = sum(seconds for seconds, _, _ in timed.statements)
        cpu_sql = sum(seconds for _, seconds, _ in timed.statements)
        print(
            f"== {name}: {total:.2f} s ({cpu:.2f} s CPU), of which {in_sql:.2f} s ({cpu_sql:.2f} s CPU) in SQL and "
            f"{total - in_sql:.2f} s ({cpu - cpu_sql:.2f} s CPU) in Python (structure scan and the rest); rows read "
            f"{summary.rows_read:,}, loaded {summary.rows_loaded:,}, rejected {summary.rows_rejected:,}, "
            f"duplicates {summary.duplicates:,}"
        )
        for seconds, statement_cpu, statement in timed.statements:
            if seconds >= SHOWN_SECONDS:
                print(f"  {seconds:7.2f} s {statement_cpu:7.2f} s CPU  {statement}")
    started, cpu = time.perf_counter(), cpu_seconds()
    warehouse.close()
    print(f"== close (DuckDB's checkpoint): {time.perf_counter() - started:.2f} s ({cpu_seconds() - cpu:.2f} s CPU)")
    print(f"== peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
