"""The registered model as MLflow's own tools see it: a pyfunc serving the verified bundle.

Each training run logs the model as an ``mlflow.pyfunc`` :class:`BundleModel` (a ``PythonModel``) whose
one artifact is the bundle directory itself. Loading it (``mlflow.pyfunc.load_model("models:/<name>@
champion")``, ``mlflow models serve``) runs :func:`clientml_mle.bundle.load_bundle` on that copy: every
file's SHA-256 is checked before the skops files are deserialised with the bundle's allow-list, so the
bundle stays the one source of truth. Nothing is pickled: the model is logged as code (MLflow's "models
from code": :mod:`clientml_mle.mlflow_code` builds a :class:`BundleModel`). ``predict`` takes rows as a
pandas frame (any columns: the features are picked by name, the others ignored) and returns, like the API,
one row per input row: ``probability`` (P(label=1), exactly the bundle's ``predict_proba``) and ``label`` (1
when the probability reaches the manifest's threshold).

Why not the ``mlflow.sklearn`` flavour: it would store a second copy of the model that MLflow loads without
the bundle's checks, its pyfunc answers ``predict_proba``'s n x 2 array (no label, no threshold), and it
expects the model's input (the bundle's coerced frame) rather than feature-store rows.

Signature. One optional column per feature (a missing column is a null feature, as in the API), of the
manifest's type: category -> string, number -> double, integer -> long, boolean -> boolean, date ->
datetime. MLflow's ``long`` and ``boolean`` cannot hold a null, though: a null in a ``long`` column is
refused (pandas' ``Int64`` with ``<NA>``, a float column with NaN, or a JSON ``null`` in ``mlflow models
serve``), and ``mlflow models serve`` turns a JSON ``null`` into ``false`` in a ``boolean`` column (a
different prediction, silently). So an integer or boolean feature that training saw null in (the
manifest's ``nullable``) is declared ``any``: MLflow passes its values as they come and the bundle's own
conversion checks them (a value that is not a number is refused, naming the feature). The manifest's types
are also in the model's metadata (``feature_types``), with the bundle version and the threshold.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from clientml_mle.bundle import TRUSTED_TYPES, Bundle, load_bundle, read_manifest
from clientml_mle.schema import FeatureSpec

BUNDLE_ARTIFACT = "bundle"
OUTPUT_COLUMNS = ("probability", "label")
# The manifest's feature types -> MLflow column types (``date`` once the schema declares dates).
SIGNATURE_TYPES: dict[str, str] = {
    "category": "string",
    "number": "double",
    "integer": "long",
    "boolean": "boolean",
    "date": "datetime",
}
# MLflow column types that cannot hold a null: a feature of these types that may be null is declared ``any``.
NULL_INTOLERANT = frozenset({"long", "boolean"})


def column_type(spec: FeatureSpec) -> Any:
    """The MLflow type of a feature's column: a type name of :data:`SIGNATURE_TYPES`, or ``AnyType()``
    for an integer or boolean feature that may be null (module docstring).

    Raises:
        KeyError: a feature type this module does not know.
    """
    from mlflow.types.schema import AnyType

    name = SIGNATURE_TYPES[str(spec.type)]
    return AnyType() if spec.nullable and name in NULL_INTOLERANT else name


def model_signature(features: Sequence[FeatureSpec]) -> Any:
    """The MLflow signature: one optional column per feature (:func:`column_type`); output ``probability``
    (double) and ``label`` (long), one row per input row."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec(column_type(f), f.name, required=False) for f in features])
    outputs = Schema([ColSpec("double", OUTPUT_COLUMNS[0]), ColSpec("long", OUTPUT_COLUMNS[1])])
    return ModelSignature(inputs=inputs, outputs=outputs)


class BundleModel(PythonModel):
    """The pyfunc of a registered version: the bundle (its ``bundle`` artifact), loaded and verified."""

    def load_context(self, context: Any) -> None:
        """Load the bundle artifact with every hash checked (``BundleIntegrityError`` when altered)."""
        self._bundle: Bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT], trusted_types=TRUSTED_TYPES)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """``probability`` and ``label`` for each row of ``model_input`` (frame of n rows -> frame of n rows,
        same index); features are picked by name, absent ones are null, other columns ignored.

        Raises:
            mlflow.exceptions.MlflowException: a value that is not a number for a numeric feature (the
                message names the feature; ``mlflow models serve`` answers 400).
        """
        from mlflow.exceptions import MlflowException

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            proba = self._bundle.predict_proba(frame)
        except ValueError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        label = (proba >= self._bundle.threshold).astype(np.int64)
        return pd.DataFrame({OUTPUT_COLUMNS[0]: proba, OUTPUT_COLUMNS[1]: label}, index=frame.index)


def log_bundle_model(
    bundle_dir: Path, *, name: str, registered_model_name: str | None, pip_requirements: Sequence[str]
) -> Any:
    """Log ``bundle_dir`` as a :class:`BundleModel` in the active run (and register it when a name is given).

    No input example is logged (it would copy clients' rows into the artifact store; the signature comes
    from the manifest, not from an example), so MLflow's warning asking for one is silenced. Returns
    MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``). Raises what MLflow raises.
    """
    import mlflow.pyfunc

    manifest = read_manifest(bundle_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("mlflow_code.py")),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            signature=model_signature(manifest.features),
            pip_requirements=list(pip_requirements),
            registered_model_name=registered_model_name,
            metadata={
                "bundle_version": manifest.version,
                "threshold": manifest.threshold,
                "feature_types": {f.name: str(f.type) for f in manifest.features},
            },
        )
