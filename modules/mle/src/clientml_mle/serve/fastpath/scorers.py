"""Scorers (model matrix -> P(label = 1)) and explainers (model matrix -> per-column log-odds).

Scorers, fastest first; :func:`clientml_mle.serve.fastpath.verify.verify` keeps the first that matches
``bundle.predict_proba``:

- :class:`TreeScorer`: a binary LightGBM model, its trees compiled with numba
  (:class:`clientml_mle.serve.fastpath.forest.Forest`) or LightGBM's own predictor on one thread
  (:class:`~clientml_mle.serve.fastpath.native.NativeBooster`);
- :class:`LinearScorer`: a binary logistic regression with sklearn's arithmetic;
- :class:`CalibratedScorer`: ``CalibratedClassifierCV`` of either, its calibrators
  (:class:`SigmoidCalibrator`, :class:`IsotonicCalibrator`) replayed in numpy;
- :class:`EstimatorScorer`: the literal path, the fitted estimator's own ``predict_proba``.

Explainers: :class:`TreeExplainer` (TreeSHAP), :class:`LinearExplainer` (``coef * value``),
:class:`MeanExplainer` (the folds of a ``CalibratedClassifierCV`` averaged).

Every part but :class:`EstimatorScorer` is plain data (arrays, numbers, LightGBM's model text), so that a
verified fast path can be stored in its bundle (:mod:`clientml_mle.serve.fastpath.stored`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from clientml_mle.serve.fastpath.forest import Forest
from clientml_mle.serve.fastpath.native import NativeBooster

# sklearn's _CalibratedClassifier sets probabilities in (1, 1 + 1e-5] to exactly 1.
CALIBRATED_ONE_SLACK = 1e-5


def expit(x: np.ndarray) -> np.ndarray:
    """``scipy.special.expit``, the logistic function sklearn's logistic regression and sigmoid calibration
    use (numpy's own ``exp`` may differ in the last bit). scipy is imported on the first call, not with
    this module: it takes about half a second, and only linear and sigmoid-calibrated models need it
    (verification makes that first call, before the API is ready)."""
    from scipy.special import expit as logistic

    return np.asarray(logistic(x), dtype=np.float64)


class Scorer(Protocol):
    """Model matrix -> P(label = 1)."""

    @property
    def kind(self) -> str: ...
    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``, of the ``(n, n_columns)`` float64 model matrix."""
        ...


@dataclass
class TreeScorer:
    """A binary LightGBM model: its compiled trees, or LightGBM's own predictor (one thread)."""

    booster: NativeBooster
    forest: Forest | None

    @property
    def kind(self) -> str:
        """``compiled-trees`` or ``lightgbm-booster``."""
        return "compiled-trees" if self.forest is not None else "lightgbm-booster"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1), shape ``(n,)``."""
        if self.forest is not None:
            return self.forest.predict(matrix)
        return self.booster.predict(matrix)

    def decision(self, matrix: np.ndarray) -> np.ndarray:
        """The raw score (log-odds), shape ``(n,)``: what ``LGBMClassifier.decision_function`` gives."""
        if self.forest is not None:
            return self.forest.raw(matrix)
        return self.booster.predict(matrix, raw_score=True)


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


@dataclass(frozen=True)
class SigmoidCalibrator:
    """sklearn's ``_SigmoidCalibration``: ``expit(-(a * t + b))``."""

    a: float
    b: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated P(label = 1) of the base model's scores, shape ``(n,)``."""
        return expit(-(self.a * scores + self.b))


@dataclass(frozen=True)
class IsotonicCalibrator:
    """sklearn's ``IsotonicRegression(out_of_bounds="clip")``: ``np.interp`` on its thresholds (scipy's
    ``interp1d`` delegates to it for float64)."""

    x: np.ndarray  # X_thresholds_
    y: np.ndarray  # y_thresholds_
    low: float  # X_min_
    high: float  # X_max_

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated P(label = 1) of the base model's scores, shape ``(n,)``."""
        if len(self.y) == 1:
            return np.full(scores.shape, self.y[0])
        return np.interp(np.clip(scores, self.low, self.high), self.x, self.y)


Calibrator = SigmoidCalibrator | IsotonicCalibrator


@dataclass
class CalibratedFold:
    """One fold of a CalibratedClassifierCV: its base model's response, then its calibrator."""

    base: TreeScorer | LinearScorer
    # What the calibrator was fitted on: ``decision_function`` when the base model has one (logistic
    # regression; LightGBM from 4.7: the raw score), else P(class 1).
    decides: bool
    calibrator: Calibrator

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The fold's calibrated P(label = 1), shape ``(n,)``."""
        scores = self.base.decision(matrix) if self.decides else self.base.predict(matrix)
        proba = self.calibrator(scores)
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
        import pandas as pd  # only the literal path needs it, and its bundle's model has imported it already

        names = getattr(self.estimator, "feature_names_in_", None)
        x: Any = pd.DataFrame(matrix, columns=names) if names is not None else matrix
        return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)[:, self.positive]


# --- explainers: matrix -> (contributions per column (n, n_columns), bias (n,)) ---------------------


@dataclass
class TreeExplainer:
    """LightGBM's TreeSHAP contributions to the raw score."""

    booster: NativeBooster
    kind: str = "lightgbm-pred-contrib"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per column ``(n, n_columns)``, bias ``(n,)``); they add up to the raw score."""
        raw = self.booster.contributions(matrix)
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
