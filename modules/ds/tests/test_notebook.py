"""The exploration notebook runs headless (nbclient) on generated data and writes its figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from clientml_ds.notebook import INJECTED_TAG, PARAMETERS_TAG, execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "eda.ipynb"
FIGURES = {
    "missing.png",
    "distributions.png",
    "label_rate_by_segment.png",
    "activity_vs_label.png",
    "correlations.png",
    "single_feature_auc.png",
}


def test_the_committed_notebook_has_no_outputs_and_a_parameters_cell() -> None:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum(PARAMETERS_TAG in c.metadata.get("tags", []) for c in code) == 1
    assert NOTEBOOK.stat().st_size < 30_000


@pytest.mark.slow
def test_the_notebook_executes_and_writes_its_pngs(small_warehouse: str, tmp_path: Path) -> None:
    figures = tmp_path / "figures"
    nb = execute_notebook(
        NOTEBOOK,
        {"WAREHOUSE_URL": small_warehouse, "OUTPUT_DIR": str(figures)},
        output=tmp_path / "executed.ipynb",
        cwd=tmp_path,
        timeout_s=300,
    )
    assert {p.name for p in figures.glob("*.png")} == FIGURES
    injected = [c for c in nb.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1 and small_warehouse in injected[0].source
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "flagged as possible leakage: none" in outputs
