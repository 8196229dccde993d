"""What the pages are photographed from: the running system's URLs and what its first runs left."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AIRFLOW_ADMIN = "admin"


@dataclass(frozen=True)
class System:
    airflow: str
    airflow_password: str
    # MLflow's UI, which is also the tracking server the pages look the champion's run up on.
    mlflow: str
    api: str
    # The bundles (each with its evaluation report) and the champion pointer.
    models_dir: Path
    drift_report: Path
    # The successful process_data run whose graph is shown, and an unlabeled client to predict for.
    process_data_run: str
    client_id: str
