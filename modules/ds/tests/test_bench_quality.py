"""``make bench-quality`` end to end at a tiny size: a world and a real dataset through generation (or the
files), the de tasks, ``clientml train``'s selection and the evaluation, to the markdown table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_quality.py"
QUICK = ["--search-trials", "2", "--n-boot", "50", "--repeats", "1", "--folds", "3"]
pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "quality.md"
    command = [sys.executable, str(BENCH), *QUICK, "--dir", str(tmp_path / "runs"), "--out", str(out), *args]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return out.read_text(encoding="utf-8"), json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))


def test_a_world_gives_its_gap_to_the_best_achievable(tmp_path: Path) -> None:
    text, result = _run(tmp_path, "--clients", "400", "--worlds", "drop", "--seeds", "3", "--real")
    (row,) = result["rows"]
    assert row["dataset"] == "drop" and row["seed"] == 3 and row["kind"] == "world"
    assert row["gap"] == pytest.approx(row["best"] - row["model"])
    assert row["lr_gap"] == pytest.approx(row["best"] - row["lr"])
    for name in ("model", "best", "lr", "gap"):
        low, high = row[f"{name}_ci"]
        assert low <= row[name] <= high
    assert result["summary"]["gap_per_world"] == {"drop": pytest.approx(row["gap"])}
    assert "average gap <= 0.010" in result["summary"]["targets"]
    assert "| drop | 3 |" in text and "Targets (issue #12)" in text


def test_a_real_dataset_gives_its_repeated_cv_auc(tmp_path: Path, real_data: Path) -> None:
    _, result = _run(tmp_path, "--worlds", "--real", "berka", "--real-data", str(real_data))
    (row,) = result["rows"]
    assert row["dataset"] == "berka" and row["rows"] == 354 and row["best"] is None
    assert 0.5 < row["model"] < 1 and row["model_ci"][0] <= row["model"] <= row["model_ci"][1]
    assert row["evaluated"] == "1x3 CV, 30 positives"
