"""Suite-wide fixtures and the CI rule that a skipped test is a failed run.

PostgreSQL is a throwaway server started from the machine's binaries for the whole session; the
real datasets are looked up at ``../shared/data/real`` (or ``CLIENTML_REAL_DATA``).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW__USAGE_DATA_COLLECTION__ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Airflow reads its configuration when first imported: point it at a throwaway home before any test
# can import it, so the suite never touches ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    from clientml_de.pipeline import embedded_airflow_env

    os.environ.update(embedded_airflow_env(Path(tempfile.mkdtemp(prefix="clientml-airflow-"))))

REPO_ROOT = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        print(f"\nCI: {skipped} test(s) skipped; every test must run in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    from clientml_testkit.localpg import PostgresUnavailableError, throwaway_postgres

    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailableError as exc:
        unavailable(str(exc))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = Path(os.environ.get("CLIENTML_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))
    if not (root / "telco" / "clients.csv").is_file():
        unavailable(f"real datasets not found at {root}")
    return root
