"""The suite's shared fixtures, markers and CI rule: a pytest plugin the root ``conftest.py`` registers.

- services: ``postgres_server`` (a throwaway PostgreSQL server for the session), ``postgres_url`` (a
  fresh database on it), ``restartable_postgres`` (a server of the test's own, to stop and start);
  ``real_data`` (the real datasets, ``../shared/data/real`` or ``CLIENTML_REAL_DATA``); ``spark_cluster``
  (a Spark standalone master and worker on loopback, the test's own). A test that uses them is marked
  ``postgres`` / ``realdata`` / ``spark`` automatically.
- generated data: ``worlds`` (sources and DuckDB feature stores made once per session), and the
  default world every module suite may use: ``source_dir`` (2,000 generated clients, seed 1) and
  ``warehouse_url`` (its feature_store on DuckDB; it follows a suite's own ``source_dir``), with
  ``small_source`` / ``small_warehouse`` for the same 2,000 clients under any override;
- ``runner``, a Typer ``CliRunner``; and, for every test, settings defaults pointing into its tmp dir.

A missing service or dataset skips a test locally and fails it in CI (``CI=true``), where a skipped
test also fails the run: CI must run every test.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from clientml_testkit.data import Worlds

if TYPE_CHECKING:
    from clientml_testkit.localpg import LocalPostgres
    from clientml_testkit.sparkcluster import StandaloneCluster

os.environ.setdefault("AIRFLOW__USAGE_DATA_COLLECTION__ENABLED", "False")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Airflow reads its configuration when first imported: point it at a throwaway home before any test
# can import it, so the suite never touches ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    from clientml_de.pipeline import embedded_airflow_env

    os.environ.update(embedded_airflow_env(Path(tempfile.mkdtemp(prefix="clientml-airflow-"))))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The default generated world: 2,000 clients, seed 1.
SMALL_CLIENTS = 2000
SMALL_SEED = 1
# Fixtures whose users are given a marker, so that ``-m "not postgres"`` leaves them out.
MARKED_BY_FIXTURE = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "restartable_postgres": "postgres",
    "real_data": "realdata",
    "spark_cluster": "spark",
}


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture (directly or through another fixture)."""
    for item in items:
        needs = {MARKED_BY_FIXTURE[name] for name in getattr(item, "fixturenames", ()) if name in MARKED_BY_FIXTURE}
        for marker in sorted(needs - {mark.name for mark in item.iter_markers()}):
            item.add_marker(marker)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        print(f"\nCI: {skipped} test(s) skipped; every test must run in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _local_postgres() -> Iterator[LocalPostgres]:
    """A throwaway server for the fixture that yields from this (skipped locally, failed in CI, without one)."""
    from clientml_testkit.localpg import PostgresUnavailableError, throwaway_server

    try:
        with throwaway_server() as server:
            yield server
    except PostgresUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The session's PostgreSQL server: its URL."""
    for server in _local_postgres():
        yield server.url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    from clientml_testkit.localpg import create_database

    return create_database(postgres_server, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def restartable_postgres() -> Iterator[LocalPostgres]:
    """A server of this test's own, which it may stop and start again (the session's server is shared)."""
    yield from _local_postgres()


@pytest.fixture
def spark_cluster() -> Iterator[StandaloneCluster]:
    """A Spark standalone master and one worker (1 core, 1 GB for executors), separate JVMs on loopback, stopped
    afterwards (skipped locally, failed in CI, without pyspark or Java)."""
    from clientml_testkit.sparkcluster import SparkClusterUnavailableError, standalone_cluster

    try:
        with standalone_cluster() as cluster:
            yield cluster
    except SparkClusterUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def real_data(pytestconfig: pytest.Config) -> Path:
    default = pytestconfig.rootpath.parent / "shared" / "data" / "real"
    root = Path(os.environ.get("CLIENTML_REAL_DATA", default))
    if not (root / "telco" / "clients.csv").is_file():
        unavailable(f"real datasets not found at {root}")
    return root


@pytest.fixture(scope="session")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Worlds:
    """Generated sources and DuckDB feature stores, each made once for the session."""
    return Worlds(tmp_path_factory.mktemp)


@pytest.fixture(scope="session")
def small_source(worlds: Worlds) -> Path:
    """2,000 generated clients (seed 1): ``clients.csv``, ``sales.csv``, ``ground_truth.csv``. Read-only."""
    return worlds.source(SMALL_CLIENTS, SMALL_SEED)


@pytest.fixture(scope="session")
def small_warehouse(worlds: Worlds, small_source: Path) -> str:
    """``small_source`` loaded into a DuckDB warehouse with its feature_store built. Read-only."""
    return worlds.warehouse(small_source)


@pytest.fixture(scope="session")
def source_dir(small_source: Path) -> Path:
    """The suite's generated source: ``small_source`` unless a module suite overrides it."""
    return small_source


@pytest.fixture(scope="session")
def warehouse_url(worlds: Worlds, source_dir: Path) -> str:
    """``source_dir`` loaded into a DuckDB warehouse with its feature_store built. Read-only."""
    return worlds.warehouse(source_dir)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings defaults point into the test's tmp dir, never into the repository; each test rereads them."""
    from clientml_de.settings import get_settings

    monkeypatch.setenv("CLIENTML_MODELS_DIR", str(tmp_path / "default-models"))
    monkeypatch.setenv("CLIENTML_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'default-mlflow.db'}")
    monkeypatch.setenv("CLIENTML_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "default-mlartifacts"))
    monkeypatch.setenv("CLIENTML_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'default-wh.duckdb'}")
    monkeypatch.setenv("CLIENTML_TRAIN_N_JOBS", "1")
    monkeypatch.delenv("CLIENTML_TRAINER", raising=False)
    monkeypatch.delenv("CLIENTML_API_KEY", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# The loggers that the CLI (root, via logging.basicConfig) and the API (serve/logging.py's dictConfig) give
# handlers of their own.
_CONFIGURED_LOGGERS = ("", "clientml_mle", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test leaves these loggers' handlers and levels as it found them.

    A command run in-process by ``CliRunner`` configures logging on the runner's stream, which is closed when
    the command returns: without this, every later record (from a later test, or a server's watcher thread)
    printed "--- Logging error --- ValueError: I/O operation on closed file".
    """
    loggers = [logging.getLogger(name) for name in _CONFIGURED_LOGGERS]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
