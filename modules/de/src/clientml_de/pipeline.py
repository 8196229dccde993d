"""Run DAGs through Airflow itself, embedded: ``dag.test()`` on a local metadata database.

This is what ``clientml pipeline`` does. :func:`run_dags` first runs the DAGs that are not scheduled on
assets (the two loads), in order, with the sources and the warehouse passed as DAG params; then it does
what the scheduler would do with the asset events those runs emitted, read from Airflow's own records
(``AssetEvent`` rows of each run): a DAG scheduled on assets runs once the events queued for it since its
last run satisfy its condition. With de's DAGs alone that is ``process_data`` after both loads. Other
modules add their DAG folders (:class:`DagFolder`; de never imports them: the root CLI passes them), e.g.
the monitoring loop: ``score_clients`` after ``process_data``, ``monitor_drift`` after it, ``train_model``
only if ``monitor_drift``'s run emitted ``retrain``. A DAG runs at most :data:`MAX_RUNS_PER_DAG` times
in one call, which bounds a loop that would not settle (the DAGs held back are listed in the summary).

Each folder is one Airflow DAG bundle (``[dag_processor] dag_bundle_config_list``); de's keeps Airflow's
default name, ``dags-folder``, and is ``[core] dags_folder``. The summary comes from the warehouse's
``load_runs`` table, which the load tasks write in the same transaction as the data, and from the runs'
task results (XCom), which the caller may summarise (:attr:`PipelineSummary.loop`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from clientml_de.contract import FEATURE_STORE
from clientml_de.settings import export_environment, get_settings, process_environment
from clientml_de.warehouse import LOAD_RUNS, connect

log = logging.getLogger(__name__)

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ORDER = ("load_client_data", "load_sales_data", "process_data")
# Airflow's name for the bundle of [core] dags_folder: de's DAGs keep it, so an existing embedded home sees
# the same bundle as before other folders were added.
DEFAULT_BUNDLE = "dags-folder"
LOCAL_BUNDLE_CLASS = "airflow.dag_processing.bundles.local.LocalDagBundle"
# The loop runs each DAG at most twice per call: e.g. the first pipeline scores (no champion yet), monitors,
# trains, then scores and monitors again with the new champion. A third run would mean a loop that does not settle.
MAX_RUNS_PER_DAG = 2
RETURN_VALUE_XCOM_KEY = "return_value"


class PipelineError(Exception):
    """A DAG run did not succeed, or a DAG cannot be run embedded."""


@dataclass(frozen=True)
class DagFolder:
    """A folder of DAG files (one Airflow DAG bundle named ``name``) and its DAG ids, in the order the
    runner prefers them when several are due at once."""

    name: str
    path: Path
    dag_ids: tuple[str, ...]


DE_DAGS = DagFolder(DEFAULT_BUNDLE, DAGS_FOLDER, DAG_ORDER)


@dataclass(frozen=True)
class DagRunRecord:
    """One embedded DAG run: its state, duration (s), the assets it emitted events for (names), the return
    value of each task that returned one (``outputs``, by task id) and the tasks it skipped."""

    dag_id: str
    run_id: str
    state: str
    seconds: float
    emitted: tuple[str, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": self.state,
            "seconds": self.seconds,
            "emitted": list(self.emitted),
            "skipped": list(self.skipped),
        }


@dataclass
class PipelineSummary:
    warehouse: str
    files: list[dict[str, Any]] = field(default_factory=list)
    feature_store_rows: int = 0
    feature_set_version: str | None = None
    runs: list[DagRunRecord] = field(default_factory=list)
    # DAGs whose assets were due but that had run MAX_RUNS_PER_DAG times already: {"dag_id", "reason"}.
    held_back: list[dict[str, str]] = field(default_factory=list)
    # What the caller makes of the runs' outputs (the root CLI: the monitoring loop's outcome); None: no key.
    loop: dict[str, Any] | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {
            "warehouse": self.warehouse,
            "files": self.files,
            FEATURE_STORE: {
                "rows": self.feature_store_rows,
                "feature_set_version": self.feature_set_version,
            },
            "dag_runs": [run.to_dict() for run in self.runs],
            "held_back": self.held_back,
            "seconds": round(self.seconds, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }
        if self.loop is not None:
            out["loop"] = self.loop
        return out


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


def bundle_config(folders: Sequence[DagFolder]) -> str:
    """``[dag_processor] dag_bundle_config_list``: one local bundle per folder, de's first (JSON)."""
    named = {DE_DAGS.name: DE_DAGS, **{folder.name: folder for folder in folders}}
    return json.dumps(
        [{"name": f.name, "classpath": LOCAL_BUNDLE_CLASS, "kwargs": {"path": str(f.path)}} for f in named.values()]
    )


