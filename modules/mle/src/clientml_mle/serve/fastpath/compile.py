"""Compilation: a bundle's sklearn pipeline -> :class:`Candidates`, the fast-path parts that *may* serve it.

Candidates cannot serve: only :func:`clientml_mle.serve.fastpath.verify.verify` turns them into a
:class:`~clientml_mle.serve.fastpath.predictor.VerifiedPredictor`, keeping the first encoder and the
first scorer that match the bundle's own prediction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clientml_mle.serve.config import DEFAULT_MAX_RECORDS
from clientml_mle.serve.fastpath.base import BundleLike, ModelSpec, UnsupportedModelError
from clientml_mle.serve.fastpath.compile_encoders import compile_lookup, pipeline_encoder
from clientml_mle.serve.fastpath.compile_scorers import final_stage
from clientml_mle.serve.fastpath.encoders import Encoder
from clientml_mle.serve.fastpath.scorers import Explainer, Scorer
from clientml_mle.serve.schemas import RecordValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidates(ModelSpec):
    """A bundle's compiled fast-path parts, not yet checked against the bundle (they cannot serve)."""

    encoders: tuple[Encoder, ...]  # fastest first; the last is the literal ``model[:-1].transform``
    scorers: tuple[Scorer, ...]  # fastest first; the last is the literal ``predict_proba``
    explainer: Explainer | None
    split_boosters: tuple[Any, ...]  # LightGBM boosters whose split thresholds verification probes


def compile_bundle(bundle: BundleLike, max_records: int = DEFAULT_MAX_RECORDS) -> Candidates:
    """Compile the bundle's pipeline into candidate encoders and scorers (fast first, literal last).

    ``max_records`` is the validator's limit of records per call. Raises UnsupportedModelError when the
    model cannot be served at all (see :func:`check_pipeline`).
    """
    manifest = bundle.manifest
    features = list(manifest.features)
    validator = RecordValidator(features, max_records)
    pipeline, final = check_pipeline(bundle.model)
    encoders: list[Encoder] = []
    try:
        encoders.append(compile_lookup(bundle, pipeline, features, validator))
    except UnsupportedModelError as exc:
        log.info("lookup tables not applicable (%s): the pipeline's own transform encodes", exc)
    encoders.append(pipeline_encoder(bundle, pipeline, features, validator))
    stage = final_stage(final)
    return Candidates(
        name=str(manifest.name),
        version=str(manifest.version),
        threshold=float(manifest.threshold),
        features=tuple(features),
        validator=validator,
        model_type=stage.model_type,
        encoders=tuple(encoders),
        scorers=tuple(stage.scorers),
        explainer=stage.explainer,
        split_boosters=tuple(stage.boosters),
    )


def check_pipeline(model: Any) -> tuple[Any, Any]:
    """(pipeline, final estimator) of a servable model.

    Raises UnsupportedModelError unless ``model`` is a ``Pipeline`` of encoding step(s), then a classifier
    with ``predict_proba`` and a class 1, with no ``OneHotEncoder(handle_unknown="error")`` (the API
    accepts unseen categories).
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        raise UnsupportedModelError("serving needs a Pipeline of encoding step(s), then a classifier")
    final = model.steps[-1][1]
    if not hasattr(final, "predict_proba"):
        raise UnsupportedModelError(f"the last step ({type(final).__name__}) has no predict_proba")
    if 1 not in list(getattr(final, "classes_", [])):
        raise UnsupportedModelError(f"the last step ({type(final).__name__}) has no class 1 (classes_ lacks it)")
    for name, value in model[:-1].get_params(deep=True).items():
        if isinstance(value, OneHotEncoder) and value.handle_unknown == "error":
            raise UnsupportedModelError(
                f"encoder {name!r} rejects unseen categories (handle_unknown='error'), which the API accepts: "
                f"use handle_unknown='ignore' or 'infrequent_if_exist'"
            )
    return model, final
