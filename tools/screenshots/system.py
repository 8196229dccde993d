"""What the pages are photographed from: the running system's URLs and the files its runs wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AIRFLOW_ADMIN = "admin"


@dataclass(frozen=True)
class System:
    airflow: str
    airflow_password: str
    mlflow: str
    mlflow_tracking_uri: str
    api: str
    api_key: str | None
    # The bundles (each with its evaluation report) and the champion pointer.
    models_dir: Path
    drift_report: Path
    warehouse_url: str
