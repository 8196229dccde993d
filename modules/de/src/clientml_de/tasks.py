"""The work of the DAG tasks, as plain functions that tests call without a scheduler.

Each function is idempotent: it replaces whole tables, so running it again with the same inputs leaves
the same warehouse. Arguments that are empty fall back to the ``CLIENTML_*`` environment (see
:func:`~clientml_de.settings.get_settings`); the warehouse may also come from the Airflow connection
``clientml_warehouse``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from clientml_de.config import DatasetConfig
from clientml_de.contract import FEATURE_STORE
from clientml_de.features import build_feature_store
from clientml_de.load import load_source
from clientml_de.settings import get_settings
from clientml_de.warehouse import connect

WAREHOUSE_CONNECTION_ID = "clientml_warehouse"
# The last task error in this process: dag.test() only reports a state, and the embedded pipeline
# wants to show the user the error itself.
last_failure: list[str] = []

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _remember_failure(func: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            last_failure[:] = [f"{type(exc).__name__}: {exc}"]
            raise

    return wrapper


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


def _source(value: str | None, setting: str | None, what: str) -> str:
    source = value or setting
    if not source:
        raise ValueError(f"no {what} source given: pass it as a DAG param or set CLIENTML_{what.upper()}_SOURCE")
    return source


def _dataset_config(path: str | Path | None) -> DatasetConfig:
    return DatasetConfig.load(path or get_settings().dataset_config)


@_remember_failure
def load_clients(source: str | None, warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Load the clients file into ``clients`` (and its rejects into ``rejected_rows``)."""
    spec = _dataset_config(dataset_config).clients_spec()
    warehouse = connect(resolve_warehouse_url(warehouse_url), get_settings().spark_master)
    try:
        return load_source(_source(source, get_settings().clients_source, "clients"), spec, warehouse).to_dict()
    finally:
        warehouse.close()


@_remember_failure
def load_sales(source: str | None, warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Load the sales file into ``sales``, checking client ids against the loaded ``clients``."""
    spec = _dataset_config(dataset_config).sales_spec()
    warehouse = connect(resolve_warehouse_url(warehouse_url), get_settings().spark_master)
    try:
        return load_source(_source(source, get_settings().sales_source, "sales"), spec, warehouse).to_dict()
    finally:
        warehouse.close()


@_remember_failure
def build_features(warehouse_url: str | None, dataset_config: str | None) -> dict[str, Any]:
    """Rebuild ``feature_store`` from ``clients`` and ``sales``."""
    config = _dataset_config(dataset_config)
    warehouse = connect(resolve_warehouse_url(warehouse_url), get_settings().spark_master)
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
