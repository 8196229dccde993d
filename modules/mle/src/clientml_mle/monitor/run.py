"""``run_monitor``: one monitoring run, from the warehouse and the models directory to a decision.

1. The champion (``models_dir/CHAMPION``) and its reference profile; without either, the run says so and
   asks for retraining (a champion without a profile was trained before bundles had one: a new training
   writes one, the champion gate still decides what serves).
2. The current ``feature_store``: each client's newest row, labeled or not.
3. Per feature of the champion's schema, :func:`~clientml_mle.monitor.drift.compare_feature`; then the
   scores: the champion's latest ``predictions`` when that table holds its version, else the unlabeled
   clients scored here with the champion (the clients a batch scoring would score: rows the model never
   trained on, so their scores compare with the test rows' ones), :func:`~clientml_mle.monitor.drift.compare_scores`.
4. Labels: whether the labeled content of ``feature_store`` differs from what the champion was trained on
   (:func:`clientml_mle.train.training_fingerprint` against the manifest's ``training_data.fingerprint``).
5. The decision, the ``drift_report`` rows (:mod:`clientml_mle.monitor.store`) and the HTML report.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.contract import FEATURE_STORE, LABEL_COLUMN
from clientml_de.settings import get_settings
from clientml_de.warehouse import connect

from clientml_mle.bundle import Bundle, load_bundle
from clientml_mle.features import feature_columns, newest_rows, redact_url, training_frame
from clientml_mle.monitor.drift import DriftThresholds, compare_feature, compare_scores, relied_on_features
from clientml_mle.monitor.profile import ProfileError, ReferenceProfile
from clientml_mle.monitor.result import FeatureDrift, MonitorResult
from clientml_mle.monitor.store import PREDICTIONS, read_predictions, write_drift_report
from clientml_mle.pointers import CHAMPION_FILE, read_pointer
from clientml_mle.train import training_fingerprint

log = logging.getLogger(__name__)


def _current_rows(warehouse_url: str, table: str) -> pd.DataFrame | None:
    """Each client's newest row, or None when the table does not exist."""
    with connect(warehouse_url, read_only=True) as warehouse:
        exists = warehouse.has_table(table)
    return newest_rows(warehouse_url, table) if exists else None


def _labels_changed(warehouse_url: str, table: str, bundle: Bundle) -> tuple[bool, str]:
    labeled = training_frame(warehouse_url, table=table)
    if labeled.empty:
        return False, ""
    if training_fingerprint(labeled) == bundle.manifest.training_data.fingerprint:
        return False, ""
    trained_on = bundle.manifest.training_data.rows
    return True, (
        f"labels changed: the labeled rows of {table} ({len(labeled)}) are not those champion {bundle.version} "
        f"was trained on ({trained_on} rows; their content fingerprints differ)"
    )


def _current_scores(
    warehouse_url: str, bundle: Bundle, current: pd.DataFrame
) -> tuple[npt.NDArray[np.float64] | None, str]:
    """(the current scores or None, where they come from or why there are none)."""
    scores = read_predictions(warehouse_url, bundle.version)
    if scores is not None:
        return scores, f"scores: {len(scores)} predictions of version {bundle.version} in table {PREDICTIONS}"
    unlabeled = current[current[LABEL_COLUMN].isna()] if LABEL_COLUMN in current.columns else current
    if unlabeled.empty:
        return None, (
            f"score distribution not compared: no predictions of version {bundle.version} in table "
            f"{PREDICTIONS} and no unlabeled client to score"
        )
    try:
        scores = bundle.predict_proba(unlabeled)
    except ValueError as exc:
        return None, f"score distribution not compared: the current rows cannot be scored ({exc})"
    return scores, (
        f"scores: the {len(unlabeled)} unlabeled clients scored here with the champion (no predictions of "
        f"version {bundle.version} in table {PREDICTIONS})"
    )


def _compare(
    profile: ReferenceProfile, bundle: Bundle, current: pd.DataFrame, thresholds: DriftThresholds
) -> tuple[list[FeatureDrift], list[str]]:
    specs = {spec.name: spec for spec in bundle.manifest.features}
    relied_on = relied_on_features({fp.name: fp.importance for fp in profile.features}, thresholds.importance_coverage)
    features = [
        compare_feature(
            fp,
            specs[fp.name],
            current[fp.name] if fp.name in current.columns else None,
            thresholds,
            reference_rows=profile.rows,
            relied_on=fp.name in relied_on,
        )
        for fp in profile.features
        if fp.name in specs
    ]
    messages = [f"{d.feature}: {d.message}" for d in features if d.value is None or d.unseen_categories]
    unused = sorted(set(feature_columns(current)) - set(specs))
    if unused:
        messages.append(f"columns of feature_store the champion does not use (not compared): {', '.join(unused)}")
    return features, messages


