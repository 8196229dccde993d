"""``clientml``: one command line for the whole system.

Each command imports its module only when it runs, so a command never pays for (or needs) the
dependencies of another: the serving image has no Airflow or Spark. ``train`` lives here because it is
the one command that depends on several modules: it runs the ds module's model selection or mle's
baseline, and the modules below never import the ones above (``de`` <- ``mle`` <- ``ds`` <- this CLI).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from clientml_mle.cli import _MODELS_HELP, _WAREHOUSE_HELP, _fail, _log_to_stderr, _print_json
from clientml_mle.cli import register as _register_mle

if TYPE_CHECKING:  # only for the annotations: a command imports what it needs when it runs
    import pandas as pd
    from clientml_de.settings import Settings

app = typer.Typer(
    help="Client classification system: generate data, run the ETL, train, score and serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory for clients.csv, sales.csv, ground_truth.csv")],
    clients: Annotated[int, typer.Option(help="Number of clients (10 to 5,000,000)")] = 10_000,
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


TRAINERS = ("ds", "default")


def _train_function(
    settings: Settings,
    *,
    trainer: str | None,
    models_dir: Path | None,
    seed: int | None,
    tracking_uri: str | None,
    model_name: str | None,
    tracking: bool,
    force_promote: bool,
    search_seconds: float | None,
    search_trials: int | None,
    ground_truth: Path | None,
) -> Callable[[pd.DataFrame], Any]:
    """The chosen trainer with every option bound: a training frame in, its result (``.summary()``) out."""
    from clientml_mle.tracking import MlflowTracker

    tracker = None
    if tracking:
        tracker = MlflowTracker.from_settings(settings)
        tracker.tracking_uri = tracking_uri or tracker.tracking_uri
        tracker.model_name = model_name or tracker.model_name
    n_jobs = settings.train_n_jobs
    run: Callable[..., Any]
    if (trainer or settings.trainer) == "ds":
        from clientml_ds.train import cli_train

        run = partial(
            cli_train,
            n_jobs=n_jobs,
            search_seconds=search_seconds,
            search_trials=search_trials,
            ground_truth=ground_truth,
        )
    else:
        from clientml_mle.estimators import default_estimator
        from clientml_mle.train import train

        run = partial(train, lambda specs: default_estimator(specs, n_jobs=n_jobs))
    return partial(
        run,
        seed=settings.seed if seed is None else seed,
        test_size=settings.test_size,
        models_dir=models_dir or settings.models_dir,
        tracking=tracker,
        name=model_name or settings.model_name,
        force_promote=force_promote,
    )


@app.command("train")
def train_command(
    *,
    warehouse: Annotated[str | None, typer.Option(help=_WAREHOUSE_HELP)] = None,
    models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed and data, same model")] = None,
    wait_timeout: Annotated[
        float | None, typer.Option(help="Seconds to wait for the feature_store table to appear")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: CLIENTML_MLFLOW_TRACKING_URI)")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model name")] = None,
    tracking: Annotated[bool, typer.Option(help="Log to MLflow and apply the champion rule")] = True,
    force_promote: Annotated[bool, typer.Option(help="Make the new version champion regardless")] = False,
    trainer: Annotated[
        str | None,
        typer.Option(
            envvar="CLIENTML_TRAINER",
            help="ds: model selection of the ds module (default when installed); default: mle's baseline",
        ),
    ] = None,
    search_seconds: Annotated[
        float | None, typer.Option(help="ds: time box of the hyperparameter search (a safety cap)")
    ] = None,
    search_trials: Annotated[
        int | None,
        typer.Option(
            help="ds: LightGBM search trials, the budget (default: scaled with the rows, 15-60; 0: the time box alone)"
        ),
    ] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help="ds: ground_truth.csv of generated data (best achievable AUC)")
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(help="Keep running: train again whenever feature_store's content changes (a service)"),
    ] = False,
    poll_seconds: Annotated[
        float | None,
        typer.Option(help="--watch: seconds between two looks at feature_store (default: CLIENTML_WATCH_POLL_S)"),
    ] = None,
) -> None:
    """Wait for feature_store, select and train a model, save a bundle, track it; print a JSON summary.

    With --watch, keep watching feature_store and train on each new content (one summary per training).
    """
    _log_to_stderr()
    if trainer is not None and trainer not in TRAINERS:
        _fail(f"--trainer must be 'ds' or 'default', not {trainer!r}")
    if watch and wait_timeout is not None:
        _fail("--wait-timeout does not apply to --watch: it waits for feature_store as long as it runs")
    if not watch and poll_seconds is not None:
        _fail("--poll-seconds applies only to --watch")
    from clientml_de.settings import get_settings
    from clientml_de.warehouse import WarehouseError
    from clientml_mle.features import training_frame, wait_for_table
    from clientml_mle.pointers import BundleIntegrityError

    settings = get_settings()
    run = _train_function(
        settings,
        trainer=trainer,
        models_dir=models_dir,
        seed=seed,
        tracking_uri=tracking_uri,
        model_name=model_name,
        tracking=tracking,
        force_promote=force_promote,
        search_seconds=search_seconds,
        search_trials=search_trials,
        ground_truth=ground_truth,
    )
    url = warehouse or settings.warehouse_url
    if watch:
        _watch(settings, url, models_dir or settings.models_dir, run, poll_seconds)
        return
    try:
        timeout = settings.wait_timeout_s if wait_timeout is None else wait_timeout
        wait_for_table(url, timeout_s=timeout, poll_s=settings.wait_poll_s)
        result = run(training_frame(url))
    except (TimeoutError, WarehouseError, BundleIntegrityError, ValueError) as exc:
        _fail(str(exc))
    _print_json(result.summary())


def _watch(
    settings: Settings, url: str, models_dir: Path, run: Callable[[pd.DataFrame], Any], poll_s: float | None
) -> None:
    """``clientml train --watch``: the loop of :mod:`clientml_mle.watch` until SIGTERM or SIGINT (exit 0)."""
    from clientml_mle.watch import STATUS_FILE, Watcher

    def train_once(frame: pd.DataFrame) -> dict[str, Any]:
        summary: dict[str, Any] = run(frame).summary()
        _print_json(summary)
        return summary

    try:
        poll = settings.watch_poll_s if poll_s is None else poll_s
        watcher = Watcher(url, models_dir, train_once, settings.state_dir / STATUS_FILE, poll_s=poll)
    except ValueError as exc:
        _fail(str(exc))
    watcher.run(handle_signals=True)


@app.command("train-status")
def train_status_command(
    max_age: Annotated[
        float | None,
        typer.Option(help="Seconds a heartbeat stays fresh (default: 4 x CLIENTML_WATCH_POLL_S)"),
    ] = None,
) -> None:
    """Exit 0 and print the status when `clientml train --watch` is alive (fresh heartbeat), 1 otherwise."""
    from clientml_de.settings import get_settings
    from clientml_mle.watch import STATUS_FILE, StatusError, check_status

    settings = get_settings()
    try:
        status = check_status(
            settings.state_dir / STATUS_FILE, 4 * settings.watch_poll_s if max_age is None else max_age
        )
    except StatusError as exc:
        _fail(str(exc))
    _print_json(status)


_register_mle(app)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
