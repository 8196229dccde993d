"""The work of the monitoring loop's DAG tasks (``score_clients``, ``monitor_drift``), as plain functions
that tests call without a scheduler.

Arguments that are empty fall back as in :mod:`clientml_de.tasks`: the warehouse to the Airflow connection
``clientml_warehouse`` or ``CLIENTML_WAREHOUSE_URL``, the models directory to ``CLIENTML_MODELS_DIR``, the
report directory to the monitor's default (``CLIENTML_MONITOR_REPORT_DIR``). Each returns a small JSON-ready
dict: the task's XCom, which the embedded pipeline summarises.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from clientml_de.settings import get_settings
from clientml_de.tasks import resolve_warehouse_url

from clientml_mle.monitor import run_monitor
from clientml_mle.pointers import CHAMPION_FILE, NoModelError, require_pointer
from clientml_mle.predictions import score_to_warehouse
from clientml_mle.retrain import Source, request_retraining

log = logging.getLogger(__name__)


def _models_dir(models_dir: str | Path | None) -> Path:
    return Path(models_dir) if models_dir else get_settings().models_dir


def champion_problem(models_dir: str | Path | None) -> str | None:
    """Why there is no champion to score with (no bundle, or none promoted yet), or ``None`` when there is one."""
    try:
        require_pointer(_models_dir(models_dir), CHAMPION_FILE)
    except NoModelError as exc:
        return str(exc)
    return None


def score_clients(warehouse_url: str | None, models_dir: str | Path | None) -> dict[str, Any]:
    """Score every unlabeled client with the champion into ``predictions``
    (:func:`~clientml_mle.predictions.score_to_warehouse`); returns its :class:`ScoreSummary` as a dict.

    Raises:
        clientml_mle.pointers.NoModelError: no champion yet: nothing is written (the DAG skips the task).
        And what :func:`~clientml_mle.predictions.score_to_warehouse` raises.
    """
    return score_to_warehouse(resolve_warehouse_url(warehouse_url), _models_dir(models_dir)).to_dict()


def monitor(
    warehouse_url: str | None, models_dir: str | Path | None, report_dir: str | Path | None, run_id: str | None
) -> dict[str, Any]:
    """Run the drift monitor (:func:`clientml_mle.monitor.run_monitor`) and log its decision and reasons.

    The HTML report goes to ``report_dir`` (empty: ``CLIENTML_MONITOR_REPORT_DIR``). ``run_id`` names the run's
    rows of ``drift_report`` (the DAG passes its own run id, so a retried task replaces its rows). Returns the
    decision: ``run_id``, ``model_version``, ``drifted``, ``labels_changed``, ``retrain``, ``reasons``,
    ``drifted_features`` (whose distribution moved, relied on or not), ``score_drifted``, ``report_path``.
    """
    result = run_monitor(
        resolve_warehouse_url(warehouse_url),
        _models_dir(models_dir),
        report_dir=Path(report_dir) if report_dir else get_settings().monitor_report_dir,
        run_id=run_id or None,
    )
    drifted_features = [f.feature for f in result.features if f.drifted]
    decision = {
        "run_id": result.run_id,
        "model_version": result.model_version,
        "drifted": result.drifted,
        "labels_changed": result.labels_changed,
        "retrain": result.retrain,
        "reasons": list(result.reasons),
        "drifted_features": drifted_features,
        "score_drifted": result.score_drift.drifted if result.score_drift is not None else None,
        "report_path": str(result.report_path) if result.report_path is not None else None,
    }
    log.info(
        "drift monitor %s, model version %s: %s; retrain: %s; reasons: %s; report: %s",
        result.run_id,
        result.model_version,
        "drifted" if result.drifted else "no drift",
        "yes" if result.retrain else "no",
        "; ".join(result.reasons) or "none",
        decision["report_path"],
    )
    return decision


def request_source(decision: dict[str, Any]) -> Source:
    """The request's source for a monitor decision that says retrain: drift first, then labels, else the
    champion cannot be monitored (none yet, or no reference profile)."""
    if decision["drifted"]:
        return Source.DRIFT
    if decision["labels_changed"]:
        return Source.LABELS
    return Source.NO_REFERENCE


def request_retraining_for(warehouse_url: str | None, decision: dict[str, Any]) -> dict[str, Any]:
    """Record the retraining a monitor decision (:func:`monitor`'s result) asks for in ``retrain_requests``;
    returns the request as a dict. A retried task rewrites the same request (its id is the monitor run's)."""
    request = request_retraining(
        resolve_warehouse_url(warehouse_url),
        request_source(decision),
        "; ".join(decision["reasons"]) or "the monitor asked for retraining",
        monitor_run_id=decision["run_id"],
    )
    return request.to_dict()
