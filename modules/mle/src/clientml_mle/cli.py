"""``clientml train | score | serve``: the mle commands, added to the main ``clientml`` app by :func:`register`.

Every command imports what it needs only when it runs (MLflow, LightGBM and the API are heavy).
Options default to the ``CLIENTML_*`` settings (:func:`clientml_de.settings.get_settings`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

_WAREHOUSE_HELP = "duckdb:///file.duckdb, postgresql://..., spark:///dir (default: CLIENTML_WAREHOUSE_URL)"
_MODELS_HELP = "Directory of model bundles and the LATEST pointer (default: CLIENTML_MODELS_DIR)"


def _print_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


def _log_to_stderr() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("clientml_mle").setLevel(logging.INFO)


def _trainer(requested: str | None) -> str:
    """``ds`` (the ds module's model selection) when installed, unless ``default`` is asked for."""
    import importlib.util

    installed = importlib.util.find_spec("clientml_ds") is not None
    choice = requested or ("ds" if installed else "default")
    if choice not in ("ds", "default"):
        _fail(f"--trainer must be 'ds' or 'default', not {choice!r}")
    if choice == "ds" and not installed:
        _fail("--trainer ds needs the clientml-ds package, which is not installed here")
    return choice


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``score`` and ``serve`` commands to ``app``."""

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
            int | None, typer.Option(help="ds: LightGBM search trials, the budget (0: the time box alone)")
        ] = None,
        ground_truth: Annotated[
            Path | None, typer.Option(help="ds: ground_truth.csv of generated data (best achievable AUC)")
        ] = None,
    ) -> None:
        """Wait for feature_store, select and train a model, save a bundle, track it; print a JSON summary."""
        _log_to_stderr()
        from clientml_de.settings import get_settings
        from clientml_de.warehouse import WarehouseError

        from clientml_mle.bundle import BundleIntegrityError
        from clientml_mle.features import training_frame, wait_for_table
        from clientml_mle.tracking import MlflowTracker
        from clientml_mle.train import default_estimator, train

        settings = get_settings()
        url = warehouse or settings.warehouse_url
        timeout = settings.wait_timeout_s if wait_timeout is None else wait_timeout
        tracker = None
        if tracking:
            tracker = MlflowTracker.from_settings(settings)
            tracker.tracking_uri = tracking_uri or tracker.tracking_uri
            tracker.model_name = model_name or tracker.model_name
        try:
            wait_for_table(url, timeout_s=timeout, poll_s=settings.wait_poll_s)
            frame = training_frame(url)
            n_jobs = settings.train_n_jobs
            if _trainer(trainer) == "ds":
                from clientml_ds.train import cli_train

                ds_result = cli_train(
                    frame,
                    seed=settings.seed if seed is None else seed,
                    test_size=settings.test_size,
                    models_dir=models_dir or settings.models_dir,
                    tracking=tracker,
                    name=model_name or settings.model_name,
                    n_jobs=n_jobs,
                    force_promote=force_promote,
                    search_seconds=search_seconds,
                    search_trials=search_trials,
                    ground_truth=ground_truth,
                )
                _print_json(ds_result.summary())
                return
            result = train(
                lambda specs: default_estimator(specs, n_jobs=n_jobs),
                frame,
                seed=settings.seed if seed is None else seed,
                test_size=settings.test_size,
                models_dir=models_dir or settings.models_dir,
                tracking=tracker,
                name=model_name or settings.model_name,
                force_promote=force_promote,
            )
        except (TimeoutError, WarehouseError, BundleIntegrityError, ValueError) as exc:
            _fail(str(exc))
        _print_json(result.summary())

    @app.command("score")
    def score_command(
        out: Annotated[Path, typer.Option(help="CSV file to write: client_id,probability,label")],
        warehouse: Annotated[str | None, typer.Option(help=_WAREHOUSE_HELP)] = None,
        models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
        champion: Annotated[
            bool,
            typer.Option(
                "--champion/--latest",
                help="Score with the CHAMPION bundle (promoted by the gate; the default) or the newest (LATEST)",
            ),
        ] = True,
    ) -> None:
        """Score every unlabeled client with the champion bundle; print a JSON summary."""
        _log_to_stderr()
        from clientml_de.settings import get_settings
        from clientml_de.warehouse import WarehouseError

        from clientml_mle.bundle import (
            CHAMPION_FILE,
            LATEST_FILE,
            BundleIntegrityError,
            read_pointer,
            resolve_bundle_dir,
        )
        from clientml_mle.score import score

        settings = get_settings()
        directory = models_dir or settings.models_dir
        pointer = CHAMPION_FILE if champion else LATEST_FILE
        try:
            if champion and Path(directory).is_dir() and read_pointer(directory, CHAMPION_FILE) is None:
                newest = read_pointer(directory, LATEST_FILE)
                _fail(
                    f"{directory}: no champion model yet (no model has passed the champion gate: train with "
                    "MLflow tracking on)"
                    + (f"; to score with the newest bundle {newest} anyway, pass --latest" if newest else "")
                )
            version = resolve_bundle_dir(directory, pointer).name
            rows = score(warehouse or settings.warehouse_url, directory, out, pointer=pointer)
        except (WarehouseError, BundleIntegrityError, FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        _print_json({"out": str(out), "rows": rows, "bundle_version": version, "pointer": pointer})

    @app.command("serve")
    def serve_command(
        *,
        models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
        warehouse: Annotated[str | None, typer.Option(help="Warehouse for predictions by client_id (optional)")] = None,
        host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1)")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
        workers: Annotated[int | None, typer.Option(help="Worker processes (default 1)")] = None,
        api_key_env: Annotated[
            str | None,
            typer.Option(help="Name of the environment variable holding the API key (default CLIENTML_API_KEY)"),
        ] = None,
    ) -> None:
        """Serve the champion bundle over HTTP (the prediction API)."""
        _log_to_stderr()
        from clientml_de.settings import environment_variable, get_settings

        api_key = None
        if api_key_env:
            api_key = environment_variable(api_key_env)
            if not api_key:
                _fail(f"environment variable {api_key_env} (--api-key-env) is not set or empty")
        settings = get_settings()
        from clientml_mle.serve.server import run_server

        run_server(
            models_dir=models_dir or settings.models_dir,
            warehouse_url=warehouse,
            host=host or settings.host,
            port=settings.port if port is None else port,
            workers=workers or settings.workers,
            api_key=api_key or settings.api_key_value(),
        )
