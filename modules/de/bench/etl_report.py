"""The figures of ``make bench-etl`` and their markdown report: one :class:`Row` per measurement.

Ratios are computed per size: ``speedup`` against the pandas reference (pandas seconds / engine seconds for
the same stage) and ``vs_ctas`` against DuckDB's own typed load of the same file measured in the same run
(engine seconds / ``CREATE TABLE AS SELECT * FROM read_csv(file)`` seconds; end to end against the two
files' sum).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MB = 1 << 20
STAGE_TITLES = {
    "generate": "generate",
    "end_to_end": "end to end",
    "load_clients": "load clients",
    "load_sales": "load sales",
    "build_features": "build features",
    "ctas_clients": "DuckDB CTAS clients.csv",
    "ctas_sales": "DuckDB CTAS sales.csv",
    "ctas_clients_unordered": "DuckDB CTAS clients.csv, unordered",
    "ctas_sales_unordered": "DuckDB CTAS sales.csv, unordered",
}
# The files' CTAS each stage is compared with (end to end: both files), the faster of its two variants.
CTAS_OF = {"load_clients": ("clients",), "load_sales": ("sales",), "end_to_end": ("clients", "sales")}
TARGET_SECONDS_1M = 40.0
TARGET_SPEEDUP = 10.0
TARGET_CTAS_RATIO = 1.5
TARGET_PEAK_RSS_1M = 2 << 30
EXPLANATION = " ".join(
    [
        "rows/s: generate = rows written to both files; end to end = rows read from both files;",
        "load clients / load sales / CTAS = rows read from that file; build features = valid sales rows aggregated.",
        "end to end for duckdb/postgres = `clientml pipeline` (embedded Airflow, three DAGs) in a subprocess;",
        "stages = the same task functions called in-process without Airflow;",
        "DuckDB CTAS = `CREATE TABLE t AS SELECT * FROM read_csv(file)` (types detected by DuckDB, no checks)",
        "in a fresh database file, in a subprocess, with the same memory limit, timed from connect to close",
        "(the close checkpoints), with DuckDB's default settings and with `preserve_insertion_order = false`;",
        "pandas = `pandas_reference.run` (read, validate, features, write Parquet) in a subprocess of its own.",
        "vs DuckDB CTAS = seconds / CTAS seconds of the same file, the faster variant (end to end: of both files);",
        "vs pandas = pandas seconds / engine seconds for the same stage.",
        "Peak RSS = the process tree, sampled every 0.1 s, or the kernel's high-water mark of its largest process",
        "if higher (postgres: plus the server's processes, shared memory counted per process).",
    ]
)


@dataclass
class Row:
    """One measurement: a stage of one engine at one size (seconds, CPU seconds, peak RSS in bytes)."""

    size: int
    engine: str
    stage: str
    seconds: float | None = None
    rows: int | None = None
    peak_rss: int | None = None
    note: str = ""
    speedup: float | None = None
    cpu_seconds: float | None = None
    vs_ctas: float | None = None

    @classmethod
    def of(cls, size: int, engine: str, stage: str, figures: dict[str, Any], note: str = "") -> Row:
        """A row of a measurement's figures: ``seconds``, ``cpu_seconds``, ``peak_rss`` and ``rows`` if known."""
        seconds, cpu, peak = figures["seconds"], figures.get("cpu_seconds"), figures["peak_rss"]
        return cls(size, engine, stage, seconds, figures.get("rows"), peak, note, cpu_seconds=cpu)

    @property
    def rows_per_second(self) -> float | None:
        if self.seconds is None or self.rows is None or self.seconds <= 0:
            return None
        return self.rows / self.seconds


