"""``clientml``: one command line for the whole system.

Each command imports its module only when it runs, so a command never pays for (or needs) the
dependencies of another: the serving image has no Airflow or Spark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Client classification system: generate data, run the ETL, train, score and serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory for clients.csv, sales.csv, ground_truth.csv")],
    clients: Annotated[int, typer.Option(help="Number of clients (10 to 1,000,000)")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files")] = 0,
    bad_rows: Annotated[float, typer.Option(help="Fraction of rows that break a contract rule")] = 0.0,
) -> None:
    """Generate realistic sample clients and sales in the data contract's format."""
    from clientml_synthetic import generate as run_generate

    try:
        summary = run_generate(out, n_clients=clients, seed=seed, bad_rows=bad_rows)
    except ValueError as exc:
        _fail(str(exc))
    _print_json(summary.to_dict())


@app.command()
def pipeline(
    clients: Annotated[str, typer.Option(help="clients.csv: a path, or an http(s):// or s3:// URI")],
    sales: Annotated[str, typer.Option(help="sales.csv: a path, or an http(s):// or s3:// URI")],
    warehouse: Annotated[str, typer.Option(help="duckdb:///file.duckdb, postgresql://..., spark:///dir")],
    dataset_config: Annotated[Path | None, typer.Option(help="YAML declaring extra columns etc.")] = None,
    airflow_home: Annotated[
        Path | None, typer.Option(help="Embedded Airflow state (default: <state dir>/airflow)")
    ] = None,
) -> None:
    """Run the load_client_data, load_sales_data and process_data DAGs through Airflow; print a summary."""
    from clientml_de.pipeline import PipelineError, run_pipeline

    try:
        summary = run_pipeline(clients, sales, warehouse, dataset_config, airflow_home)
    except (PipelineError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _print_json(summary.to_dict())


from clientml_mle.cli import register as _register_mle  # noqa: E402 - after the commands above

_register_mle(app)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
