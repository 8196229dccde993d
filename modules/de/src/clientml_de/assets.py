"""The Airflow Assets the DAGs produce and consume: one per warehouse table a DAG publishes."""

from airflow.sdk import Asset

CLIENTS_ASSET = Asset(name="clients", uri="clientml://warehouse/clients")
SALES_ASSET = Asset(name="sales", uri="clientml://warehouse/sales")
FEATURE_STORE_ASSET = Asset(name="feature_store", uri="clientml://warehouse/feature_store")
