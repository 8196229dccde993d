"""``ServeConfig``: everything a server worker needs, built once and given to every worker explicitly, and
``create_app_from_config``, the workers' app factory.

Both live in this light module (dataclasses only) because the server's supervisor process imports them to
hand them to the workers it spawns: it never serves, so it never imports FastAPI or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clientml_de.settings import Settings
    from fastapi import FastAPI

DEFAULT_MAX_RECORDS = 10_000  # records per request (CLIENTML_MAX_RECORDS)
# prometheus-client's multiprocess directory variable (set through clientml_de.settings); here, not in
# ``metrics``, so that the supervisor exporting it imports neither prometheus-client nor numpy.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServeConfig:
    """The configuration of one server: frozen, and picklable (uvicorn's supervisor sends it to the worker
    processes it spawns), so no worker reads it back from the environment."""

    # A bundle's own directory (served as it is), or a models directory (its CHAMPION, else LATEST bundle).
    models_dir: Path
    warehouse_url: str | None = None  # the feature store of /v1/predict/clients; None: that route answers 503
    api_key: str | None = field(default=None, repr=False)  # None: the API is open
    max_records: int = DEFAULT_MAX_RECORDS
    log_level: str = "INFO"
    metrics_dir: Path | None = None  # prometheus-client's multiprocess directory; None: one process
    # Seconds between two reads of a models directory's pointer, each worker swapping in the version it
    # names (CLIENTML_RELOAD_POLL_S through from_settings); 0: loaded once. A bundle's directory is never watched.
    reload_poll_s: float = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        models_dir: Path,
        *,
        warehouse_url: str | None = None,
        api_key: str | None = None,
    ) -> ServeConfig:
        """The configuration of ``settings`` (``CLIENTML_*``), with the explicit options given first.

        ``warehouse_url`` None means ``CLIENTML_WAREHOUSE_URL`` when that variable is set, else none (the
        settings' default warehouse is not assumed to exist); ``api_key`` None means ``CLIENTML_API_KEY``.
        """
        if not warehouse_url and settings.warehouse_url_is_set:
            warehouse_url = settings.warehouse_url
        return cls(
            models_dir=Path(models_dir),
            warehouse_url=warehouse_url or None,
            api_key=api_key or settings.api_key_value(),
            max_records=settings.max_records,
            log_level=settings.log_level,
            metrics_dir=settings.prometheus_multiproc_dir,
            reload_poll_s=settings.reload_poll_s,
        )


def create_app_from_config(config: ServeConfig) -> FastAPI:
    """The app of one server worker: JSON logs at ``config.log_level``, then
    :func:`~clientml_mle.serve.app.create_app` serving ``config.models_dir`` (watched every
    ``config.reload_poll_s`` seconds when it is a models directory; the factory ``run_server`` gives
    uvicorn)."""
    from clientml_mle.serve.app import create_app
    from clientml_mle.serve.logging import configure_logging

    configure_logging(config.log_level)
    return create_app(
        models_dir=config.models_dir,
        reload_poll_s=config.reload_poll_s,
        warehouse_url=config.warehouse_url,
        api_key=config.api_key,
        max_records=config.max_records,
        metrics_dir=config.metrics_dir,
    )
