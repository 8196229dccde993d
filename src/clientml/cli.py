"""``clientml``: one command line for the whole system.

Each command imports its module only when it runs, so a command never pays for (or needs) the
dependencies of another: the serving image has no Airflow or Spark. ``train``, ``pipeline`` and ``retrain``
live here because they use several modules (the trainer of ds, the loop's DAGs of mle and ds in de's
embedded runner), and the modules below never import the ones above (``de`` <- ``mle`` <- ``ds`` <- this CLI).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
    shift: Annotated[
        list[str] | None,
        typer.Option(
            help="Generate a drop whose behaviour has moved, to show drift (repeatable): 'activity' (every "
            "client's purchase rate x0.5: fewer sales, less spend, older last sale) or 'segments' (3 in 7 "
            "consumers written as small_business or corporate: segment mix 0.70/0.20/0.10 -> 0.40/0.35/0.25); "
            "the other columns keep their distributions, labels follow the true probability. Default: none",
            metavar="activity|segments",
        ),
    ] = None,
) -> None:
    """Generate realistic sample clients and sales in the data contract's format."""
    from clientml_synthetic import generate as run_generate

    try:
        summary = run_generate(out, n_clients=clients, seed=seed, bad_rows=bad_rows, shift=shift or ())
    except ValueError as exc:
        _fail(str(exc))
    _print_json(summary.to_dict())


@app.command()
def pipeline(
    *,
    clients: Annotated[str, typer.Option(help="clients.csv: a path, or an http(s):// or s3:// URI")],
    sales: Annotated[str, typer.Option(help="sales.csv: a path, or an http(s):// or s3:// URI")],
    warehouse: Annotated[str, typer.Option(help="duckdb:///file.duckdb, postgresql://..., spark:///dir")],
    dataset_config: Annotated[Path | None, typer.Option(help="YAML declaring extra columns etc.")] = None,
    models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
    loop: Annotated[
        bool, typer.Option(help="After the ETL, the monitoring loop: score, monitor drift, retrain when asked")
    ] = True,
    airflow_home: Annotated[
        Path | None, typer.Option(help="Embedded Airflow state (default: <state dir>/airflow)")
    ] = None,
) -> None:
    """Run the DAGs through Airflow, embedded; print a summary.

    load_client_data, load_sales_data and process_data; then (unless --no-loop) score_clients, monitor_drift,
    and train_model when monitor_drift asked for retraining (then score_clients and monitor_drift again on a
    new champion), as the scheduler would run them from their assets.
    """
    _log_to_stderr()
    from clientml_de.pipeline import PipelineError, run_pipeline
    from clientml_de.settings import get_settings

    from clientml.loop import loop_conf, loop_folders, summarise_loop

    directory = models_dir or get_settings().models_dir
    if loop:
        directory.mkdir(parents=True, exist_ok=True)  # where train_model writes; the monitor reads it first
    try:
        summary = run_pipeline(
            clients,
            sales,
            warehouse,
            dataset_config,
            airflow_home,
            extra_folders=loop_folders() if loop else (),
            conf=loop_conf(warehouse, directory) if loop else None,
        )
    except (PipelineError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if loop:
        summary.loop = summarise_loop(summary.runs)
    _print_json(summary.to_dict())


@app.command()
def retrain(
    *,
    reason: Annotated[str, typer.Option(help="Why (kept in retrain_requests)")] = "asked for by hand",
    warehouse: Annotated[str | None, typer.Option(help=_WAREHOUSE_HELP)] = None,
    models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
    request_only: Annotated[
        bool,
        typer.Option(help="Only record the request, for a trainer service to handle (clientml train --watch)"),
    ] = False,
    airflow_home: Annotated[
        Path | None, typer.Option(help="Embedded Airflow state (default: <state dir>/airflow)")
    ] = None,
) -> None:
    """Ask for a training: record a manual request in retrain_requests, then run train_model (embedded).

    A manual request trains even on feature_store content a model was trained on; the champion gate decides.
    With --request-only (compose: docker compose exec trainer clientml retrain --request-only), the trainer
    service handles it at its next poll.
    """
    _log_to_stderr()
    from clientml_de.pipeline import PipelineError, run_embedded
    from clientml_de.settings import get_settings
    from clientml_de.warehouse import WarehouseError
    from clientml_mle.retrain import Source, request_retraining

    from clientml.loop import TRAIN_DAG, loop_conf, loop_folders, summarise_loop

    settings = get_settings()
    url = warehouse or settings.warehouse_url
    try:
        request = request_retraining(url, Source.MANUAL, reason)
    except WarehouseError as exc:
        _fail(str(exc))
    if request_only:
        _print_json({"request": request.to_dict()})
        return
    directory = models_dir or settings.models_dir
    directory.mkdir(parents=True, exist_ok=True)
    try:
        runs, held_back = run_embedded(loop_folders(), loop_conf(url, directory), airflow_home, start=[TRAIN_DAG])
    except ModuleNotFoundError as exc:  # no Airflow here (e.g. the trainer image): a service must handle it
        _fail(f"{exc}: cannot run train_model here; the request is recorded, pass --request-only next time")
    except (PipelineError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _print_json(
        {
            "request": request.to_dict(),
            "dag_runs": [run.to_dict() for run in runs],
            "held_back": held_back,
            "loop": summarise_loop(runs),
        }
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
    if watch and wait_timeout is not None:
        _fail("--wait-timeout does not apply to --watch: it waits for feature_store as long as it runs")
    if not watch and poll_seconds is not None:
        _fail("--poll-seconds applies only to --watch")
    from clientml_de.settings import get_settings
    from clientml_de.warehouse import WarehouseError
    from clientml_ds.trainer import configured_trainer
    from clientml_mle.features import training_frame, wait_for_table
    from clientml_mle.pointers import BundleIntegrityError

    settings = get_settings()
    try:
        run = configured_trainer(
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
    except ValueError as exc:
        _fail(str(exc))
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
