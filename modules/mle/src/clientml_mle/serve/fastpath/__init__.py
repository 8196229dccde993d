"""The serving fast path: records -> float64 matrix -> the final estimator, with no pandas per call.

A bundle's model is a ``Pipeline``: encoding steps, then a classifier. Serving splits it in two stages,
each with fast implementations and a literal one to fall back on:

- :mod:`.encoders` (records -> the matrix ``model[:-1].transform`` gives): ``lookup-tables`` when the
  encoding is a ``ColumnTransformer`` of one-hot encoders (optionally after a ``SimpleImputer``) and
  column-wise numeric steps (passthrough, ``SimpleImputer``, ``StandardScaler``, ``RobustScaler``,
  ``MaxAbsScaler``, ``MinMaxScaler``, or a ``Pipeline`` of them), possibly followed by further
  column-wise steps; else ``pipeline-transform``, a DataFrame through ``model[:-1].transform``
  (1.5-5 ms per call);
- :mod:`.scorers` (matrix -> P(label = 1)): LightGBM's trees compiled with numba
  (:mod:`clientml_mle.serve.fastpath.forest`) or its booster, logistic regression's arithmetic,
  ``CalibratedClassifierCV`` of either with its calibrators in numpy, else the estimator's own
  ``predict_proba``; and the explainers (TreeSHAP, ``coef * value``, the folds' mean).

Two steps turn a bundle into something that serves:

1. :func:`compile_bundle` (:mod:`.compile`, :mod:`.compile_encoders`, :mod:`.compile_scorers`): the
   pipeline -> :class:`Candidates`, every applicable encoder and scorer, fastest first;
2. :func:`verify` (:mod:`.verify`): candidates -> a frozen :class:`VerifiedPredictor` holding the first
   encoder and scorer that match the bundle on probe records (the matrix exactly, the probabilities
   within 1e-9), or :class:`VerificationError` when even the literal path disagrees.

Only :func:`verify` makes a :class:`VerifiedPredictor`, and the serving state accepts nothing else.

At training, the verified stages are also stored in the bundle (:mod:`.stored`, ``fastpath.npz``) with the
model's answers on the probe records; the API rebuilds them from there and verifies them again against
those answers (:func:`.verify.check`) without loading the model.
"""

from __future__ import annotations

from clientml_mle.serve.fastpath.base import BundleLike, UnsupportedModelError, VerificationError
from clientml_mle.serve.fastpath.compile import Candidates, compile_bundle
from clientml_mle.serve.fastpath.predictor import VerifiedPredictor
from clientml_mle.serve.fastpath.records import probe_records, records_from_frame
from clientml_mle.serve.fastpath.verify import probe_cuts, verify

__all__ = [
    "BundleLike",
    "Candidates",
    "UnsupportedModelError",
    "VerificationError",
    "VerifiedPredictor",
    "compile_bundle",
    "probe_cuts",
    "probe_records",
    "records_from_frame",
    "verify",
]
