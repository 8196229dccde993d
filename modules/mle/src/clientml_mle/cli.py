"""``clientml score | monitor | serve``: the mle commands, added to the main ``clientml`` app by :func:`register`.

(``clientml train`` is the main app's own: it chooses between the ds trainer and mle's baseline, and mle
never depends on ds.) Every command imports what it needs only when it runs (MLflow, LightGBM and the API
are heavy). Options default to the ``CLIENTML_*`` settings (:func:`clientml_de.settings.get_settings`).
The helpers ``_print_json``, ``_fail`` and ``_log_to_stderr`` are shared with the main app.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

_WAREHOUSE_HELP = "duckdb:///file.duckdb, postgresql://..., spark:///dir (default: CLIENTML_WAREHOUSE_URL)"
_MODELS_HELP = "Directory of model bundles and their CHAMPION and LATEST pointers (default: CLIENTML_MODELS_DIR)"
# `clientml monitor`'s exit code when drift is found (0: none; 1: an error), for scripts.
DRIFT_EXIT_CODE = 3


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


def register(app: typer.Typer) -> None:
    """Add the ``score``, ``monitor`` and ``serve`` commands to ``app``."""

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

        from clientml_mle.pointers import (
            CHAMPION_FILE,
            LATEST_FILE,
            MANIFEST_FILE,
            BundleIntegrityError,
            NoModelError,
            read_pointer,
            require_pointer,
            resolve_bundle_dir,
        )
        from clientml_mle.score import score

        settings = get_settings()
        directory = models_dir or settings.models_dir
        pointer = CHAMPION_FILE if champion else LATEST_FILE
        try:
            if Path(directory).is_dir() and not (Path(directory) / MANIFEST_FILE).is_file():  # not a bundle itself
                try:
                    require_pointer(directory, pointer)
                except NoModelError as exc:
                    newest = read_pointer(directory, LATEST_FILE) if champion else None
                    _fail(
                        str(exc)
                        + (f"; to score with the newest bundle {newest} anyway, pass --latest" if newest else "")
                    )
            version = resolve_bundle_dir(directory, pointer).name
            rows = score(warehouse or settings.warehouse_url, directory, out, pointer=pointer)
        except (WarehouseError, BundleIntegrityError, FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        _print_json({"out": str(out), "rows": rows, "bundle_version": version, "pointer": pointer})

    @app.command("monitor")
    def monitor_command(
        *,
        warehouse: Annotated[str | None, typer.Option(help=_WAREHOUSE_HELP)] = None,
        models_dir: Annotated[Path | None, typer.Option(help=_MODELS_HELP)] = None,
        report_dir: Annotated[
            Path | None, typer.Option(help="Where the HTML report goes (default: CLIENTML_MONITOR_REPORT_DIR)")
        ] = None,
        run_id: Annotated[str | None, typer.Option(help="The run's id in drift_report (a rerun replaces it)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON")] = False,
    ) -> None:
        """Compare feature_store and the scores with the champion's reference profile; exit 3 on drift."""
        _log_to_stderr()
        from clientml_de.settings import get_settings
        from clientml_de.warehouse import WarehouseError

        from clientml_mle.monitor.result import summary_text
        from clientml_mle.monitor.run import run_monitor
        from clientml_mle.pointers import BundleIntegrityError

        settings = get_settings()
        try:
            result = run_monitor(
                warehouse or settings.warehouse_url,
                models_dir or settings.models_dir,
                report_dir=report_dir or settings.monitor_report_dir,
                run_id=run_id,
            )
        except (WarehouseError, BundleIntegrityError, FileNotFoundError, NotADirectoryError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json(result.to_dict())
        else:
            typer.echo(summary_text(result))
        raise typer.Exit(code=DRIFT_EXIT_CODE if result.drifted else 0)

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
        from clientml_mle.pointers import BundleIntegrityError
        from clientml_mle.serve.fetch import BundleFetchError
        from clientml_mle.serve.server import run_server

        try:
            run_server(
                models_dir=models_dir or settings.models_dir,
                warehouse_url=warehouse,
                host=host or settings.host,
                port=settings.port if port is None else port,
                workers=workers or settings.workers,
                api_key=api_key or settings.api_key_value(),
            )
        except (BundleIntegrityError, BundleFetchError, FileNotFoundError) as exc:  # before uvicorn: nothing to serve
            _fail(str(exc))
