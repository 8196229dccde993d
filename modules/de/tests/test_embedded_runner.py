"""The embedded runner's one scheduling rule (:func:`clientml_de.pipeline.run_dags`), on stand-in DAGs: a DAG
scheduled on assets runs once the events emitted since its last run satisfy its condition, at most twice."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from clientml_de import pipeline
from clientml_de.pipeline import DagRunRecord, PipelineError, run_dags

pytestmark = pytest.mark.airflow

A, B, C = (Asset(name=n, uri=f"clientml://test/{n}") for n in "abc")


def stand_in(dag_id: str, condition: Any = None) -> Any:
    """What run_dags reads of a DAG: its id and its timetable's asset condition (None: not on assets)."""
    return SimpleNamespace(dag_id=dag_id, timetable=SimpleNamespace(asset_condition=condition))


@pytest.fixture
def emits(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, ...]]:
    """The assets each stand-in DAG emits when run (set by the test); run_dag records instead of running."""
    emitted: dict[str, tuple[str, ...]] = {}

    def run_dag(dag: Any, conf: Mapping[str, Any]) -> DagRunRecord:
        return DagRunRecord(dag.dag_id, f"run-{dag.dag_id}", "success", 0.0, emitted=emitted.get(dag.dag_id, ()))

    monkeypatch.setattr(pipeline, "run_dag", run_dag)
    return emitted


def test_a_dag_on_two_assets_waits_for_both_and_an_or_for_either(emits: dict[str, tuple[str, ...]]) -> None:
    dags = {
        "load_a": stand_in("load_a"),
        "load_b": stand_in("load_b"),
        "both": stand_in("both", A & B),
        "either": stand_in("either", B | C),
        "never": stand_in("never", C),
    }
    emits.update(load_a=("a",), load_b=("b",))
    runs, held_back = run_dags(dags, list(dags), {})
    assert [r.dag_id for r in runs] == ["load_a", "load_b", "both", "either"]
    assert held_back == []

    runs, _ = run_dags(dags, list(dags), {}, start=["load_a"])  # b never came: neither runs
    assert [r.dag_id for r in runs] == ["load_a"]


def test_a_chain_follows_the_events_and_a_loop_stops_after_two_runs(emits: dict[str, tuple[str, ...]]) -> None:
    dags = {"start": stand_in("start"), "score": stand_in("score", A), "monitor": stand_in("monitor", B)}
    emits.update(start=("a",), score=("b",), monitor=("a",))  # monitor asks to score again, forever
    runs, held_back = run_dags(dags, list(dags), {})
    assert [r.dag_id for r in runs] == ["start", "score", "monitor", "score", "monitor"]
    assert [h["dag_id"] for h in held_back] == ["score"]
    assert "ran 2 times" in held_back[0]["reason"]


def test_a_dag_started_by_hand_runs_even_if_scheduled_on_assets(emits: dict[str, tuple[str, ...]]) -> None:
    dags = {"train": stand_in("train", A), "score": stand_in("score", B)}
    emits.update(train=("b",))
    runs, _ = run_dags(dags, list(dags), {}, start=["train"])
    assert [r.dag_id for r in runs] == ["train", "score"]


def test_a_schedule_the_runner_cannot_evaluate_is_refused(emits: dict[str, tuple[str, ...]]) -> None:
    dags = {"start": stand_in("start"), "aliased": stand_in("aliased", AssetAlias(name="x"))}
    emits.update(start=("a",))
    with pytest.raises(PipelineError, match="cannot evaluate a schedule on"):
        run_dags(dags, list(dags), {})
