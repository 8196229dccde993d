"""Run the three DAGs through Airflow itself, embedded: ``dag.test()`` on a local metadata database.

This is what ``clientml pipeline`` does. The DAGs run in dependency order (clients, sales, then
process_data, which the scheduler would trigger from the two assets) with the sources and the
warehouse passed as DAG params. The summary comes from the warehouse's ``load_runs`` table, which
the load tasks write in the same transaction as the data.
"""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from clientml_de.contract import FEATURE_STORE
from clientml_de.settings import export_environment, get_settings, process_environment
from clientml_de.warehouse import LOAD_RUNS, connect

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ORDER = ("load_client_data", "load_sales_data", "process_data")


class PipelineError(Exception):
    """A DAG run did not succeed."""


@dataclass
class PipelineSummary:
    warehouse: str
    files: list[dict[str, Any]] = field(default_factory=list)
    feature_store_rows: int = 0
    feature_set_version: str | None = None
    dag_runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.warehouse,
            "files": self.files,
            FEATURE_STORE: {
                "rows": self.feature_store_rows,
                "feature_set_version": self.feature_set_version,
            },
            "dag_runs": self.dag_runs,
            "seconds": round(self.seconds, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def embedded_airflow_env(home: Path) -> dict[str, str]:
    """Environment of an embedded Airflow: local SQLite metadata, our DAGs, no examples, no telemetry."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def prepare_airflow(home: Path) -> None:
    """Point this process at the embedded Airflow and create its metadata database once."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = embedded_airflow_env(home)
    export_environment(env)
    if not (home / "airflow.db").exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            env=process_environment(),
            stdout=subprocess.DEVNULL,
        )


def load_dags() -> dict[str, Any]:
    """Parse the DAG folder (import errors are a failure, not a warning); tasks are not retried here."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_FOLDER))
    if bag.import_errors:
        raise PipelineError(f"DAG import errors: {bag.import_errors}")
    dags = {dag_id: bag.get_dag(dag_id) for dag_id in DAG_ORDER}
    # Embedded, a retry of a local file cannot help and would only make the user wait a minute.
    for dag in dags.values():
        for task in dag.tasks:
            task.retries = 0
    return dags


def run_pipeline(
    clients: str,
    sales: str,
    warehouse_url: str,
    dataset_config: Path | None = None,
    airflow_home: Path | None = None,
) -> PipelineSummary:
    """Run load_client_data, load_sales_data and process_data, and summarise what they did.

    ``airflow_home`` defaults to ``<CLIENTML_STATE_DIR>/airflow``. Raises :class:`PipelineError` when a DAG run
    does not succeed, naming the task and its error.
    """
    started = time.monotonic()
    _check_local_sources({"clients": clients, "sales": sales})
    prepare_airflow(airflow_home or get_settings().state_dir / "airflow")
    dags = load_dags()
    conf = {
        "clients_source": clients,
        "sales_source": sales,
        "warehouse_url": warehouse_url,
        "dataset_config": str(dataset_config.resolve()) if dataset_config else "",
    }
    summary = PipelineSummary(warehouse=connect(warehouse_url).redacted_url)
    for dag_id in DAG_ORDER:
        dag = dags[dag_id]
        run_conf = {key: value for key, value in conf.items() if key in dag.params}
        dag_started = time.monotonic()
        # Airflow logs to stdout; keep stdout for the JSON summary.
        with contextlib.redirect_stdout(sys.stderr):
            run = dag.test(run_conf=run_conf)
        summary.dag_runs.append(
            {
                "dag_id": dag_id,
                "run_id": run.run_id,
                "state": str(run.state),
                "seconds": round(time.monotonic() - dag_started, 2),
            }
        )
        if str(run.state) != "success":
            failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) != "success"]
            cause = "; ".join(task_errors(dag_id, run.run_id).values()) or "see the log above"
            raise PipelineError(f"DAG {dag_id} {run.state} in task(s) {', '.join(failed)}: {cause}")
    _summarise_warehouse(summary, warehouse_url)
    summary.seconds = time.monotonic() - started
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (the tasks run in it), or of the largest
    child it waited for (``airflow db migrate``) if that was larger: the kernel's high-water marks.

    This process's own is ``VmHWM`` where Linux has it: ``ru_maxrss`` would also count the memory of the
    process that started this one, as it was when it forked (Linux keeps that mark across ``exec``).
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1])  # kB
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _check_local_sources(sources: dict[str, str]) -> None:
    """Fail at once, before Airflow starts, when a local source file is missing (remote URIs are fetched later)."""
    for what, source in sources.items():
        if urlparse(source).scheme in ("", "file"):
            path = Path(source.removeprefix("file://")).expanduser()
            if not path.is_file():
                raise PipelineError(f"{what} file {path}: file not found")


def task_errors(dag_id: str, run_id: str) -> dict[str, str]:
    """The errors of the failed tasks of one DAG run, by task id, read from the Airflow metadata database.

    Each is the ``"<ExceptionType>: <message>"`` that :func:`clientml_de.dag_support.record_failure` kept
    as the task's XCom; a task that failed without running its callable (e.g. upstream failed) has none.
    """
    # Airflow is imported only here and in load_dags: it reads its configuration when first imported,
    # and prepare_airflow sets that configuration first.
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from clientml_de.dag_support import FAILURE_XCOM_KEY

    query = XComModel.get_many(run_id=run_id, dag_ids=dag_id, key=FAILURE_XCOM_KEY)
    with create_session() as session:
        # Airflow annotates the query as Select[tuple[XComModel]]; its scalars are XComModel rows.
        xcoms: Iterable[Any] = session.scalars(query)
        return {xcom.task_id: str(XComModel.deserialize_value(xcom)) for xcom in xcoms}


def _summarise_warehouse(summary: PipelineSummary, warehouse_url: str) -> None:
    warehouse = connect(warehouse_url)
    try:
        runs = warehouse.table(LOAD_RUNS).to_pandas().sort_values("loaded_at")
        for table in ("clients", "sales"):
            latest = runs[runs.source_table == table].iloc[-1]
            summary.files.append(
                {
                    "table": table,
                    "source_file": latest.source_file,
                    "rows_read": int(latest.rows_read),
                    "rows_loaded": int(latest.rows_loaded),
                    "rows_rejected": int(latest.rows_rejected),
                    "duplicates": int(latest.duplicates),
                    "ignored_columns": [c for c in str(latest.ignored_columns).split(",") if c],
                }
            )
        features = warehouse.table(FEATURE_STORE)
        summary.feature_store_rows = int(features.count().to_pyarrow().as_py())
        versions = features.select("feature_set_version").distinct().to_pyarrow()["feature_set_version"].to_pylist()
        summary.feature_set_version = versions[0] if versions else None
    finally:
        warehouse.close()
