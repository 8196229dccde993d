"""Runtime settings of the ML engineering toolkit (``CLIENTML_*`` environment variables).

One class for everything mle needs (training, tracking, scoring, serving); it extends the data engineering
settings, so ``CLIENTML_WAREHOUSE_URL`` means the same warehouse everywhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from clientml_de.config import DEFAULT_STATE_DIR
from clientml_de.config import Settings as _DESettings
from pydantic import Field, SecretStr

MODELS_SUBDIR = Path("modules") / "ds" / "models"


@lru_cache(maxsize=1)
def repo_root() -> Path | None:
    """The clientml repository this package runs from (an editable install), or ``None`` when installed."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "modules" / "ds").is_dir():
            return parent
    return None


def default_models_dir() -> Path:
    """``modules/ds/models`` of the repository when there is one (the contract's place), else ``./models``."""
    root = repo_root()
    return root / MODELS_SUBDIR if root is not None else Path("models").resolve()


def _default_tracking_uri() -> str:
    return f"sqlite:///{(DEFAULT_STATE_DIR / 'mlflow.db').resolve()}"


def _default_artifacts_dir() -> Path:
    return (DEFAULT_STATE_DIR / "mlartifacts").resolve()


class Settings(_DESettings):
    """Settings of training, tracking, scoring and serving (``CLIENTML_`` environment variables)."""

    # Where bundles are written and read (one directory per version plus the LATEST pointer).
    models_dir: Path = Field(default_factory=default_models_dir)
    # MLflow: a local SQLite store by default; an http(s):// tracking server in the full system.
    mlflow_tracking_uri: str = Field(default_factory=_default_tracking_uri)
    # Where a new MLflow experiment keeps its artifacts (used only when the experiment is created).
    mlflow_artifacts_dir: Path = Field(default_factory=_default_artifacts_dir)
    mlflow_experiment: str = "clientml"
    model_name: str = "clientml-classifier"
    # Training.
    seed: int = 0
    test_size: float = Field(default=0.2, gt=0, lt=1)
    # Threads of the default estimator (LightGBM); 1 is faster on small data or a busy machine.
    train_n_jobs: int = Field(default=2, ge=1)
    wait_timeout_s: float = Field(default=600.0, ge=0)
    wait_poll_s: float = Field(default=5.0, gt=0)
    # Serving.
    api_key: SecretStr | None = None
    max_records: int = Field(default=10_000, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
