"""``make bench-etl``: how fast the ETL is, on DuckDB and PostgreSQL, against a plain pandas reference.

For each size (number of clients) it

1. generates the sample data (``clientml_synthetic.generate``), cached in the work directory by size, seed and
   bad-row share, so a rerun reuses the files and says so;
2. runs the real ``clientml pipeline`` (Airflow, embedded) end to end in a subprocess on each engine, on a
   fresh warehouse (PostgreSQL: a fresh throwaway server per size), measuring wall time and the peak RSS
   of the process tree (PostgreSQL: plus its server processes);
3. times the stages separately in-process (load clients, load sales, build features: the functions the
   DAG tasks call, without Airflow) on DuckDB (``--stage-engines``), in a subprocess of their own;
4. times DuckDB's own typed load of each file (``CREATE TABLE AS SELECT * FROM read_csv(file)``, no checks)
   with the same memory limit, the floor a validating load is compared with;
5. runs the pandas reference (``pandas_reference.py``) on the same files, in a subprocess;

then prints a markdown table (seconds, rows/s, peak RSS, ratio to DuckDB's typed load, speedup against
pandas; :mod:`etl_report`) and writes it to ``--report``. A benchmark, not a test: it asserts nothing, it
reports the targets it misses.

    python modules/de/bench/bench_etl.py --sizes 100000,1000000 --engines duckdb,postgres
    python modules/de/bench/bench_etl.py --sizes 5000000    # DuckDB only, within the memory budget

Every DuckDB database runs within ``--memory-limit-mb`` (``CLIENTML_MEMORY_LIMIT_MB``, 1024 by default),
spilling under ``<workdir>/spill``. Sizes above ``--large-above`` (1M clients) run on DuckDB only, without
the pandas reference (it would need tens of GB of memory); before generating, the benchmark checks that
the disk has room for the files, the warehouses and the spill, and stops with a message if not.

Peak RSS is sampled every 0.1 s over the whole process tree (children summed); for PostgreSQL the server's
processes are added, whose shared buffers are counted once per process, so that figure is an upper bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clientml_de.settings import Settings
from clientml_testkit.bench import (
    MB,
    Measured,
    PeakRss,
    Stopwatch,
    code_state,
    json_tail,
    load_average,
    machine,
    run_measured,
)
from clientml_testkit.localpg import create_database, server_pids, server_port, server_version, throwaway_postgres
from etl_report import Row, add_ratios, report

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
PYTHON = sys.executable
STAGES = ("load_clients", "load_sales", "build_features")
ENGINES = ("duckdb", "postgres")
# Bytes of CSV per generated client (both files; 1M clients: 1.77 GB), and the room a size needs beside its
# files, as a multiple of them: two DuckDB warehouses and a CTAS database (about a third each), the spill
# (at most about the largest file), PostgreSQL's tables and the pandas reference's Parquet.
CSV_BYTES_PER_CLIENT = 1_800
ROOM_PER_CSV_BYTE = 2.5


# --------------------------------------------------------------------------------------------------
# Helpers run as subprocesses (``bench_etl.py _generate`` / ``bench_etl.py _stages``)
# --------------------------------------------------------------------------------------------------


def helper_generate(args: argparse.Namespace) -> int:
    from clientml_synthetic import generate

    summary = generate(Path(args.out), n_clients=args.clients, seed=args.seed, bad_rows=args.bad_rows)
    print(json.dumps(summary.to_dict()))
    return 0


def helper_ctas(args: argparse.Namespace) -> int:
    """DuckDB's own typed load of one file into a fresh database, within the memory limit: the floor.

    Timed up to the closed database (the close checkpoints: with insertion order preserved, DuckDB's default,
    that is where the rows are compressed and written). ``--engine unordered`` turns the order off.
    """
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(args.warehouse)
    con.execute(f"SET memory_limit = '{int(args.memory_limit_mb)}MiB'")
    con.execute("SET temp_directory = ?", [str(Path(args.warehouse).with_suffix(".spill"))])
    if args.engine == "unordered":
        con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [args.clients])
    row = con.execute("SELECT count(*) FROM t").fetchone()
    con.close()
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": int(row[0]) if row else 0}))
    return 0


def helper_stages(args: argparse.Namespace) -> int:
    """Run the three stages in this process, timing each and sampling its peak RSS."""
    clients, sales = Path(args.clients), Path(args.sales)
    extra = server_pids(args.server_port) if args.server_port else []
    results: dict[str, Any] = {}
    with PeakRss([os.getpid()], extra) as monitor:
        if args.engine == "pandas":
            sys.path.insert(0, str(HERE))
            import pandas_reference

            watch = Stopwatch(monitor)
            outcome = pandas_reference.run(
                clients,
                sales,
                Path(args.out) if args.out else None,
                lambda stage: results.update({stage: watch.lap(0)}),
            )
            results["load_clients"]["rows"] = outcome.clients.rows_read
            results["load_sales"]["rows"] = outcome.sales.rows_read
            results["build_features"]["rows"] = outcome.sales.counts["rows_loaded"]
            results["counts"] = {"clients": outcome.clients.counts, "sales": outcome.sales.counts}
            results["feature_rows"] = len(outcome.features)
        else:
            from clientml_de.config import DatasetConfig
            from clientml_de.features import build_feature_store
            from clientml_de.load import load_source
            from clientml_de.warehouse import connect

            config = DatasetConfig()
            warehouse = connect(args.warehouse)
            try:
                counts: dict[str, Any] = {}
                watch = Stopwatch(monitor)
                for stage, source, spec in (
                    ("load_clients", clients, config.clients_spec()),
                    ("load_sales", sales, config.sales_spec()),
                ):
                    summary = load_source(str(source), spec, warehouse)
                    results[stage] = watch.lap(summary.rows_read)
                    counts[spec.table] = summary.to_dict()
                feature_rows = build_feature_store(warehouse, config)
                results["build_features"] = watch.lap(counts["sales"]["rows_loaded"])
                results["counts"] = counts
                results["feature_rows"] = feature_rows
            finally:
                warehouse.close()
    print(json.dumps(results))
    return 0


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    airflow_home: Path = Path()
    load_before: str = ""
    code_state: str = ""

    @property
    def workdir(self) -> Path:
        return Path(self.args.workdir).resolve()

    def log(self, message: str) -> None:
        print(f"[bench-etl {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    @property
    def env(self) -> dict[str, str]:
        """The memory budget and spill directory of every DuckDB database the measured commands open."""
        return {
            "CLIENTML_MEMORY_LIMIT_MB": str(self.args.memory_limit_mb),
            "CLIENTML_SPILL_DIR": str(self.workdir / "spill"),
        }

    def measure(self, command: list[str], name: str, server: list[int] | None = None, quiet: bool = False) -> Measured:
        """``command`` run from the repository root, its stderr in ``logs/<name>.log``, plus ``server``'s RSS."""
        log = self.workdir / "logs" / f"{name}.log"
        measured = run_measured(command, log, extra_roots=server, env=self.env, cwd=REPO_ROOT)
        if not quiet:
            peak = measured.peak_rss / MB
            self.log(f"  {measured.seconds:.1f} s, peak RSS {peak:,.0f} MB, exit {measured.returncode}")
        return measured

    # ---------------------------------------------------------------------------------------------

    def check_disk(self, size: int, cached: bool) -> None:
        """Stop with a message before a size whose files, warehouses and spill the disk cannot hold."""
        csv = size * CSV_BYTES_PER_CLIENT
        need = csv * ROOM_PER_CSV_BYTE + (0 if cached else csv)
        self.workdir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.workdir).free
        if free < need:
            raise SystemExit(
                f"bench-etl: {size:,} clients need about {need / 1e9:.1f} GB free under {self.workdir} "
                f"({'' if cached else f'{csv / 1e9:.1f} GB of CSV to generate, '}the warehouses and DuckDB's spill), "
                f"but only {free / 1e9:.1f} GB are free: free some space, or pass --workdir on a larger disk"
            )

    def data_dir(self, size: int) -> Path:
        """Where the generated files of ``size`` clients are cached."""
        return self.workdir / "data" / f"clients{size}-seed{self.args.seed}-bad{self.args.bad_rows:g}"

    def generate(self, size: int) -> tuple[Path, dict[str, Any]]:
        data = self.data_dir(size)
        marker = data / "generation.json"
        if marker.is_file():
            info: dict[str, Any] = json.loads(marker.read_text())
            self.log(f"{size:,} clients: data cached in {data} (generated {info['generated_at']})")
            cached = f"cached ({data.relative_to(self.workdir)}), figures of {info['generated_at']}"
            self.rows.append(Row.of(size, "-", "generate", info, cached))
            return data, info
        self.log(f"{size:,} clients: generating into {data}")
        command = [PYTHON, str(Path(__file__).resolve()), "_generate", "--out", str(data)]
        command += ["--clients", str(size), "--seed", str(self.args.seed), "--bad-rows", str(self.args.bad_rows)]
        measured = self.measure(command, f"{size}-generate")
        if measured.returncode != 0:
            raise SystemExit(f"generation failed: {measured.failure()}")
        summary = json_tail(measured.stdout)
        info = {
            "seconds": measured.seconds,
            "cpu_seconds": measured.cpu_seconds,
            "peak_rss": measured.peak_rss,
            "rows": summary["n_client_rows"] + summary["n_sales_rows"],
            "generated_at": f"{datetime.now():%Y-%m-%d %H:%M}",
            "summary": summary,
        }
        marker.write_text(json.dumps(info, indent=2))
        self.rows.append(Row.of(size, "-", "generate", info))
        return data, info

    def prepare_airflow(self) -> None:
        """Create the embedded Airflow's metadata database once, outside the timed runs."""
        self.airflow_home = self.workdir / "airflow"
        if (self.airflow_home / "airflow.db").exists():
            return
        self.log("creating the embedded Airflow metadata database (one-off, not timed)")
        code = "import sys; from pathlib import Path; from clientml_de.pipeline import prepare_airflow; "
        code += "prepare_airflow(Path(sys.argv[1]))"
        command = [PYTHON, "-c", code, str(self.airflow_home)]
        measured = self.measure(command, "airflow", quiet=True)
        if measured.returncode != 0:
            raise SystemExit(f"airflow db migrate failed: {measured.failure()}")
        self.notes.append(
            f"One-off `airflow db migrate` of the embedded Airflow: {measured.seconds:.1f} s (not timed)."
        )

    def pipeline(self, size: int, engine: str, url: str, data: Path, server: list[int]) -> None:
        self.log(f"{size:,} clients, {engine}: clientml pipeline")
        command = [str(Path(PYTHON).parent / "clientml"), "pipeline", "--clients", str(data / "clients.csv")]
        command += ["--sales", str(data / "sales.csv"), "--warehouse", url, "--airflow-home", str(self.airflow_home)]
        command += ["--no-loop"]  # the ETL's figures: the monitoring loop after it is not part of them
        measured = self.measure(command, f"{size}-{engine}-pipeline", server)
        row = Row.of(size, engine, "end_to_end", vars(measured))
        if measured.returncode != 0:
            row.seconds, row.note = None, "FAILED"
            self.notes.append(f"{size:,} {engine} pipeline failed: {measured.failure()}")
        else:
            summary = json_tail(measured.stdout)
            row.rows = sum(f["rows_read"] for f in summary["files"])
            row.note = f"{summary['feature_store']['rows']:,} feature rows"
            dag_seconds = [f"{run['dag_id']} {run['seconds']:.1f} s" for run in summary["dag_runs"] if "seconds" in run]
            if dag_seconds:
                row.note += "; DAGs: " + ", ".join(dag_seconds)
            row.note += f"; its own peak_rss_mb {summary['peak_rss_mb']:,.0f}"
        if engine == "postgres":
            row.note = (row.note + "; RSS incl. server").lstrip("; ")
        self.rows.append(row)

    def stages(self, size: int, engine: str, url: str, data: Path, port: int | None = None) -> None:
        self.log(f"{size:,} clients, {engine}: stages in-process")
        command = [PYTHON, str(Path(__file__).resolve()), "_stages", "--engine", engine]
        command += ["--clients", str(data / "clients.csv"), "--sales", str(data / "sales.csv")]
        if engine == "pandas":
            command += ["--out", str(self.workdir / "runs" / str(size) / "pandas")]
        else:
            command += ["--warehouse", url]
        if port:
            command += ["--server-port", str(port)]
        measured = self.measure(command, f"{size}-{engine}-stages", server_pids(port))
        if measured.returncode != 0:
            note = "FAILED" + (" (out of memory?)" if measured.returncode in (-9, 137) else "")
            self.rows.append(Row(size, engine, "end_to_end" if engine == "pandas" else "load_clients", note=note))
            self.notes.append(f"{size:,} {engine} stages failed: {measured.failure()}")
            return
        results = json_tail(measured.stdout)
        if engine == "pandas":
            rows = results["load_clients"]["rows"] + results["load_sales"]["rows"]
            note = f"{results['feature_rows']:,} feature rows"
            self.rows.append(Row.of(size, engine, "end_to_end", {**vars(measured), "rows": rows}, note))
        note = "within the run above" if engine == "pandas" else "in-process, no Airflow"
        self.rows += [Row.of(size, engine, stage, results[stage], note) for stage in STAGES]

    def ctas(self, size: int, data: Path) -> None:
        """DuckDB's own typed load of each file, measured like the rest, in a fresh database each: with its
        default settings (insertion order kept) and without insertion order; the faster is the floor."""
        for name in ("clients", "sales"):
            for order in ("default", "unordered"):
                self.log(f"{size:,} clients: DuckDB CTAS of {name}.csv ({order})")
                database = self.workdir / "runs" / str(size) / "ctas" / f"{name}.duckdb"
                shutil.rmtree(database.parent, ignore_errors=True)
                database.parent.mkdir(parents=True)
                command = [PYTHON, str(Path(__file__).resolve()), "_ctas", "--clients", str(data / f"{name}.csv")]
                command += ["--warehouse", str(database), "--memory-limit-mb", str(self.args.memory_limit_mb)]
                measured = self.measure([*command, "--engine", order], f"{size}-ctas-{name}-{order}")
                shutil.rmtree(database.parent, ignore_errors=True)
                if measured.returncode != 0:
                    self.notes.append(f"{size:,} DuckDB CTAS of {name}.csv failed: {measured.failure()}")
                    continue
                figures = json_tail(measured.stdout)
                note = f"{order}; whole process {measured.seconds:.1f} s (interpreter start included)"
                stage = f"ctas_{name}" if order == "default" else f"ctas_{name}_unordered"
                self.rows.append(Row.of(size, "duckdb", stage, {**vars(measured), **figures}, note))

    def run_size(self, size: int) -> None:
        data, _ = self.generate(size)
        large = size > self.args.large_above
        engines = ["duckdb"] if large else self.args.engines
        if large:
            self.notes.append(
                f"{size:,} clients: above --large-above {self.args.large_above:,}, DuckDB only, no pandas reference."
            )
        self.ctas(size, data)
        for engine in engines:
            run_dir = self.workdir / "runs" / str(size) / engine
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            if engine == "duckdb":
                self.pipeline(size, engine, f"duckdb:///{run_dir / 'warehouse.duckdb'}", data, [])
                if engine in self.args.stage_engines:
                    self.stages(size, engine, f"duckdb:///{run_dir / 'stages.duckdb'}", data)
            elif engine == "postgres":
                with throwaway_postgres() as url:
                    port = server_port(url)
                    self.pipeline(size, engine, url, data, server_pids(port))
                    if engine in self.args.stage_engines:
                        stage_url = create_database(url, "stages")
                        self.stages(size, engine, stage_url, data, port)
        skip_above = self.args.large_above if self.args.skip_pandas_above is None else self.args.skip_pandas_above
        if size > skip_above:
            self.rows.append(Row(size, "pandas", "end_to_end", note=f"skipped (above {skip_above:,} clients)"))
        else:
            self.stages(size, "pandas", "", data)
        add_ratios(self.rows, size)

    def run(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.load_before = load_average()
        self.code_state = code_state(REPO_ROOT, ["modules/de/src", "src"])
        for size in self.args.sizes:  # before anything is generated or run
            self.check_disk(size, (self.data_dir(size) / "generation.json").is_file())
        if any(e in ("duckdb", "postgres") for e in self.args.engines):
            self.prepare_airflow()
        for size in self.args.sizes:
            self.run_size(size)
            (self.workdir / "results.json").write_text(json.dumps([asdict(r) for r in self.rows], indent=2))
        context = {
            "Machine": _machine(),
            "Code": self.code_state,
            "Memory limit of every DuckDB database": f"{self.args.memory_limit_mb:,} MiB (CLIENTML_MEMORY_LIMIT_MB)",
            "Load average (1/5/15 min) at the start": f"{self.load_before}; at the end: {load_average()}",
        }
        return report(self.rows, self.notes, context)


def _machine() -> str:
    postgres = []
    with contextlib.suppress(Exception):
        postgres.append(server_version())
    return machine(("duckdb", "pandas", "ibis"), postgres)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _str_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_generate", "_stages", "_ctas"):
        helper = argparse.ArgumentParser(prog=f"bench_etl.py {argv[0]}")
        helper.add_argument("--out")
        helper.add_argument("--clients")
        helper.add_argument("--sales")
        helper.add_argument("--seed", type=int, default=7)
        helper.add_argument("--bad-rows", type=float, default=0.01)
        helper.add_argument("--engine")
        helper.add_argument("--warehouse")
        helper.add_argument("--server-port", type=int)
        helper.add_argument("--memory-limit-mb", type=int)
        args = helper.parse_args(argv[1:])
        args.helper = argv[0]
        if args.helper == "_generate":
            args.clients = int(args.clients)
        return args
    parser = argparse.ArgumentParser(
        description="ETL benchmark: generate, then the pipeline on each engine and a pandas reference."
    )
    parser.add_argument("--sizes", type=_int_list, default=[100_000, 1_000_000], help="numbers of clients")
    parser.add_argument("--engines", type=_str_list, default=["duckdb", "postgres"], help="duckdb,postgres")
    parser.add_argument(
        "--stage-engines", type=_str_list, default=["duckdb"], help="engines whose stages are also timed"
    )
    parser.add_argument("--workdir", default=".bench/etl", help="data cache, warehouses and logs")
    parser.add_argument("--report", default=".bench/etl.md", help="where the markdown table is written")
    parser.add_argument(
        "--skip-pandas-above",
        type=lambda text: int(text.replace("_", "")),
        default=None,
        metavar="N",
        help="do not run the pandas reference for sizes above N clients (default: --large-above)",
    )
    parser.add_argument(
        "--large-above",
        type=lambda text: int(text.replace("_", "")),
        default=1_000_000,
        metavar="N",
        help="sizes above N clients run on DuckDB only, without the pandas reference (default 1,000,000)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=Settings().memory_limit_mb,
        help="the memory limit of every DuckDB database (CLIENTML_MEMORY_LIMIT_MB; default: the setting)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad-rows", type=float, default=0.01, help="share of bad rows in the generated data")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.engines + args.stage_engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)} (use {', '.join(ENGINES)})")
    args.helper = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.helper == "_generate":
        return helper_generate(args)
    if args.helper == "_stages":
        return helper_stages(args)
    if args.helper == "_ctas":
        return helper_ctas(args)
    bench = Bench(args)
    report = bench.run()
    print(report)
    target = Path(args.report)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report)
    bench.log(f"report written to {target.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
