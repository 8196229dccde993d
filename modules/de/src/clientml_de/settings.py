"""The system's runtime settings: one pydantic-settings class, read through :func:`get_settings`.

Every runtime knob of every module (warehouse, sources, models directory, MLflow, training,
serving) is a field here, set by a ``CLIENTML_*`` environment variable, so the CLI,
the Airflow DAGs, the trainer, the API workers and the containers share one source of truth. The class
lives in the lowest module (``de``) because every other module depends on it, never the reverse.

Relative default paths are resolved when the settings are read (against the working directory then),
never at import time. This module is also the only place that reads or writes the process environment
(:func:`export_environment`, :func:`disable_telemetry`): libraries that are configured through their own
variables (Airflow, MLflow, prometheus-client) get them from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path(".clientml")
DEFAULT_MODELS_DIR = Path("modules") / "ds" / "models"

# Telemetry off in every tool this system runs (set only where the user has not chosen otherwise).
TELEMETRY_OFF: dict[str, str] = {
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "CHECKPOINT_DISABLE": "1",
}


class Settings(BaseSettings):
    """All ``CLIENTML_*`` settings. Paths may be relative: they are made absolute when read."""

    model_config = SettingsConfigDict(env_prefix="CLIENTML_", extra="ignore")

    # Local state (embedded warehouse, MLflow store, Airflow home) lives under this directory.
    state_dir: Path = DEFAULT_STATE_DIR

    # --- data engineering -------------------------------------------------------------------------
    # duckdb:///file.duckdb, postgresql://..., spark:///dir; default: <state_dir>/warehouse.duckdb.
    warehouse_url: str = ""
    clients_source: str | None = None
    sales_source: str | None = None
    dataset_config: Path | None = None
    # spark:///dir warehouses: the master (local[*], or a cluster: spark://host:7077, yarn, k8s://...), and Spark
    # properties (a JSON object) applied after ours, e.g. {"spark.driver.host": "10.0.0.5"}: a cluster's executors
    # must reach the driver, and its Spark settings (memory, shuffle partitions) are the deployment's to choose.
    spark_master: str = "local[*]"
    spark_conf: dict[str, str] = Field(default_factory=dict)
    # How long a connection to a DuckDB warehouse file waits while another process holds its lock (a load
    # waits for readers, a read-only reader for a load), retrying with growing pauses; then it fails.
    warehouse_lock_timeout_s: float = Field(default=60.0, ge=0)
    # The memory budget of every DuckDB database this process opens (the warehouse file, the scratch database
    # where files are validated for the other engines, read-only readers): DuckDB's own memory_limit, in MiB.
    # Past it, loads and the feature build spill to spill_dir instead of failing, whatever the file size.
    # 1024 keeps `clientml pipeline` (Airflow, Python and this) under 2 GB of RSS with 1M clients.
    memory_limit_mb: int = Field(default=1024, ge=64)
    # Where DuckDB spills (one private subdirectory per connection, removed when it closes); default:
    # <state_dir>/spill. It needs free disk of the order of the largest source file.
    spill_dir: Path | None = None
    # DuckDB's worker threads; 0: one per core.
    duckdb_threads: int = Field(default=0, ge=0)

    # --- models and tracking ----------------------------------------------------------------------
    # Where bundles are written and read (one directory per version plus the LATEST/CHAMPION pointers).
    models_dir: Path = DEFAULT_MODELS_DIR
    # MLflow: a local SQLite store by default (<state_dir>/mlflow.db); http(s):// in the full system.
    mlflow_tracking_uri: str = ""
    # Where a new MLflow experiment keeps its artifacts (used only when the experiment is created).
    mlflow_artifacts_dir: Path | None = None
    mlflow_experiment: str = "clientml"
    model_name: str = "clientml-classifier"

    # --- training ---------------------------------------------------------------------------------
    # ds: the ds module's model selection; default: mle's one-hot + LightGBM baseline.
    trainer: Literal["ds", "default"] = "ds"
    seed: int = 0
    test_size: float = Field(default=0.2, gt=0, lt=1)
    # Threads of the final LightGBM fit; 1 is faster on small data or a busy machine.
    train_n_jobs: int = Field(default=2, ge=1)
    # Rows the ds hyperparameter search runs on at most (a sample above that).
    ds_max_search_rows: int = Field(default=100_000, ge=100)
    wait_timeout_s: float = Field(default=600.0, ge=0)
    wait_poll_s: float = Field(default=5.0, gt=0)
    # `clientml train --watch`: seconds between two looks at feature_store (one small aggregate query).
    watch_poll_s: float = Field(default=30.0, gt=0)

    # --- drift monitoring (clientml_mle.monitor; the rules and their sources: modules/mle/README.md) -------
    # A feature or the score distribution has drifted when its PSI exceeds this (Siddiqi 2006: > 0.2 is a
    # significant shift) ...
    monitor_psi_threshold: float = Field(default=0.2, gt=0)
    # ... and beyond what sampling alone gives that seldom when nothing changed (matters for small samples).
    monitor_confidence: float = Field(default=0.99, gt=0, lt=1)
    # ... or when its null rate moved by more than this, absolute (0.1: ten points of the population).
    monitor_null_rate_change: float = Field(default=0.1, gt=0, le=1)
    # The features the model relies on: the most important ones that together hold this share of its importance.
    monitor_importance_coverage: float = Field(default=0.8, gt=0, le=1)
    # Where `clientml monitor` writes its HTML reports; default: <state_dir>/monitor.
    monitor_report_dir: Path | None = None

    # --- serving ----------------------------------------------------------------------------------
    api_key: SecretStr | None = None
    max_records: int = Field(default=10_000, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "INFO"
    # How often each API worker serving a models directory rereads its CHAMPION (else LATEST) pointer, and
    # swaps in the bundle it names; 0: no watching (the bundle found at start is served until a restart).
    reload_poll_s: float = Field(default=5.0, ge=0)
    # prometheus-client's own variable (no CLIENTML_ prefix): the directory of its multiprocess mode. Unset,
    # `clientml serve` with several workers makes a temporary one and exports it to them.
    prometheus_multiproc_dir: Path | None = Field(default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR")

    # --- serving a bundle kept in S3 (the deployed container: modules/deployment/README.md) -----------
    # s3://bucket/prefix holding <prefix>/<version>/<the bundle's files> and <prefix>/CHAMPION (a version).
    # Set: `clientml serve` first downloads the bundle named by `bundle` into models_dir, then serves it.
    bundle_s3_uri: str | None = None
    # "champion" (the version <prefix>/CHAMPION names when the server starts) or a bundle version.
    bundle: str = "champion"
    # AWS's own variable (no CLIENTML_ prefix; ECS sets it): the region of the bundle bucket's client.
    aws_region: str | None = Field(default=None, validation_alias="AWS_REGION")

    # An empty variable means unset (compose passes `VAR: ${VAR:-}` through as ""; Path("") would be ".").
    @field_validator(
        "clients_source",
        "sales_source",
        "dataset_config",
        "spill_dir",
        "mlflow_artifacts_dir",
        "monitor_report_dir",
        "prometheus_multiproc_dir",
        "bundle_s3_uri",
        "aws_region",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return value or None

    # Whether CLIENTML_WAREHOUSE_URL was given (the defaulting below would count as "set" for pydantic).
    _warehouse_configured: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _resolve_paths(self) -> Self:
        self._warehouse_configured = bool(self.warehouse_url)
        self.state_dir = self.state_dir.resolve()
        self.models_dir = self.models_dir.resolve()
        if not self.warehouse_url:
            self.warehouse_url = f"duckdb:///{self.state_dir / 'warehouse.duckdb'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.state_dir / 'mlflow.db'}"
        self.mlflow_artifacts_dir = (self.mlflow_artifacts_dir or self.state_dir / "mlartifacts").resolve()
        self.spill_dir = (self.spill_dir or self.state_dir / "spill").resolve()
        self.monitor_report_dir = (self.monitor_report_dir or self.state_dir / "monitor").resolve()
        return self

    @property
    def warehouse_url_is_set(self) -> bool:
        """Whether the warehouse was configured (``CLIENTML_WAREHOUSE_URL``) rather than defaulted."""
        return self._warehouse_configured

    def api_key_value(self) -> str | None:
        """The API key in clear, or ``None`` when unset or empty (the API is then open)."""
        return (self.api_key.get_secret_value() or None) if self.api_key is not None else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment (``get_settings.cache_clear()`` rereads).

    Raises:
        pydantic.ValidationError: a ``CLIENTML_*`` variable has a value of the wrong type or range.
    """
    return Settings()


def export_environment(variables: Mapping[str, str]) -> None:
    """Set process environment variables for libraries configured through them (Airflow, prometheus-client).

    Child processes inherit them, which is how those libraries' workers get their configuration.
    """
    os.environ.update(variables)


def environment_variable(name: str) -> str | None:
    """One process environment variable by name (e.g. the one ``clientml serve --api-key-env`` names)."""
    return os.environ.get(name) or None


def process_environment() -> dict[str, str]:
    """A copy of the process environment, to extend for a child process."""
    return dict(os.environ)


def disable_telemetry() -> None:
    """Turn usage telemetry off in Airflow, MLflow and Terraform unless the user set these variables."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
