"""The monitoring loop in the embedded Airflow: its DAG folders, their params, and the outcome in a summary.

The loop's DAGs live with the modules that do their work (``score_clients`` and ``monitor_drift`` in mle,
``train_model`` in ds); de's embedded runner (:mod:`clientml_de.pipeline`) runs them without importing
either, given these folders. Used by ``clientml pipeline`` and ``clientml retrain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from clientml_de.pipeline import DagFolder, DagRunRecord

SCORE_DAG, MONITOR_DAG, TRAIN_DAG = "score_clients", "monitor_drift", "train_model"


def _dags_folder(package: str) -> Path:
    """A package's folder of DAG files, found without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def loop_folders() -> tuple[DagFolder, ...]:
    """The loop's DAG folders (one DAG bundle each), in the order the runner prefers their DAGs."""
    return (
        DagFolder("mle", _dags_folder("clientml_mle.dags"), (SCORE_DAG, MONITOR_DAG)),
        DagFolder("ds", _dags_folder("clientml_ds.dags"), (TRAIN_DAG,)),
    )


def loop_conf(warehouse_url: str, models_dir: Path) -> dict[str, Any]:
    """The loop DAGs' params in the embedded mode: this warehouse and models directory, and no waiting for a
    champion (no trainer service here: ``train_model`` trains it, when the monitor asks)."""
    return {"warehouse_url": warehouse_url, "models_dir": str(models_dir.resolve()), "wait_for_champion": False}


def _outputs(runs: Sequence[DagRunRecord], dag_id: str, task_id: str) -> list[Any]:
    return [run.outputs[task_id] for run in runs if run.dag_id == dag_id and task_id in run.outputs]


def summarise_loop(runs: Sequence[DagRunRecord]) -> dict[str, Any]:
    """The loop's outcome from its runs' task results: the last ``predictions`` written (rows, model version;
    or why nothing was scored), each drift decision (drifted, retrain, reasons, report), each training
    request's handling, and whether any retrained and whether any was promoted."""
    trainings = _outputs(runs, TRAIN_DAG, "train")
    predictions = _outputs(runs, SCORE_DAG, "publish")
    return {
        "predictions": predictions[-1] if predictions else None,
        "drift": _outputs(runs, MONITOR_DAG, "monitor"),
        "retrained": any(t["trained"] for t in trainings),
        "promoted": any(t["promoted"] for t in trainings),
        "training": trainings,
    }
