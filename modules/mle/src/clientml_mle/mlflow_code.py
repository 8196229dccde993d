"""The code MLflow runs to build the registered model's pyfunc (MLflow's "models from code").

:func:`clientml_mle.mlflow_model.log_bundle_model` logs this file as the model's ``python_model``: MLflow
stores it as source and, on load, runs it, so nothing of the model is pickled. Not for importing.
"""

from mlflow.models import set_model

from clientml_mle.mlflow_model import BundleModel

set_model(BundleModel())
