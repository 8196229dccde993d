"""What every module's DAG tests share: the embedded Airflow's metadata database, and what a DAG file imports
when it is parsed.

The DAG processor imports each DAG file every few seconds: a file must import nothing heavy at parse time
(Airflow's best practices), the work being imported by its tasks when they run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# What no DAG file may import when parsed: the engines and data libraries, the settings, the models' stack.
HEAVY_MODULES = (
    "ibis",
    "duckdb",
    "pandas",
    "pyarrow",
    "pyspark",
    "psycopg",
    "pydantic_settings",
    "clientml_de.settings",
    "sklearn",
    "lightgbm",
    "mlflow",
    "optuna",
    "scipy",
)
_IMPORT_EACH = """
import importlib, json, sys
heavy, modules = json.loads(sys.argv[1]), sys.argv[2:]
seen = {}
for name in modules:
    importlib.import_module(name)
    seen[name] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""


def heavy_imports(modules: Sequence[str], heavy: Sequence[str] = HEAVY_MODULES) -> dict[str, list[str]]:
    """Import the DAG ``modules`` in order in a fresh interpreter; for each, the ``heavy`` modules imported
    so far (an empty list per module when the files are thin). Raises CalledProcessError when one fails."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(list(heavy)), *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def migrate_airflow() -> None:
    """Create the metadata database of the suite's embedded Airflow (``AIRFLOW_HOME``, set by the fixtures
    plugin) unless it exists: once per session, it takes seconds."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
