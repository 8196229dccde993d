"""The Airflow Assets the DAGs produce and consume, defined once for every module's DAGs.

One per warehouse table a DAG publishes, plus two events of the monitoring loop that are not tables:
``retrain`` (the monitor, or a user, asks for a training) and ``champion`` (the champion gate promoted a new
model). They are only names: defining them here imports nothing from the modules that use them.
"""

from airflow.sdk import Asset

CLIENTS_ASSET = Asset(name="clients", uri="clientml://warehouse/clients")
SALES_ASSET = Asset(name="sales", uri="clientml://warehouse/sales")
FEATURE_STORE_ASSET = Asset(name="feature_store", uri="clientml://warehouse/feature_store")
PREDICTIONS_ASSET = Asset(name="predictions", uri="clientml://warehouse/predictions")
RETRAIN_ASSET = Asset(name="retrain", uri="clientml://loop/retrain")
CHAMPION_ASSET = Asset(name="champion", uri="clientml://models/champion")
