"""``run_server``: uvicorn with N worker processes, each given the same :class:`ServeConfig` explicitly.

The app factory is ``functools.partial(create_app_from_config, config)``; with several workers uvicorn's
supervisor pickles it (config included) to every process it spawns, so nothing reaches the workers
through the environment except prometheus-client's own ``PROMETHEUS_MULTIPROC_DIR``, which that library
reads at import.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from clientml_mle.serve.config import ServeConfig
from clientml_mle.serve.logging import configure_logging, log_config
from clientml_mle.serve.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)

WORKER_HEALTHCHECK_S = 60


def run_server(
    models_dir: Path,
    warehouse_url: str | None,
    host: str,
    port: int,
    workers: int,
    *,
    api_key: str | None = None,
) -> None:
    """Serve the champion bundle of ``models_dir`` until interrupted (LATEST where no gate has run).

    ``warehouse_url`` is the feature store of ``/v1/predict/clients``; ``None`` means
    ``CLIENTML_WAREHOUSE_URL`` when that variable is set, else no feature store (that route answers 503).
    ``api_key`` None means ``CLIENTML_API_KEY`` (unset or empty: the API is open); the record limit and the
    log level come from the settings (``CLIENTML_MAX_RECORDS``, ``CLIENTML_LOG_LEVEL``).

    The bundle's hashes are checked here first, so a missing or altered bundle stops the command at once
    (BundleIntegrityError, FileNotFoundError); each worker then loads exactly that version, verifies its
    fast path and turns ready. With ``workers > 1`` the Prometheus metrics run in multiprocess mode (a
    temporary directory unless ``PROMETHEUS_MULTIPROC_DIR`` names one, removed on exit) so that
    ``/metrics`` sums all workers.
    """
    from clientml_de.settings import export_environment, get_settings

    from clientml_mle.bundle import verify_bundle
    from clientml_mle.pointers import CHAMPION_FILE, LATEST_FILE, read_pointer, resolve_bundle_dir

    settings = get_settings()
    configure_logging(settings.log_level)
    # Serve the version the champion gate promoted; LATEST only where no gate has run (no tracking).
    has_champion = (Path(models_dir) / CHAMPION_FILE).is_file() and read_pointer(models_dir, CHAMPION_FILE)
    bundle_dir = resolve_bundle_dir(models_dir, CHAMPION_FILE if has_champion else LATEST_FILE)
    manifest = verify_bundle(bundle_dir)
    log.info(
        "serving model %s %s on http://%s:%d with %d worker(s)", manifest.name, manifest.version, host, port, workers
    )
    # The workers load exactly the verified version, even if a pointer moves meanwhile.
    config = ServeConfig.from_settings(settings, bundle_dir.resolve(), warehouse_url=warehouse_url, api_key=api_key)
    temporary = None
    if workers > 1 and config.metrics_dir is None:
        temporary = Path(tempfile.mkdtemp(prefix="clientml-metrics-"))
        config = replace(config, metrics_dir=temporary)
    if config.metrics_dir is not None:
        export_environment({MULTIPROC_ENV: str(config.metrics_dir)})  # read by prometheus-client in the workers
    try:
        serve(config, host, port, workers)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def serve(config: ServeConfig, host: str, port: int, workers: int) -> None:
    """Run uvicorn on ``host:port`` until interrupted: the app in this process for one worker, else
    ``workers`` spawned processes sharing one socket. Raises SystemExit(3) if the server cannot start."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from clientml_mle.serve.app import create_app_from_config

    uvicorn_config = uvicorn.Config(
        app=functools.partial(create_app_from_config, config),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(config.log_level),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # The supervisor kills a worker that does not answer its ping in time; importing the ML stack and
        # verifying the model can take longer than uvicorn's default 5 s on a busy machine.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
    if workers > 1:  # what uvicorn.run does, which takes only an import string for several workers
        Multiprocess(uvicorn_config, sockets=[uvicorn_config.bind_socket()]).run()
        return
    server = uvicorn.Server(uvicorn_config)
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