def load_dags(folders: Sequence[DagFolder] = (DE_DAGS,)) -> dict[str, Any]:
    """Parse ``folders`` (import errors are a failure, not a warning) and return their DAGs by id; tasks are
    not retried here.

    Also makes each folder a DAG bundle of this process's Airflow (``dag.test()`` serialises a DAG from its
    bundle); Airflow reads that setting when it is used, so this works after Airflow was imported.
    """
    from airflow.dag_processing.dagbag import DagBag

    export_environment({"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundle_config(folders)})
    dags: dict[str, Any] = {}
    for folder in folders:
        bag = DagBag(str(folder.path))
        if bag.import_errors:
            raise PipelineError(f"DAG import errors in {folder.path}: {bag.import_errors}")
        missing = [dag_id for dag_id in folder.dag_ids if bag.get_dag(dag_id) is None]
        if missing:
            raise PipelineError(f"DAG folder {folder.path} has no DAG {', '.join(missing)}")
        dags.update({dag_id: bag.get_dag(dag_id) for dag_id in folder.dag_ids})
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
    *,
    extra_folders: Sequence[DagFolder] = (),
    conf: Mapping[str, Any] | None = None,
) -> PipelineSummary:
    """Run load_client_data, load_sales_data and process_data, then the DAGs of ``extra_folders`` their
    assets make due (module docstring), and summarise what they did.

    ``conf`` adds DAG params (each DAG gets those it declares). ``airflow_home`` defaults to
    ``<CLIENTML_STATE_DIR>/airflow``. Raises :class:`PipelineError` when a DAG run does not succeed, naming
    the task and its error.
    """
    started = time.monotonic()
    _check_local_sources({"clients": clients, "sales": sales})
    run_conf = {
        "clients_source": clients,
        "sales_source": sales,
        "warehouse_url": warehouse_url,
        "dataset_config": str(dataset_config.resolve()) if dataset_config else "",
        **dict(conf or {}),
    }
    summary = PipelineSummary(warehouse=connect(warehouse_url).redacted_url)
    summary.runs, summary.held_back = run_embedded((DE_DAGS, *extra_folders), run_conf, airflow_home)
    _summarise_warehouse(summary, warehouse_url)
    summary.seconds = time.monotonic() - started
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def run_embedded(
    folders: Sequence[DagFolder],
    conf: Mapping[str, Any],
    airflow_home: Path | None = None,
    start: Sequence[str] | None = None,
) -> tuple[list[DagRunRecord], list[dict[str, str]]]:
    """:func:`run_dags` on the DAGs of ``folders`` (in their order) in the embedded Airflow of ``airflow_home``
    (default ``<CLIENTML_STATE_DIR>/airflow``, created when missing)."""
    prepare_airflow(airflow_home or get_settings().state_dir / "airflow")
    with stdout_to_stderr():
        dags = load_dags(folders)
        return run_dags(dags, [dag_id for folder in folders for dag_id in folder.dag_ids], conf, start)


def run_dags(
    dags: Mapping[str, Any], order: Sequence[str], conf: Mapping[str, Any], start: Sequence[str] | None = None
) -> tuple[list[DagRunRecord], list[dict[str, str]]]:
    """Run ``start`` (default: the DAGs of ``order`` not scheduled on assets) in order, then each DAG of
    ``order`` whose asset condition the events since its last run satisfy, until none is due.

    Returns the runs, and the DAGs held back by :data:`MAX_RUNS_PER_DAG`. Raises :class:`PipelineError` when
    a run does not succeed, or a DAG's schedule uses what the runner cannot evaluate (aliases).
    """
    conditions = {dag_id: getattr(dags[dag_id].timetable, "asset_condition", None) for dag_id in order}
    triggered = list(start) if start is not None else [d for d in order if conditions[d] is None]
    queued: dict[str, set[str]] = {dag_id: set() for dag_id, cond in conditions.items() if cond is not None}
    runs: list[DagRunRecord] = []
    held_back: list[dict[str, str]] = []

    def run(dag_id: str) -> None:
        record = run_dag(dags[dag_id], conf)
        runs.append(record)
        for waiting in queued.values():
            waiting.update(record.emitted)

    for dag_id in triggered:
        if dag_id in queued:  # triggered by hand: what was queued for it is consumed, as by any run
            queued[dag_id] = set()
        run(dag_id)
    while due := [d for d in queued if _condition_met(conditions[d], queued[d])]:
        dag_id = min(due, key=order.index)
        queued[dag_id] = set()
        if sum(r.dag_id == dag_id for r in runs) >= MAX_RUNS_PER_DAG:
            reason = f"due again, but it ran {MAX_RUNS_PER_DAG} times in this pipeline already (the loop's bound)"
            log.warning("%s not run: %s", dag_id, reason)
            held_back.append({"dag_id": dag_id, "reason": reason})
            continue
        run(dag_id)
    return runs, held_back


def run_dag(dag: Any, conf: Mapping[str, Any]) -> DagRunRecord:
    """One ``dag.test()`` with the params of ``conf`` it declares; raises :class:`PipelineError` unless it succeeds."""
    run_conf = {key: value for key, value in conf.items() if key in dag.params}
    started = time.monotonic()
    with stdout_to_stderr():
        run = dag.test(run_conf=run_conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    if str(run.state) != "success":
        failed = [task_id for task_id, state in states.items() if state != "success"]
        cause = "; ".join(task_errors(dag.dag_id, run.run_id).values()) or "see the log above"
        raise PipelineError(f"DAG {dag.dag_id} {run.state} in task(s) {', '.join(failed)}: {cause}")
    return DagRunRecord(
        dag_id=dag.dag_id,
        run_id=run.run_id,
        state=str(run.state),
        seconds=round(time.monotonic() - started, 2),
        emitted=emitted_assets(dag.dag_id, run.run_id),
        outputs=_xcoms(dag.dag_id, run.run_id, RETURN_VALUE_XCOM_KEY),
        skipped=tuple(sorted(task_id for task_id, state in states.items() if state == "skipped")),
    )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout to stderr for the duration of the block, at the file descriptor too:
    Airflow logs to stdout, and so do libraries through the handlers it configured (e.g. deprecation
    warnings while a task loads a model), so stdout stays for the caller's JSON summary."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _condition_met(condition: Any, events: set[str]) -> bool:
    """Whether asset events named ``events`` satisfy a DAG's asset condition (an asset, or ``&``/``|`` of them)."""
    from airflow.sdk import Asset, AssetAll, AssetAny

    if isinstance(condition, Asset):
        return condition.name in events
    if isinstance(condition, AssetAll):
        return all(_condition_met(part, events) for part in condition.objects)
    if isinstance(condition, AssetAny):
        return any(_condition_met(part, events) for part in condition.objects)
    raise PipelineError(f"the embedded runner cannot evaluate a schedule on {condition!r} (assets, & and | only)")


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
    from clientml_de.dag_support import FAILURE_XCOM_KEY

    return {task_id: str(value) for task_id, value in _xcoms(dag_id, run_id, FAILURE_XCOM_KEY).items()}


def _xcoms(dag_id: str, run_id: str, key: str) -> dict[str, Any]:
    """The XComs ``key`` of one DAG run's tasks, deserialised, by task id."""
    # Airflow is imported only in functions: it reads its configuration when first imported, and
    # prepare_airflow sets that configuration first.
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=run_id, dag_ids=dag_id, key=key)
    with create_session() as session:
        # Airflow annotates the query as Select[tuple[XComModel]]; its scalars are XComModel rows.
        xcoms: Iterable[Any] = session.scalars(query)
        return {xcom.task_id: XComModel.deserialize_value(xcom) for xcom in xcoms}


def emitted_assets(dag_id: str, run_id: str) -> tuple[str, ...]:
    """The names of the assets one DAG run's tasks emitted events for (Airflow's ``AssetEvent`` records)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetModel.name)
        .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
        .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
    )
    with create_session() as session:
        return tuple(sorted(set(session.scalars(query))))


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
