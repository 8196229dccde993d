"""``run_monitor`` and ``clientml monitor`` on the generated warehouse and the suite's trained champion:
unchanged data, shifted features, faults in the data, no champion or no profile, the drift_report table on
DuckDB and PostgreSQL, the predictions table, the HTML report, the command's exit codes."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from clientml_de.warehouse import WarehouseError, connect
from clientml_mle.monitor import MonitorResult, run_monitor
from clientml_mle.monitor.result import SCORE_FEATURE
from clientml_mle.monitor.store import DRIFT_REPORT, PREDICTIONS
from clientml_mle.pointers import LATEST_FILE
from clientml_mle.train import TrainResult, publish_bundle
from clientml_testkit.data import load_sources
from monitor_support import execute, query
from serve_fixtures import publish
from typer.testing import CliRunner

from clientml.cli import app

# What a drop with changed behaviour looks like: two features the model relies on moved, and one it barely
# uses (segment: under 1% of its importance); every other column untouched.
SHIFT = (
    "UPDATE feature_store SET spend_90d = spend_90d * 6 + 400, annual_income = annual_income * 0.3",
    "UPDATE feature_store SET segment = 'corporate' WHERE hash(client_id) % 10 < 6",
)
SHIFTED = {"spend_90d", "annual_income", "segment"}


def _by_name(result: MonitorResult) -> dict[str, object]:
    return {d.feature: d for d in result.features}


def test_unchanged_data_shows_no_drift(writable_warehouse: str, champion_models: Path, trained: TrainResult) -> None:
    result = run_monitor(writable_warehouse, champion_models, run_id="same")
    assert result.model_version == trained.version and result.rows_current == 2000
    assert [d.feature for d in result.features] == [f.name for f in trained.features]
    assert all(d.value is not None and d.value < 0.05 for d in result.features), [
        (d.feature, d.value) for d in result.features
    ]
    assert not any(d.drifted for d in result.features)
    assert result.score_drift is not None and result.score_drift.value is not None and result.score_drift.value < 0.1
    assert "unlabeled clients scored here" in result.score_source
    assert (result.drifted, result.labels_changed, result.retrain, result.reasons) == (False, False, False, [])
    rows = query(
        writable_warehouse, f"SELECT feature, statistic, relied_on, drifted FROM {DRIFT_REPORT} WHERE run_id = 'same'"
    )
    assert len(rows) == len(trained.features) + 1 and (SCORE_FEATURE, "psi", True, False) in rows
    json.dumps(result.to_dict())


def test_shifted_features_drift_and_the_others_do_not(writable_warehouse: str, champion_models: Path) -> None:
    execute(writable_warehouse, *SHIFT)
    result = run_monitor(writable_warehouse, champion_models, run_id="shifted")
    drifted = {d.feature for d in result.features if d.drifted}
    assert drifted == SHIFTED
    features = _by_name(result)
    assert features["segment"].relied_on is False and "not counted" in features["segment"].message  # type: ignore[attr-defined]
    assert result.drifted and result.retrain
    assert any(re.fullmatch(r"PSI \d+\.\d\d > 0\.2 on spend_90d \(importance \d+%\)", r) for r in result.reasons)
    assert any("on annual_income" in r for r in result.reasons) and not any("segment" in r for r in result.reasons)
    # The rows changed, so the labeled content the champion was trained on changed too.
    assert result.labels_changed and any(r.startswith("labels changed") for r in result.reasons)
    stored = dict(query(writable_warehouse, f"SELECT feature, drifted FROM {DRIFT_REPORT} WHERE run_id = 'shifted'"))
    assert {f for f, d in stored.items() if d} == SHIFTED | ({SCORE_FEATURE} if result.score_drift.drifted else set())  # type: ignore[union-attr]


def test_faults_in_the_data_are_reported_never_raised(
    writable_warehouse: str, champion_models: Path, tmp_path: Path
) -> None:
    execute(
        writable_warehouse,
        "ALTER TABLE feature_store DROP COLUMN gender",
        "UPDATE feature_store SET region = 'atlantis' WHERE hash(client_id) % 20 = 0",
        "UPDATE feature_store SET region = 'lemuria' WHERE client_id IN ('C0000001', 'C0000002')",
        "ALTER TABLE feature_store ADD COLUMN loyalty_points INTEGER DEFAULT 3",
    )
    result = run_monitor(writable_warehouse, champion_models, run_id="faults", report_dir=tmp_path / "reports")
    features = _by_name(result)
    gender, region = features["gender"], features["region"]
    assert gender.null_rate_current == 1.0 and "absent from the current feature_store" in gender.message  # type: ignore[attr-defined]
    assert set(region.unseen_categories) == {"atlantis", "lemuria"} and region.unseen_categories["lemuria"] == 2  # type: ignore[attr-defined]
    assert "2 categories never seen in training" in region.message  # type: ignore[attr-defined]
    assert any(m.startswith("gender: ") and "absent from the current" in m for m in result.messages)
    assert any("the champion does not use (not compared): loyalty_points" in m for m in result.messages)
    html = result.report_path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    assert "never seen in training" in html and "absent from the current feature_store" in html


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM feature_store", "feature_store is empty: nothing to compare"),
        ("DROP TABLE feature_store", "table feature_store does not exist in warehouse"),
    ],
)
def test_an_empty_or_missing_feature_store(
    writable_warehouse: str, champion_models: Path, statement: str, message: str
) -> None:
    execute(writable_warehouse, statement)
    result = run_monitor(writable_warehouse, champion_models)
    assert any(message in m for m in result.messages), result.messages
    assert (result.features, result.score_drift, result.drifted, result.retrain) == ([], None, False, False)


def test_no_champion_asks_for_a_model(writable_warehouse: str, trained: TrainResult, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    publish(models, Path(trained.bundle_path), LATEST_FILE)  # trained, but never promoted
    result = run_monitor(writable_warehouse, models, report_dir=tmp_path / "reports")
    assert result.model_version is None and result.retrain and not result.drifted
    assert result.reasons == [f"no champion in {models} (no model has passed the champion gate): train one"]
    assert "no champion" in result.report_path.read_text(encoding="utf-8")  # type: ignore[union-attr]


def test_a_champion_without_a_profile_is_reported(
    writable_warehouse: str, trained: TrainResult, tmp_path: Path
) -> None:
    staging, models = tmp_path / "staging", tmp_path / "models"
    models.mkdir()
    old = publish_bundle(trained.fitted, trained.evaluation, staging)  # no split: an older bundle
    version = publish(models, old)
    result = run_monitor(writable_warehouse, models, report_dir=tmp_path / "reports")
    assert result.model_version == version and result.features == [] and result.score_drift is None
    assert not result.drifted and result.retrain and not result.labels_changed
    assert result.reasons[0].startswith(f"champion {version} has no reference profile")
    assert "has no reference profile" in result.report_path.read_text(encoding="utf-8")  # type: ignore[union-attr]


def test_the_predictions_of_the_champion_are_the_current_scores(
    writable_warehouse: str, champion_models: Path, trained: TrainResult
) -> None:
    version = trained.version
    execute(
        writable_warehouse,
        f"CREATE TABLE {PREDICTIONS} AS SELECT client_id, as_of_date, 0.97 AS probability, 1 AS label, "
        f"'{version}' AS model_version, feature_set_version, TIMESTAMP '2026-12-01 10:00' AS scored_at "
        "FROM feature_store WHERE label IS NULL",
        # An older scoring of the same version and another version's rows: neither is used.
        f"INSERT INTO {PREDICTIONS} SELECT client_id, as_of_date, 0.01, 0, '{version}', feature_set_version, "
        "TIMESTAMP '2026-11-01 10:00' FROM feature_store",
        f"INSERT INTO {PREDICTIONS} SELECT client_id, as_of_date, 0.02, 0, 'other', feature_set_version, "
        "TIMESTAMP '2026-12-02 10:00' FROM feature_store",
    )
    result = run_monitor(writable_warehouse, champion_models)
    unlabeled = query(writable_warehouse, "SELECT count(*) FROM feature_store WHERE label IS NULL")[0][0]
    assert result.score_source == f"scores: {unlabeled} predictions of version {version} in table {PREDICTIONS}"
    assert result.score_drift is not None and result.score_drift.current[-1] == 1.0
    assert result.score_drift.drifted and result.drifted
    assert result.reasons[0].endswith("on the score distribution")


def test_a_rerun_replaces_its_rows_and_keeps_the_others(writable_warehouse: str, champion_models: Path) -> None:
    first = run_monitor(writable_warehouse, champion_models, run_id="r1")
    run_monitor(writable_warehouse, champion_models, run_id="r2")
    run_monitor(writable_warehouse, champion_models, run_id="r1")
    counts = dict(query(writable_warehouse, f"SELECT run_id, count(*) FROM {DRIFT_REPORT} GROUP BY run_id"))
    assert counts == {"r1": len(first.features) + 1, "r2": len(first.features) + 1}


def test_drift_report_on_postgres(
    source_dir: Path, postgres_url: str, champion_models: Path, trained: TrainResult
) -> None:
    load_sources(postgres_url, source_dir)
    first = run_monitor(postgres_url, champion_models, run_id="pg")
    again = run_monitor(postgres_url, champion_models, run_id="pg")  # the same run again: the same rows, not twice
    assert not again.drifted and not again.labels_changed
    with connect(postgres_url, read_only=True) as wh:
        rows = wh.table(DRIFT_REPORT).to_pyarrow().to_pylist()
    assert len(rows) == len(trained.features) + 1 == len(first.features) + 1
    assert {r["run_id"] for r in rows} == {"pg"} and {r["model_version"] for r in rows} == {trained.version}
    score = next(r for r in rows if r["feature"] == SCORE_FEATURE)
    assert (
        score["kind"] == "score" and score["null_rate_reference"] is None and isinstance(score["created_at"], datetime)
    )
    by_feature = {r["feature"]: r for r in rows}
    assert by_feature["spend_90d"]["value"] == pytest.approx(_by_name(again)["spend_90d"].value)  # type: ignore[attr-defined]


def test_the_html_report_is_self_contained_with_a_plot_per_feature(
    writable_warehouse: str, champion_models: Path, tmp_path: Path
) -> None:
    execute(writable_warehouse, *SHIFT)
    result = run_monitor(
        writable_warehouse, champion_models, run_id="manual__2026-12-01T09:30:00+00:00", report_dir=tmp_path
    )
    assert result.report_path == tmp_path / "drift-manual__2026-12-01T09_30_00_00_00.html"
    html = result.report_path.read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(result.features) + 1  # every feature and the score distribution
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(src|href)=\"?(https?:)?//", html)  # nothing fetched from anywhere
    assert "Drift found" in html and "spend_90d" in html and "Siddiqi" in html


def test_the_command_exit_codes(
    runner: CliRunner, writable_warehouse: str, champion_models: Path, tmp_path: Path
) -> None:
    args = [
        "monitor",
        "--warehouse",
        writable_warehouse,
        "--models-dir",
        str(champion_models),
        "--report-dir",
        str(tmp_path),
    ]
    stable = runner.invoke(app, [*args, "--json"])
    assert stable.exit_code == 0, stable.output
    summary = json.loads(stable.stdout)
    assert summary["drifted"] is False and Path(summary["report_path"]).is_file()
    execute(writable_warehouse, *SHIFT)
    drift = runner.invoke(app, args)
    assert drift.exit_code == 3, drift.output
    assert "decision: DRIFT; retrain: yes" in drift.stdout and re.search(r"spend_90d\s+\d+\.\d+ .* YES", drift.stdout)
    missing = runner.invoke(app, ["monitor", "--warehouse", writable_warehouse, "--models-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "nope: no such models directory" in missing.output
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for option, what in (("--models-dir", "the models directory"), ("--report-dir", "the report directory")):
        cli = dict(zip(args[1::2], args[2::2], strict=True)) | {option: str(a_file)}
        refused = runner.invoke(app, ["monitor", *[part for pair in cli.items() for part in pair]])
        assert refused.exit_code == 1 and f"a-file: {what} is a file" in refused.output, refused.output
    bad = runner.invoke(app, ["monitor", "--warehouse", "mysql://db/x", "--models-dir", str(champion_models)])
    assert bad.exit_code == 1 and "unknown scheme 'mysql'" in bad.output


def test_a_warehouse_that_does_not_exist_is_an_error(champion_models: Path, tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="does not exist"):
        run_monitor(f"duckdb:///{tmp_path / 'none.duckdb'}", champion_models)
