"""MLflow tracking, the registry and the champion gate."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import gate_race
import pandas as pd
import pytest
from clientml_mle.bundle import load_bundle
from clientml_mle.estimators import EstimatorFactory
from clientml_mle.pointers import CHAMPION_FILE, LATEST_FILE, read_pointer
from clientml_mle.tracking import CHAMPION_ALIAS, MlflowTracker, decide
from clientml_mle.train import train
from gate_race import uninformative


def _champion(tracker: MlflowTracker) -> str:
    return str(tracker.client.get_model_version_by_alias(tracker.model_name, CHAMPION_ALIAS).version)


def test_rule() -> None:
    common = {"new_roc_auc": 0.85, "incompatibility": None, "new_version": "2"}
    first = decide(new_roc_auc_ci95_low=0.8, champion_version=None, champion_roc_auc=None, **common)
    assert first.promoted and "no champion" in first.reason
    better = decide(new_roc_auc_ci95_low=0.80, champion_version="1", champion_roc_auc=0.79, **common)
    assert better.promoted and better.previous_champion == "1"
    tie = decide(new_roc_auc_ci95_low=0.79, champion_version="1", champion_roc_auc=0.79, **common)
    assert tie.promoted
    worse = decide(new_roc_auc_ci95_low=0.78, champion_version="1", champion_roc_auc=0.79, **common)
    assert not worse.promoted and "0.7800 < " in worse.reason
    nan = decide(new_roc_auc_ci95_low=float("nan"), champion_version="1", champion_roc_auc=0.5, **common)
    assert not nan.promoted
    forced = decide(new_roc_auc_ci95_low=0.1, champion_version="1", champion_roc_auc=0.9, force=True, **common)
    assert forced.promoted and "forced" in forced.reason
    incompatible = {**common, "incompatibility": "the evaluation rows lack the champion's features ['x']"}
    blocked = decide(new_roc_auc_ci95_low=0.8, champion_version="1", champion_roc_auc=None, **incompatible)
    assert not blocked.promoted and "not comparable" in blocked.reason and "['x']" in blocked.reason


@pytest.mark.slow  # the first test on the session's MLflow store creates its tables
def test_champion_gate_both_ways(
    frame: pd.DataFrame, tracker: MlflowTracker, estimator: EstimatorFactory, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    weak = train(uninformative, frame, seed=0, models_dir=models, tracking=tracker)
    assert weak.decision is not None and weak.decision.promoted
    assert weak.decision.new_version == "1" and _champion(tracker) == "1"

    strong = train(estimator, frame, seed=0, models_dir=models, tracking=tracker)
    decision = strong.decision
    assert decision is not None and decision.promoted, decision
    assert decision.previous_champion == "1" and decision.new_version == "2"
    assert decision.champion_roc_auc == pytest.approx(0.5)
    assert decision.new_roc_auc_ci95_low is not None and decision.new_roc_auc_ci95_low > 0.7
    assert _champion(tracker) == "2"

    again = train(uninformative, frame, seed=0, models_dir=models, tracking=tracker)
    decision = again.decision
    assert decision is not None and not decision.promoted
    assert decision.previous_champion == "2" and decision.new_version == "3"
    # The champion was re-scored on the same test rows (same seed, same split) as when it was trained.
    assert decision.champion_roc_auc == pytest.approx(strong.evaluation.roc_auc)
    assert f"registered version 2, bundle {strong.version}" in decision.reason, "both names of the champion"
    assert _champion(tracker) == "2"

    # LATEST is the newest bundle; CHAMPION the one the gate promoted.
    assert read_pointer(models, LATEST_FILE) == again.version
    assert read_pointer(models, CHAMPION_FILE) == strong.version
    assert load_bundle(models, pointer=CHAMPION_FILE).version == strong.version

    # What the run left in MLflow.
    assert strong.tracking is not None
    client = tracker.client
    run = client.get_run(strong.tracking.run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(strong.evaluation.roc_auc)
    assert run.data.params["seed"] == "0" and run.data.tags["bundle_version"] == strong.version
    bundle_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert {"manifest.json", "model.skops", "encoder.skops", "evaluation.json"} <= bundle_files
    decision_file = client.download_artifacts(run.info.run_id, "champion_decision.json", str(tmp_path))
    assert json.loads(Path(decision_file).read_text())["promoted"] is True
    version = client.get_model_version(tracker.model_name, "2")
    assert version.tags["bundle_version"] == strong.version
    assert ">=" in version.tags["champion_decision"]
    assert not hasattr(version, "current_stage") or version.current_stage in (None, "None")


@pytest.mark.slow
def test_incompatible_champion_needs_force(
    frame: pd.DataFrame, tracker: MlflowTracker, estimator: EstimatorFactory, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    first = train(estimator, frame, seed=0, models_dir=models, tracking=tracker, n_boot=100)
    assert first.decision is not None and first.decision.promoted

    without_segment = frame.drop(columns=["segment"])
    without_segment.attrs = dict(frame.attrs)
    blocked = train(estimator, without_segment, seed=0, models_dir=models, tracking=tracker, n_boot=100)
    assert blocked.decision is not None and not blocked.decision.promoted
    assert "not comparable" in blocked.decision.reason and "segment" in blocked.decision.reason
    assert _champion(tracker) == "1"

    forced = train(
        estimator, without_segment, seed=0, models_dir=models, tracking=tracker, n_boot=100, force_promote=True
    )
    assert forced.decision is not None and forced.decision.promoted and "forced" in forced.decision.reason
    assert _champion(tracker) == "3"


@pytest.mark.slow
@pytest.mark.parametrize("kinds", [("weak", "strong"), ("strong", "strong")])
def test_two_trainings_gating_at_once_are_serialised(
    frame: pd.DataFrame, tracker: MlflowTracker, tmp_path: Path, kinds: tuple[str, str]
) -> None:
    """Two processes, one MLflow SQLite store, one models directory, both reading the champion at once
    (gate_race): the gate serialises them, so the second compares with the first's result; the alias and
    CHAMPION agree on the better model by the rule (the first of two equal ones)."""
    models = tmp_path / "models"
    models.mkdir()
    tracker.experiment_id()  # the store's tables and the experiment exist before the racers start
    config = {
        "tracking_uri": tracker.tracking_uri,
        "model_name": tracker.model_name,
        "experiment": tracker.experiment,
        "artifact_location": tracker.artifact_location,
    }
    context = multiprocessing.get_context("spawn")
    start, read, out = context.Barrier(2), context.Barrier(2), context.Queue()
    racers = [
        context.Process(target=gate_race.race, args=(kind, frame, models, config, start, read, out)) for kind in kinds
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=300)
    assert [racer.exitcode for racer in racers] == [0, 0]
    first, second = sorted((out.get(timeout=5) for _ in racers), key=lambda r: r["decision"]["previous_champion"] or "")
    assert first["decision"]["promoted"] and first["decision"]["previous_champion"] is None
    assert second["decision"]["previous_champion"] == first["version"], "the second gate saw the first's champion"
    winner = second if second["kind"] == "strong" and first["kind"] == "weak" else first
    assert second["decision"]["promoted"] == (winner is second)
    assert _champion(tracker) == winner["version"]
    assert read_pointer(models, CHAMPION_FILE) == winner["bundle"]
    runs = tracker.client.search_runs([first["experiment_id"]], filter_string="tags.champion_promoted != ''")
    assert {first["run_id"], second["run_id"]} <= {r.info.run_id for r in runs}
    assert {first["version"], second["version"]} == {"1", "2"}