def _champion(models: Path) -> tuple[Bundle | None, ReferenceProfile | None, list[str]]:
    """The champion bundle and its profile, each None when missing, with the reason."""
    if read_pointer(models, CHAMPION_FILE) is None:
        return None, None, [f"no champion in {models} (no model has passed the champion gate): train one"]
    bundle = load_bundle(models, pointer=CHAMPION_FILE)
    try:
        profile = bundle.reference_profile
    except ProfileError as exc:
        return bundle, None, [f"the champion's reference profile cannot be read ({exc}): retrain to write a new one"]
    if profile is None:
        return (
            bundle,
            None,
            [
                f"champion {bundle.version} has no reference profile (bundle written before bundles had one): "
                "drift cannot be measured; retrain to get a bundle with one (the champion gate still decides)"
            ],
        )
    return bundle, profile, []


def _report_name(run_id: str) -> str:
    return "drift-" + re.sub(r"[^A-Za-z0-9._-]", "_", run_id) + ".html"


def run_monitor(
    warehouse_url: str,
    models_dir: Path | str,
    *,
    report_dir: Path | str | None = None,
    run_id: str | None = None,
    thresholds: DriftThresholds | None = None,
    table: str = FEATURE_STORE,
    write_table: bool = True,
) -> MonitorResult:
    """Compare the current ``feature_store`` and scores with the champion's reference profile (module docstring).

    ``report_dir``: where the HTML report goes (``drift-<run_id>.html``; none without it). ``run_id``: the
    run's name in ``drift_report`` (default: ``monitor-<UTC time>``); a rerun with the same id replaces its
    rows. ``thresholds``: default from the settings (``CLIENTML_MONITOR_*``). ``write_table=False`` leaves
    the warehouse untouched.

    Faults in the data (an empty or missing ``feature_store``, an absent feature, unseen categories, values
    of the wrong type) and a missing champion or profile are reported in the result, never raised.

    Raises:
        FileNotFoundError: ``models_dir`` does not exist.
        NotADirectoryError: ``models_dir`` or ``report_dir`` is a file.
        clientml_de.warehouse.WarehouseError: a malformed warehouse URL, a DuckDB file that does not exist,
            an unreachable warehouse (what the engine raises otherwise).
        clientml_mle.pointers.BundleIntegrityError: the champion bundle fails its checks.
    """
    models = Path(models_dir)
    if not models.exists():
        raise FileNotFoundError(f"{models}: no such models directory")
    if not models.is_dir():
        raise NotADirectoryError(f"{models}: the models directory is a file")
    if report_dir is not None and Path(report_dir).exists() and not Path(report_dir).is_dir():
        # Checked before anything is compared or written: a run never leaves drift_report rows without its report.
        raise NotADirectoryError(f"{report_dir}: the report directory is a file")
    limits = thresholds or DriftThresholds.from_settings(get_settings())
    now = datetime.now(UTC)
    run_id = run_id or f"monitor-{now:%Y%m%dT%H%M%S.%f}Z"
    current = _current_rows(warehouse_url, table)
    rows = 0 if current is None else len(current)
    reasons: list[str] = []
    messages: list[str] = []
    if current is None:
        messages.append(f"table {table} does not exist in warehouse {redact_url(warehouse_url)}: nothing to compare")
    elif current.empty:
        messages.append(f"{table} is empty: nothing to compare")
    bundle, profile, why_not = _champion(models)
    reasons.extend(why_not)
    features: list[FeatureDrift] = []
    score_drift: FeatureDrift | None = None
    score_source = ""
    labels_changed = False
    if bundle is not None and current is not None and rows:
        if profile is not None:
            features, notes = _compare(profile, bundle, current, limits)
            scores, score_source = _current_scores(warehouse_url, bundle, current)
            score_drift = compare_scores(profile.scores, scores, limits, score_source)
            messages.extend(notes)
        labels_changed, why = _labels_changed(warehouse_url, table, bundle)
        if why:
            reasons.append(why)
    drift = [r for d in [*features, *([score_drift] if score_drift else [])] for r in d.reasons]
    result = MonitorResult(
        run_id=run_id,
        model_version=bundle.version if bundle is not None else None,
        drifted=bool(drift),
        reasons=[*drift, *reasons],
        features=features,
        score_drift=score_drift,
        report_path=None,
        labels_changed=labels_changed,
        # Nothing to train on without rows; else drift, new labels, or no model that drift can be measured for.
        retrain=bool(rows) and (bool(drift) or labels_changed or profile is None),
        messages=messages,
        created_at=now.isoformat(timespec="seconds"),
        rows_current=rows,
        score_source=score_source,
        thresholds=asdict(limits),
    )
    if write_table:
        written = write_drift_report(warehouse_url, result, now)
        log.info("drift_report: %d rows of run %s", written, run_id)
    if report_dir is not None:
        result = replace(result, report_path=_write_report(result, Path(report_dir) / _report_name(run_id)))
    log.info(
        "monitor run %s on champion %s: %s; retrain: %s",
        run_id,
        result.model_version,
        "DRIFT" if result.drifted else "no drift",
        "; ".join(result.reasons) if result.retrain else "no",
    )
    return result


def _write_report(result: MonitorResult, path: Path) -> Path:
    # matplotlib and Jinja2 are the `monitor` extra of clientml-mle: imported only when a report is asked for.
    from clientml_mle.monitor.report import write_report

    return write_report(result, path)
