"""``make demo`` as the README tells a newcomer to run it: the very Makefile target, on a small drop.

Cheap on purpose (it runs in ``make test``): 1,500 clients instead of 20,000 (``DEMO_CLIENTS``) and mle's
baseline trainer (``CLIENTML_TRAINER=default``, seconds instead of the ds search's minutes; the ds trainer in
the loop is tested in modules/ds). Its directories are the test's own, so the checkout's ``.demo`` is left
alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.airflow
def test_make_demo_on_a_small_drop(tmp_path: Path) -> None:
    environment = {**os.environ, "CLIENTML_STATE_DIR": str(tmp_path / "state"), "CLIENTML_TRAINER": "default"}
    settings = [f"DEMO_DIR={tmp_path / 'demo'}", f"MODELS_DIR={tmp_path / 'models'}", "DEMO_CLIENTS=1500"]
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", *settings],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, (output + result.stderr)[-6000:]
    # The first drop has no champion: the loop trains one and scores with it.
    assert "train_model: trained bundle" in output, output
    assert "predictions: 0 rows" not in output.split("== second drop")[0], output
    # The demo's last step: one prediction from the served champion, and its model.
    answer = output[output.index("POST http://127.0.0.1:") :]
    body = json.loads(answer[answer.index("{\n") : answer.index("\n}\n") + 2])
    [prediction] = body["predictions"]
    assert 0.0 <= prediction["probability"] <= 1.0
    assert "model: " in answer
    assert (tmp_path / "demo" / "scores.csv").is_file()
