"""Compilation of the scorers: a bundle's final estimator -> its candidate scorers (fastest first, the
literal ``predict_proba`` last), its explainer and the LightGBM boosters whose splits verification probes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clientml_mle.serve.fastpath.forest import Forest, UnsupportedForestError
from clientml_mle.serve.fastpath.native import NativeBooster
from clientml_mle.serve.fastpath.scorers import (
    CalibratedFold,
    CalibratedScorer,
    Calibrator,
    EstimatorScorer,
    Explainer,
    IsotonicCalibrator,
    LinearExplainer,
    LinearScorer,
    MeanExplainer,
    Scorer,
    SigmoidCalibrator,
    TreeExplainer,
    TreeScorer,
)

log = logging.getLogger(__name__)


@dataclass
class FinalStage:
    """What serving makes of the final estimator."""

    model_type: str  # e.g. LGBMClassifier, CalibratedClassifierCV(LogisticRegression)
    scorers: list[Scorer]  # fastest first; the last is the literal predict_proba
    explainer: Explainer | None
    boosters: list[Any] = field(default_factory=list)  # LightGBM boosters whose splits are probed


def final_stage(final: Any) -> FinalStage:
    """The scorers (fast to literal), the explainer and the LightGBM boosters of the final estimator,
    a fitted classifier with ``predict_proba`` and a class 1 (see ``compile.check_pipeline``)."""
    from sklearn.calibration import CalibratedClassifierCV

    literal = EstimatorScorer(final, list(final.classes_).index(1))
    stage = FinalStage(_model_type(final), [literal], None)
    if not _binary(final):
        return stage
    base = _base_model(final)
    if base is not None:
        stage.scorers = [*base.scorers, literal]
        stage.explainer, stage.boosters = base.explainer, base.boosters
    elif isinstance(final, CalibratedClassifierCV):
        _calibrated_stage(final, stage)
    return stage


def _binary(estimator: Any) -> bool:
    try:
        return [int(c) for c in getattr(estimator, "classes_", [])] == [0, 1]
    except (TypeError, ValueError):
        return False


def _model_type(estimator: Any) -> str:
    name = type(estimator).__name__
    base = getattr(estimator, "estimator", None)
    if base is not None and hasattr(estimator, "calibrated_classifiers_"):
        return f"{name}({_model_type(base)})"
    return name


@dataclass
class _BaseModel:
    scorers: list[TreeScorer | LinearScorer]
    explainer: TreeExplainer | LinearExplainer
    boosters: list[Any]


def _base_model(estimator: Any) -> _BaseModel | None:
    """LightGBM and logistic-regression models (binary), or None."""
    from sklearn.linear_model import LogisticRegression

    if not _binary(estimator):
        return None
    booster = getattr(estimator, "booster_", None) if type(estimator).__module__.startswith("lightgbm") else None
    if booster is not None and hasattr(booster, "predict"):
        # LightGBM's predictor itself, from the model's text: what booster.predict runs, without the booster.
        native = NativeBooster(booster.model_to_string())
        scorers: list[TreeScorer | LinearScorer] = []
        try:
            scorers.append(TreeScorer(native, Forest.from_booster(booster)))
        except (UnsupportedForestError, ImportError) as exc:
            log.info("the booster scores (trees not compiled: %s)", exc)
        scorers.append(TreeScorer(native, None))
        return _BaseModel(scorers, TreeExplainer(native), [booster])
    if isinstance(estimator, LogisticRegression):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[0] != 1 or intercept.shape != (1,):
            return None
        return _BaseModel([LinearScorer(coef, intercept)], LinearExplainer(coef[0], float(intercept[0])), [])
    return None


def _calibrated_stage(final: Any, stage: FinalStage) -> None:
    """CalibratedClassifierCV (sigmoid or isotonic) of LightGBM or logistic-regression folds."""
    folds = list(getattr(final, "calibrated_classifiers_", []))
    bases = [_base_model(_unfrozen(fold.estimator)) for fold in folds]
    if not folds or any(b is None for b in bases) or any(len(fold.calibrators) != 1 for fold in folds):
        return
    models = [b for b in bases if b is not None]
    decides = [hasattr(_unfrozen(fold.estimator), "decision_function") for fold in folds]
    stage.explainer = MeanExplainer([m.explainer for m in models])
    stage.boosters = [booster for m in models for booster in m.boosters]
    calibrators = [c for c in (_calibrator(fold) for fold in folds) if c is not None]
    if len(calibrators) != len(folds):
        return  # e.g. temperature scaling: the literal predict_proba scores
    fast: list[Scorer] = []
    # Level 0: every fold's fastest base scorer (compiled trees where they compile), then the boosters.
    for level in range(max(len(m.scorers) for m in models)):
        scorers = [m.scorers[min(level, len(m.scorers) - 1)] for m in models]
        folds_ = [CalibratedFold(s, d, c) for s, d, c in zip(scorers, decides, calibrators, strict=True)]
        fast.append(CalibratedScorer(folds_, "+".join(sorted({s.kind for s in scorers}))))
    stage.scorers = [*fast, *stage.scorers]


def _unfrozen(estimator: Any) -> Any:
    """The estimator inside sklearn's FrozenEstimator (``cv="prefit"`` calibration), else itself."""
    return estimator.estimator if type(estimator).__name__ == "FrozenEstimator" else estimator


def _calibrator(fold: Any) -> Calibrator | None:
    """A fold's calibrator as numpy (sklearn's arithmetic), or None for methods not replayed."""
    from sklearn.isotonic import IsotonicRegression

    method = getattr(fold, "method", None)
    calibrator = fold.calibrators[0]
    if method == "sigmoid" and hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):
        return SigmoidCalibrator(float(calibrator.a_), float(calibrator.b_))
    if method == "isotonic" and isinstance(calibrator, IsotonicRegression) and calibrator.out_of_bounds == "clip":
        return IsotonicCalibrator(
            x=np.asarray(calibrator.X_thresholds_, dtype=np.float64),
            y=np.asarray(calibrator.y_thresholds_, dtype=np.float64),
            low=float(calibrator.X_min_),
            high=float(calibrator.X_max_),
        )
    return None
