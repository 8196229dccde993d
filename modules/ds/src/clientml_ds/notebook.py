"""Run a notebook headless with parameters (what CI does with ``notebooks/eda.ipynb``).

Papermill's convention without papermill: the cell tagged ``parameters`` holds the defaults, and a cell
tagged ``injected-parameters`` right after it overrides them; then ``nbclient`` executes every cell in a
fresh kernel. An error in any cell raises ``nbclient.exceptions.CellExecutionError`` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def inject_parameters(nb: Any, parameters: Mapping[str, Any]) -> Any:
    """Insert (or replace) the ``injected-parameters`` cell after the ``parameters`` cell."""
    import nbformat

    cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    where = next(
        (i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])),
        None,
    )
    if where is None:
        raise ValueError(f"the notebook has no cell tagged {PARAMETERS_TAG!r}")
    source = "# Parameters injected at run time\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells = [*cells[: where + 1], injected, *cells[where + 1 :]]
    return nb


def execute_notebook(
    path: Path | str,
    parameters: Mapping[str, Any] | None = None,
    *,
    output: Path | str | None = None,
    cwd: Path | str | None = None,
    timeout_s: int = 600,
    kernel_name: str = "python3",
) -> Any:
    """Execute ``path`` with ``parameters`` in a fresh kernel; write the executed copy to ``output``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    if parameters:
        inject_parameters(nb, parameters)
    workdir = Path(cwd) if cwd is not None else Path(path).resolve().parent
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name=kernel_name, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    if output is not None:
        nbformat.write(nb, str(output))
    return nb


def strip_outputs(path: Path | str) -> None:
    """Remove outputs and execution counts in place (what is committed)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nbformat.write(nb, str(path))
