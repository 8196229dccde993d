"""The README's "API in a few lines" runs as written, against the suite's generated warehouse."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from clientml_mle.pointers import CHAMPION_FILE, LATEST_FILE, read_pointer

README = Path(__file__).resolve().parents[1] / "README.md"


def api_block() -> str:
    """The first ``python`` code block of the README's "The API in a few lines" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## The API in a few lines", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert found is not None, "the README's API section has no python block"
    return found.group(1)


def test_the_readme_api_block_runs(
    warehouse_url: str, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = api_block()
    assert "split_rows" in code and "track_and_gate" in code
    monkeypatch.chdir(tmp_path)  # the block writes models/ and scores.csv where it runs
    monkeypatch.setenv("CLIENTML_MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("CLIENTML_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "mlartifacts"))
    monkeypatch.setenv("CLIENTML_MODEL_NAME", f"readme-{uuid.uuid4().hex[:10]}")
    namespace: dict[str, Any] = {"url": warehouse_url}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["record"].decision.promoted  # a new registered model: the first version is champion
    models = tmp_path / "models"
    assert read_pointer(models, CHAMPION_FILE) == namespace["bundle_dir"].name
    assert read_pointer(models, LATEST_FILE) == namespace["result"].version
    assert namespace["evaluation"].roc_auc > 0.7
    assert (tmp_path / "scores.csv").read_text().startswith("client_id,probability,label")
