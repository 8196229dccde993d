"""``run_server``: uvicorn with N worker processes, each building the app from the environment."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from clientml_mle.serve.app import SERVE_WAREHOUSE_ENV
from clientml_mle.serve.logging import configure_logging, log_config
from clientml_mle.serve.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)

APP_FACTORY = "clientml_mle.serve.app:create_app_from_env"
WORKER_HEALTHCHECK_S = 60


def run_server(models_dir: Path, warehouse_url: str | None, host: str, port: int, workers: int) -> None:
    """Serve the newest bundle of ``models_dir`` until interrupted.

    ``warehouse_url`` is the feature store of ``/v1/predict/clients``; ``None`` means
    ``CLIENTML_WAREHOUSE_URL`` when that variable is set, else no feature store (that route answers 503).

    The bundle's hashes are checked here first, so a missing or altered bundle stops the command at once;
    each worker then loads it, verifies its fast path and turns ready. The API key and the record limit
    come from ``CLIENTML_API_KEY`` / ``CLIENTML_MAX_RECORDS``. With ``workers > 1`` the Prometheus
    metrics run in multiprocess mode (a temporary ``PROMETHEUS_MULTIPROC_DIR``, removed on exit) so that
    ``/metrics`` sums all workers.
    """
    import uvicorn

    from clientml_mle.bundle import CHAMPION_FILE, LATEST_FILE, read_pointer, resolve_bundle_dir, verify_bundle

    configure_logging(os.environ.get("CLIENTML_LOG_LEVEL", "INFO"))
    # Serve the version the champion gate promoted; LATEST only where no gate has run (no tracking).
    has_champion = (Path(models_dir) / CHAMPION_FILE).is_file() and read_pointer(models_dir, CHAMPION_FILE)
    bundle_dir = resolve_bundle_dir(models_dir, CHAMPION_FILE if has_champion else LATEST_FILE)
    manifest = verify_bundle(bundle_dir)
    log.info(
        "serving model %s %s on http://%s:%d with %d worker(s)", manifest.name, manifest.version, host, port, workers
    )
    # The workers load exactly the verified version, even if a pointer moves meanwhile.
    os.environ["CLIENTML_MODELS_DIR"] = str(bundle_dir.resolve())
    if warehouse_url:
        os.environ[SERVE_WAREHOUSE_ENV] = warehouse_url
    else:  # the workers fall back to CLIENTML_WAREHOUSE_URL when it is set
        os.environ.pop(SERVE_WAREHOUSE_ENV, None)
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="clientml-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(os.environ.get("CLIENTML_LOG_LEVEL", "INFO")),
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
            # The supervisor kills a worker that does not answer its ping in time; importing the ML stack
            # and verifying the model can take longer than uvicorn's default 5 s on a busy machine.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        )
    finally:
        if metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
