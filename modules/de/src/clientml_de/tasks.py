"""The work of the DAG tasks, as plain functions that tests call without a scheduler.

Each function is idempotent: it replaces whole tables, so running it again with the same inputs leaves
the same warehouse. Arguments that are empty fall back to the ``CLIENTML_*`` environment (see
:func:`~clientml_de.settings.get_settings`); the warehouse may also come from the Airflow connection
``clientml_warehouse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clientml_de.config import DatasetConfig
from clientml_de.contract import FEATURE_STORE, TableSpec
from clientml_de.features import build_feature_store
from clientml_de.load import load_source
from clientml_de.settings import get_settings
from clientml_de.warehouse import connect

WAREHOUSE_CONNECTION_ID = "clientml_warehouse"


def _airflow_connection_url() -> str | None:
    """The warehouse URL of the Airflow connection, when Airflow is installed and it is defined."""
    try:
        from airflow.sdk import Connection
    except ImportError:
        return None
    try:
        connection = Connection.get(WAREHOUSE_CONNECTION_ID)
    except Exception:  # not defined: the Task SDK raises its own not-found error
        return None
    url = connection.extra_dejson.get("url") if connection.extra else None
    return str(url or connection.get_uri())


def resolve_warehouse_url(url: str | None) -> str:
    """Explicit URL, else the Airflow connection, else ``CLIENTML_WAREHOUSE_URL`` (or its default)."""
    return url or _airflow_connection_url() or get_settings().warehouse_url


def _dataset_config(path: str | Path | None) -> DatasetConfig:
    return DatasetConfig.load(path or get_settings().dataset_config)


def _load(spec: TableSpec, source: str | None, setting: str | None, warehouse_url: str | None) -> dict[str, Any]:
    source = source or setting
    if not source:
        raise ValueError(
            f"no {spec.table} source given: pass it as a DAG param or set CLIENTML_{spec.table.upper()}_SOURCE"
        )
    warehouse = connect(resolve_warehouse_url(warehouse_url))
    try:
        return load_source(source, spec, warehouse).to_dict()
    finally:
        warehouse.close()


def load_clients(source: str | None, warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Load the clients file into ``clients`` (and its rejects into ``rejected_rows``).

    Empty arguments fall back to ``CLIENTML_CLIENTS_SOURCE``, the warehouse connection or setting, and
    ``CLIENTML_DATASET_CONFIG``. Returns the :class:`~clientml_de.warehouse.LoadSummary` as a dict.

    Raises:
        ValueError: no source given nor configured.
        clientml_de.validate.SourceError: the file cannot be loaded at all (names the file and the problem).
        clientml_de.warehouse.WarehouseError: the warehouse URL is wrong or unreachable.
    """
    spec = _dataset_config(dataset_config).clients_spec()
    return _load(spec, source, get_settings().clients_source, warehouse_url)


def load_sales(source: str | None, warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Load the sales file into ``sales``, checking client ids against the loaded ``clients``.

    Arguments, result and errors as :func:`load_clients` (``CLIENTML_SALES_SOURCE`` for the source);
    also :class:`~clientml_de.validate.SourceError` when ``clients`` is not loaded yet.
    """
    spec = _dataset_config(dataset_config).sales_spec()
    return _load(spec, source, get_settings().sales_source, warehouse_url)


def build_features(warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Rebuild ``feature_store`` from ``clients`` and ``sales``.

    Empty arguments fall back as in :func:`load_clients`. Returns ``{"table": "feature_store", "rows": n}``.

    Raises:
        clientml_de.warehouse.WarehouseError: the warehouse is unreachable or ``clients``/``sales`` are not loaded.
    """
    config = _dataset_config(dataset_config)
    warehouse = connect(resolve_warehouse_url(warehouse_url))
    try:
        return {"table": FEATURE_STORE, "rows": build_feature_store(warehouse, config)}
    finally:
        warehouse.close()


def run_all(
    clients_source: str, sales_source: str, warehouse_url: str, dataset_config: str | None = None
) -> dict[str, Any]:
    """The three DAGs' work in order, without a scheduler (tests, notebooks, benchmarks)."""
    return {
        "clients": load_clients(clients_source, warehouse_url, dataset_config),
        "sales": load_sales(sales_source, warehouse_url, dataset_config),
        FEATURE_STORE: build_features(warehouse_url, dataset_config),
    }
