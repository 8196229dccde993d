"""``run_server``: uvicorn with N worker processes, each given the same :class:`ServeConfig` explicitly.

The app factory is ``functools.partial(create_app_from_config, config)``; with several workers uvicorn's
supervisor pickles it (config included) to every process it spawns, so nothing reaches the workers
through the environment except prometheus-client's own ``PROMETHEUS_MULTIPROC_DIR``, which that library
reads at import. The supervisor imports neither FastAPI nor the model's libraries: only the workers serve.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from clientml_mle.serve.config import MULTIPROC_ENV, ServeConfig
from clientml_mle.serve.logging import configure_logging, log_config

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
    ``api_key`` None means ``CLIENTML_API_KEY`` (unset or empty: the API is open); the record limit, the
    log level and the pointer's polling period come from the settings (``CLIENTML_MAX_RECORDS``,
    ``CLIENTML_LOG_LEVEL``, ``CLIENTML_RELOAD_POLL_S``).

    A models directory is served as it evolves: it may hold no bundle yet (the API is live but not ready,
    "waiting for a champion bundle"), and each worker swaps in the version its pointer names, checked
    (:class:`~clientml_mle.serve.reload.ModelWatcher`). A bundle's own directory, or any models directory
    with ``CLIENTML_RELOAD_POLL_S=0``, is resolved and its hashes checked here first, so that a missing or
    altered bundle stops the command at once; each worker then loads exactly that version.

    With ``workers > 1`` the Prometheus metrics run in multiprocess mode (a temporary directory unless
    ``PROMETHEUS_MULTIPROC_DIR`` names one, removed on exit) so that ``/metrics`` sums all workers.

    With ``CLIENTML_BUNDLE_S3_URI`` set, the bundle ``CLIENTML_BUNDLE`` names is first downloaded from
    that bucket into ``models_dir`` and ``CHAMPION`` pointed at it (:func:`~clientml_mle.serve.fetch.fetch_bundle`,
    the deployed container's start), so the checks above apply to it before any worker starts.

    Raises:
        FileNotFoundError: ``models_dir`` does not exist, or (not watching) holds no bundle; or the bucket
            lacks the bundle to fetch.
        BundleIntegrityError: (a bundle's own directory, or not watching) the bundle is altered or
            incomplete, or a pointer names no bundle.
        BundleFetchError: the bucket could not be read.
    """
    from clientml_de.settings import export_environment, get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.bundle_s3_uri:
        from clientml_mle.serve.fetch import fetch_bundle

        fetch_bundle(settings.bundle_s3_uri, settings.bundle, Path(models_dir), region=settings.aws_region)
    served = _served_path(Path(models_dir), settings.reload_poll_s)
    config = ServeConfig.from_settings(settings, served, warehouse_url=warehouse_url, api_key=api_key)
    log.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
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


def _served_path(models_dir: Path, reload_poll_s: float) -> Path:
    """What the workers are given: ``models_dir`` itself when they watch it, else the one verified bundle.

    Raises FileNotFoundError or BundleIntegrityError (see :func:`run_server`).
    """
    from clientml_mle.manifest import verify_bundle
    from clientml_mle.pointers import MANIFEST_FILE, resolve_bundle_dir, serving_pointer

    if reload_poll_s > 0 and not (models_dir / MANIFEST_FILE).is_file():
        if not models_dir.is_dir():
            raise FileNotFoundError(f"{models_dir}: no such models directory or bundle")
        log.info(
            "following the CHAMPION pointer of %s (LATEST until a model passes the champion gate), reread every %g s",
            models_dir,
            reload_poll_s,
        )
        return models_dir.resolve()
    bundle_dir = resolve_bundle_dir(models_dir, serving_pointer(models_dir)[0])
    manifest = verify_bundle(bundle_dir)
    log.info(
        "serving model %s %s (not watched: serving another bundle needs a restart)", manifest.name, manifest.version
    )
    # The workers load exactly the verified version, even if a pointer moves meanwhile.
    return bundle_dir.resolve()


def serve(config: ServeConfig, host: str, port: int, workers: int) -> None:
    """Run uvicorn on ``host:port`` until interrupted: the app in this process for one worker, else
    ``workers`` spawned processes sharing one socket. Raises SystemExit(3) if the server cannot start."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from clientml_mle.serve.config import create_app_from_config

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
