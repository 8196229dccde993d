"""Scorers (model matrix -> P(label = 1)) and explainers (model matrix -> per-column log-odds).

Scorers, fastest first; :func:`clientml_mle.serve.fastpath.verify.verify` keeps the first that matches
``bundle.predict_proba``:

- :class:`TreeScorer`: a binary LightGBM model, its trees compiled with numba
  (:class:`clientml_mle.serve.fastpath.forest.Forest`) or its ``Booster`` on one thread;
- :class:`LinearScorer`: a binary logistic regression with sklearn's arithmetic;
- :class:`CalibratedScorer`: ``CalibratedClassifierCV`` of either, its calibrators replayed in numpy;
- :class:`EstimatorScorer`: the literal path, the fitted estimator's own ``predict_proba``.

Explainers: :class:`TreeExplainer` (TreeSHAP), :class:`LinearExplainer` (``coef * value``),
:class:`MeanExplainer` (the folds of a ``CalibratedClassifierCV`` averaged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit

from clientml_mle.serve.fastpath.forest import Forest

# sklearn's _CalibratedClassifier sets probabilities in (1, 1 + 1e-5] to exactly 1.
CALIBRATED_ONE_SLACK = 1e-5


class Scorer(Protocol):
    """Model matrix -> P(label = 1)."""

    @property
    def kind(self) -> str: ...
    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``, of the ``(n, n_columns)`` float64 model matrix."""
        ...


@dataclass
class TreeScorer:
    """A binary LightGBM model: its compiled trees, or its booster (one thread)."""

    booster: Any
    forest: Forest | None

    @property
    def kind(self) -> str:
        """``compiled-trees`` or ``lightgbm-booster``."""
        return "compiled-trees" if self.forest is not None else "lightgbm-booster"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``."""
        if self.forest is not None:
            return self.forest.predict(matrix)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The raw score (log-odds), shape ``(n,)``: what ``LGBMClassifier.decision_function`` gives."""
        if self.forest is not None:
            return self.forest.raw(matrix)
        return np.asarray(self.booster.predict(matrix, raw_score=True, num_threads=1), dtype=np.float64)


@dataclass
class LinearScorer:
    """A binary logistic regression, with sklearn's arithmetic (``X @ coef_.T + intercept_``, expit)."""

    coef: np.ndarray  # (1, n_columns), as fitted
    intercept: np.ndarray  # (1,)
    kind: str = "linear"

    def decision(self, matrix: np.ndarray) -> np.ndarray:
        """The linear score (log-odds), shape ``(n,)``: ``decision_function``."""
        return np.reshape(matrix @ self.coef.T + self.intercept, (-1,))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``."""
        return np.asarray(expit(self.decision(matrix)), dtype=np.float64)


@dataclass
class CalibratedFold:
    """One fold of a CalibratedClassifierCV: its base model's response, then its calibrator."""

    response: Callable[[np.ndarray], np.ndarray]
    calibrate: Callable[[np.ndarray], np.ndarray]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The fold's calibrated P(label = 1), shape ``(n,)``."""
        proba = self.calibrate(self.response(matrix))
        return np.where((proba > 1.0) & (proba <= 1.0 + CALIBRATED_ONE_SLACK), 1.0, proba)


@dataclass
class CalibratedScorer:
    """``CalibratedClassifierCV.predict_proba``: the folds' calibrated probabilities averaged."""

    folds: list[CalibratedFold]
    base_kind: str

    @property
    def kind(self) -> str:
        """``calibrated(<the folds' base scorer kinds>)``."""
        return f"calibrated({self.base_kind})"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``: the mean over the folds."""
        total = np.zeros(matrix.shape[0], dtype=np.float64)
        for fold in self.folds:
            total += fold.predict(matrix)
        total /= len(self.folds)
        return total


@dataclass
class EstimatorScorer:
    """The literal scorer: the fitted final estimator's ``predict_proba`` on the numpy matrix."""

    estimator: Any
    positive: int  # the column of class 1

    @property
    def kind(self) -> str:
        """``sklearn-predict-proba(<estimator class>)``."""
        return f"sklearn-predict-proba({type(self.estimator).__name__})"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``; raises whatever the estimator raises."""
        names = getattr(self.estimator, "feature_names_in_", None)
        x: Any = pd.DataFrame(matrix, columns=names) if names is not None else matrix
        return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)[:, self.positive]


# --- explainers: matrix -> (contributions per column (n, n_columns), bias (n,)) ---------------------


@dataclass
class TreeExplainer:
    """LightGBM's TreeSHAP contributions to the raw score."""

    booster: Any
    kind: str = "lightgbm-pred-contrib"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per column ``(n, n_columns)``, bias ``(n,)``); they add up to the raw score."""
        raw = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64)
        return raw[:, :-1], raw[:, -1]


@dataclass
class LinearExplainer:
    """A linear model's ``coef * value`` per column; the intercept is the bias."""

    coef: np.ndarray  # (n_columns,)
    intercept: float
    kind: str = "linear-coef-times-value"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per column ``(n, n_columns)``, bias ``(n,)``); they add up to the linear score."""
        return matrix * self.coef, np.full(matrix.shape[0], self.intercept)


@dataclass
class MeanExplainer:
    """The average of the folds' base-model explanations (CalibratedClassifierCV)."""

    members: list[TreeExplainer | LinearExplainer]

    @property
    def kind(self) -> str:
        """``calibrated-base(<the first member's kind>)``."""
        return f"calibrated-base({self.members[0].kind})"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per column ``(n, n_columns)``, bias ``(n,)``): the members' averaged."""
        per_column = np.zeros(matrix.shape, dtype=np.float64)
        bias = np.zeros(matrix.shape[0], dtype=np.float64)
        for member in self.members:
            columns, base = member(matrix)
            per_column += columns
            bias += base
        return per_column / len(self.members), bias / len(self.members)


Explainer = TreeExplainer | LinearExplainer | MeanExplainer
