"""The verified predictor: validated records in, probabilities (and contributions) out.

A :class:`VerifiedPredictor` is made only by :func:`clientml_mle.serve.fastpath.verify.verify`, once
its encoder and scorer have matched the bundle's own prediction; it is frozen, so what was verified is
what serves. Constructing one any other way raises TypeError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import InitVar, dataclass
from typing import Any

import numpy as np

from clientml_mle.serve.fastpath.base import ModelSpec
from clientml_mle.serve.fastpath.encoders import Encoder
from clientml_mle.serve.fastpath.forest import Forest
from clientml_mle.serve.fastpath.scorers import Explainer, Scorer, TreeScorer
from clientml_mle.serve.schemas import InvalidRequestError, ValidRecords, error_entry

TOP_CONTRIBUTIONS = 5

# Passed by verify() alone: the proof that a VerifiedPredictor comes out of verification.
_SEAL = object()


@dataclass(frozen=True, slots=True)
class VerifiedPredictor(ModelSpec):
    """A bundle's fast path, verified against the bundle (see :func:`~.verify.verify`)."""

    encoder: Encoder
    scorer: Scorer
    explainer: Explainer | None
    verified: dict[str, Any]  # the verification report (records, max_abs_diff, encoder, scorer, ...)
    seal: InitVar[object]

    def __post_init__(self, seal: object) -> None:
        if seal is not _SEAL:
            raise TypeError("a VerifiedPredictor is made only by clientml_mle.serve.fastpath.verify()")

    # the hot path ------------------------------------------------------------------------------------

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The ``(valid.n, n_columns)`` model matrix of validated records (the pipeline's transform)."""
        return self.encoder.encode(valid)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``, for every row of an ``(n, n_columns)`` model matrix."""
        return self.scorer.predict(matrix)

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        """The int64 labels, 1 where the probability reaches the bundle's threshold."""
        return (probabilities >= self.threshold).astype(np.int64)

    def predict_records(self, records: list[Any]) -> np.ndarray:
        """P(label = 1), shape ``(len(records),)``, of JSON-like records: the in-process API.

        Raises InvalidRequestError: 422 for an invalid or empty list, 413 above the record limit.
        """
        self.validator.check_count(len(records))
        return self.predict_matrix(self.encode(self.validator.validate_records(records)))

    @property
    def kind(self) -> str:
        """How the matrix is scored (``compiled-trees``, ``linear``, ``calibrated(...)``, ...)."""
        return self.scorer.kind

    @property
    def forest(self) -> Forest | None:
        """The compiled trees when a LightGBM model is scored with them."""
        return self.scorer.forest if isinstance(self.scorer, TreeScorer) else None

    # explanations ------------------------------------------------------------------------------------

    @property
    def explain_kind(self) -> str | None:
        """How contributions are computed, or None when this model has none."""
        return self.explainer.kind if self.explain_unavailable is None and self.explainer is not None else None

    @property
    def explain_unavailable(self) -> str | None:
        """Why ``explain=true`` cannot be honoured for this model (None: it can)."""
        if self.explainer is None:
            return f"explain is not available for model type {self.model_type}"
        if self.encoder.column_feature is None or (self.encoder.column_feature < 0).any():
            return (
                f"explain is not available for this pipeline ({self.model_type}): its encoded columns cannot "
                f"be traced back to the source features"
            )
        return None

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per source feature contributions to the log-odds ``(n, len(features))`` (encoded columns
        summed) and the bias ``(n,)``; they add up to the log-odds.

        Raises InvalidRequestError (422) when the model has no cheap explanation.
        """
        reason = self.explain_unavailable
        if reason is not None or self.explainer is None or self.encoder.column_feature is None:
            message = reason or "explain is not available"
            raise InvalidRequestError(422, message, [error_entry(["explain"], "explain_unavailable", message)])
        per_column, bias = self.explainer(matrix)
        per_feature = np.zeros((matrix.shape[0], len(self.features)), dtype=np.float64)
        np.add.at(per_feature.T, self.encoder.column_feature, per_column.T)
        return per_feature, bias

    def top_contributions(
        self, matrix: np.ndarray, records: Sequence[dict[str, Any]], k: int = TOP_CONTRIBUTIONS
    ) -> list[list[dict[str, Any]]]:
        """The ``k`` largest contributions by absolute value, per record: ``{"feature", "value" (the
        record's), "contribution"}``, largest first. Raises InvalidRequestError (422) like
        :meth:`contributions`."""
        per_feature, _ = self.contributions(matrix)
        order = np.argsort(-np.abs(per_feature), axis=1, kind="stable")[:, :k]
        names = [f.name for f in self.features]
        out = []
        for i, row in enumerate(order.tolist()):
            record = records[i]
            out.append(
                [
                    {
                        "feature": names[j],
                        "value": _json_value(record.get(names[j])),
                        "contribution": float(per_feature[i, j]),
                    }
                    for j in row
                ]
            )
        return out


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