def add_ratios(rows: Sequence[Row], size: int) -> None:
    """Set ``speedup`` (vs pandas) and ``vs_ctas`` (vs DuckDB's typed CTAS) on the rows of ``size``."""
    mine = [r for r in rows if r.size == size]
    pandas = {r.stage: r.seconds for r in mine if r.engine == "pandas"}
    ctas: dict[str, float] = {}
    for r in mine:
        if r.stage.startswith("ctas_") and r.seconds:
            name = r.stage.split("_")[1]
            ctas[name] = min(ctas.get(name, r.seconds), r.seconds)
    for row in mine:
        reference = pandas.get(row.stage)
        if row.engine not in ("-", "pandas") and row.seconds and reference:
            row.speedup = reference / row.seconds
        references = [ctas.get(name) for name in CTAS_OF.get(row.stage, ())]
        if row.engine in ("duckdb", "postgres") and row.seconds and references and all(references):
            row.vs_ctas = row.seconds / sum(r for r in references if r)


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's targets, met or missed, for the sizes measured."""
    lines = []
    for size in sorted({r.size for r in rows}):
        mine = {(r.engine, r.stage): r for r in rows if r.size == size}
        duck = mine.get(("duckdb", "end_to_end"))
        if duck is None or duck.seconds is None:
            continue
        if size == 1_000_000:
            verdict = "met" if duck.seconds <= TARGET_SECONDS_1M else "MISSED"
            lines.append(
                f"- 1M clients end to end on DuckDB within {TARGET_SECONDS_1M:.0f} s: {duck.seconds:.1f} s, {verdict}."
            )
            if duck.peak_rss:
                verdict = "met" if duck.peak_rss <= TARGET_PEAK_RSS_1M else "MISSED"
                peak = f"{duck.peak_rss / MB:,.0f} MB"
                lines.append(f"- 1M clients, peak RSS of `clientml pipeline` at most 2 GB: {peak}, {verdict}.")
        sales = mine.get(("duckdb", "load_sales"))
        if sales is not None and sales.vs_ctas is not None:
            verdict = "met" if sales.vs_ctas <= TARGET_CTAS_RATIO else "MISSED"
            lines.append(
                f"- {size:,} clients, load sales at most {TARGET_CTAS_RATIO}x DuckDB's typed CTAS of the file: "
                f"{sales.vs_ctas:.2f}x, {verdict}."
            )
        if duck.speedup is not None:
            verdict = "met" if duck.speedup >= TARGET_SPEEDUP else "MISSED"
            pandas = mine.get(("pandas", "end_to_end"))
            cpu_ratio = ""
            if pandas and pandas.cpu_seconds and duck.cpu_seconds:
                cpu_ratio = f" (CPU-time ratio {pandas.cpu_seconds / duck.cpu_seconds:.2f}x)"
            lines.append(
                f"- {size:,} clients, DuckDB end to end at least {TARGET_SPEEDUP:.0f}x faster than pandas: "
                f"{duck.speedup:.2f}x{cpu_ratio}, {verdict}."
            )
    return lines


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def report(rows: Sequence[Row], notes: Sequence[str], context: dict[str, str]) -> str:
    """The markdown report: the run's ``context`` (machine, code, load, budget), the table, targets, notes."""
    header = "| size | engine | stage | seconds | CPU s | rows/s | peak RSS MB | vs DuckDB CTAS | vs pandas | note |"
    lines = [header, "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [
            f"{r.size:,}",
            r.engine,
            STAGE_TITLES[r.stage],
            _seconds(r.seconds),
            _seconds(r.cpu_seconds),
            "" if r.rows_per_second is None else f"{r.rows_per_second:,.0f}",
            "" if r.peak_rss is None else f"{r.peak_rss / MB:,.0f}",
            _ratio(r.vs_ctas),
            _ratio(r.speedup),
            r.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = [
        "# ETL benchmark (`make bench-etl`)",
        "",
        f"Run {datetime.now():%Y-%m-%d %H:%M}: `{' '.join(['bench_etl.py', *sys.argv[1:]])}`",
        "",
        *(f"{name}: {value}\n" for name, value in context.items()),
        *lines,
        "",
        EXPLANATION,
        "",
        "Targets:",
        *(targets(rows) or ["- (no DuckDB end-to-end figures)"]),
    ]
    if notes:
        text += ["", "Notes:", *(f"- {n}" for n in notes)]
    return "\n".join(text) + "\n"
