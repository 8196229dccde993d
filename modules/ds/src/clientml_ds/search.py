"""Cross-validation on shared folds and the bounded, seeded hyperparameter search (Optuna TPE).

Every candidate is scored on the *same* folds (:func:`clientml_ds.split.make_folds`), with the fold
means and standard deviations of ROC-AUC, PR-AUC (average precision) and log-loss, and its out-of-fold
(OOF) probabilities, from which the decision threshold is later chosen.

Search budget. A study runs ``n_trials`` trials (the budget) with ``timeout_s`` as a safety cap. With a
trial budget the result is a function of the seed alone: the sampler is ``TPESampler(seed)``, the folds
and LightGBM are seeded and LightGBM is ``deterministic``, so the same seed and the same ``n_trials`` give
the same trials and the same best parameters, whatever the machine's speed. The time box only matters
when it cuts the study short; the result then depends on how many trials fitted in, which is recorded
(``stopped_by_time``) and logged as a warning. ``n_trials=None`` makes the budget the time box alone.
The first trial of each study is the baseline (:data:`clientml_mle.estimators.LGBM_BASELINE`, ``C=1``), so a
search never ends below it.

Early stopping (LightGBM). The tree count is not searched: in each fold a trial grows up to
:data:`MAX_TREES` trees and keeps those before the validation log-loss last improved (no improvement for
:data:`EARLY_STOPPING_ROUNDS` trees), so the count fits the learning rate and the data instead of being a
guess TPE has to make. The validation rows that stopped a fold also score it, which flatters a trial a
little; so the best trial is scored again on the same folds with a *fixed* tree count, the mean of its
folds' stopping points, and that honest score and its out-of-fold predictions are what the candidate
carries into the comparison, the threshold and calibration (and the count is what the final model fits).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_mle.estimators import LGBM_BASELINE, positive_proba
from clientml_mle.schema import FeatureSpec
from clientml_mle.trainable import check_part
from sklearn.base import clone
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from clientml_ds.models import LOGREG_BASELINE, build_candidate
from clientml_ds.split import Fold

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
METRICS = ("roc_auc", "pr_auc", "log_loss")
_EPS = 1e-15
PRUNE_STARTUP_TRIALS = 5
# LightGBM trials differ a lot and cost seconds: pruned. Logistic regression trials cost a fraction of a
# second and differ in the fourth decimal: pruning them would only cut at noise.
PRUNED_KINDS = ("lightgbm",)
# The kinds whose search trials stop early on each fold's validation rows (module docstring). The cap of
# 1,000 trees bounds a trial's cost; in three runs of the quality benchmark (about 3,500 early-stopped
# folds) it bound 11 folds, all on the interaction world with extra_trees. 50 rounds of patience ride out
# the noise of a few-thousand-row fold.
EARLY_STOPPED_KINDS = ("lightgbm",)
MAX_TREES = 1000
EARLY_STOPPING_ROUNDS = 50


@dataclass
class CVResult:
    """One configuration scored on the shared folds."""

    name: str
    kind: str
    params: dict[str, Any]
    class_weight: str | None = None
    calibration: str | None = None
    fold_scores: dict[str, list[float]] = field(default_factory=dict)
    oof: FloatArray = field(default_factory=lambda: np.empty(0), repr=False)
    seconds: float = 0.0
    # True: each fold stops adding trees on its validation rows; ``best_iterations`` has each fold's count.
    early_stopping: bool = False
    best_iterations: list[int] = field(default_factory=list)

    def mean(self, metric: str = "roc_auc") -> float:
        return float(np.mean(self.fold_scores[metric]))

    def std(self, metric: str = "roc_auc") -> float:
        return float(np.std(self.fold_scores[metric], ddof=1)) if len(self.fold_scores[metric]) > 1 else 0.0

    def build(self, features: Sequence[FeatureSpec], *, n_jobs: int = 1, seed: int = 0) -> Pipeline:
        """The unfitted pipeline of this configuration."""
        return build_candidate(
            self.kind,
            features,
            self.params,
            class_weight=self.class_weight,
            calibration=self.calibration,
            n_jobs=n_jobs,
            seed=seed,
        )

    def row(self) -> dict[str, Any]:
        """A JSON-friendly row of the comparison table."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "class_weight": self.class_weight,
            "calibration": self.calibration,
            "params": self.params,
            "seconds": round(self.seconds, 2),
        }
        for metric in METRICS:
            out[f"{metric}_mean"] = self.mean(metric)
            out[f"{metric}_std"] = self.std(metric)
        return out

    def fixed_trees(self) -> CVResult:
        """This early-stopped configuration with a fixed tree count: the mean of its folds' stopping points."""
        trees = max(1, round(float(np.mean(self.best_iterations))))
        return CVResult(
            name=self.name,
            kind=self.kind,
            params={**self.params, "n_estimators": trees},
            class_weight=self.class_weight,
            calibration=self.calibration,
        )


def fold_metrics(y: IntArray, proba: FloatArray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and log-loss of one fold's validation rows.

    Raises:
        clientml_mle.trainable.TrainingDataError: the rows do not hold both labels (their ROC-AUC is
            undefined: no NaN is ever recorded as a fold's score).
    """
    check_part(y, "a fold's validation rows", "a cross-validated score")
    clipped = np.clip(proba, _EPS, 1 - _EPS)
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
    }


def fit_early_stopped(
    pipeline: Pipeline, x_train: pd.DataFrame, y_train: IntArray, x_valid: pd.DataFrame, y_valid: IntArray
) -> int:
    """Fit a LightGBM ``pipeline`` in place, stopping on ``x_valid``'s log-loss; return the trees kept.

    The encoder is fitted on the training rows only and applied to the validation rows, as the pipeline
    would; the classifier keeps the trees up to its best iteration and predicts with those.
    """
    import lightgbm

    encoder, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    encoded, valid = encoder.fit_transform(x_train, y_train), encoder.transform(x_valid)
    model.fit(
        encoded,
        y_train,
        eval_set=[(valid, y_valid)],
        eval_metric="binary_logloss",
        callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    return int(model.best_iteration_ or model.n_estimators)


def cross_validate(
    config: CVResult,
    build: Callable[[], Pipeline],
    x: pd.DataFrame,
    y: IntArray,
    folds: Sequence[Fold],
    *,
    on_fold: Callable[[int, float], None] | None = None,
) -> CVResult:
    """Fit a fresh ``build()`` per fold; fill ``config``'s per-fold metrics, OOF probabilities, seconds
    (and, early-stopped, its folds' tree counts), and return it.

    ``on_fold(i, mean ROC-AUC so far)`` runs after each fold (the search prunes through it).
    """
    start = time.perf_counter()
    oof = np.full(len(y), np.nan)
    scores: dict[str, list[float]] = {m: [] for m in METRICS}
    iterations: list[int] = []
    for i, (tr, va) in enumerate(folds):
        model = build()
        with warnings.catch_warnings():
            # Convergence and feature-name chatter of small folds; the scores say what matters.
            warnings.simplefilter("ignore")
            if config.early_stopping:
                iterations.append(fit_early_stopped(model, x.iloc[tr], y[tr], x.iloc[va], y[va]))
            else:
                model.fit(x.iloc[tr], y[tr])
            oof[va] = positive_proba(model, x.iloc[va])
        for metric, value in fold_metrics(y[va], oof[va]).items():
            scores[metric].append(value)
        if on_fold is not None:
            on_fold(i, float(np.mean(scores["roc_auc"])))
    config.fold_scores, config.oof, config.seconds = scores, oof, time.perf_counter() - start
    config.best_iterations = iterations
    return config


def evaluate_config(
    config: CVResult,
    features: Sequence[FeatureSpec],
    x: pd.DataFrame,
    y: IntArray,
    folds: Sequence[Fold],
    *,
    n_jobs: int = 1,
    seed: int = 0,
) -> CVResult:
    """Score ``config`` on the folds (fills its fold scores, OOF probabilities and time)."""
    cross_validate(config, lambda: config.build(features, n_jobs=n_jobs, seed=seed), x, y, folds)
    log.info(
        "CV %-28s ROC-AUC %.4f ± %.4f  log-loss %.4f  (%.1f s)",
        config.name,
        config.mean(),
        config.std(),
        config.mean("log_loss"),
        config.seconds,
    )
    return config


def suggest_lightgbm(trial: Any) -> dict[str, Any]:
    """The LightGBM search space (bounded so that one fit stays cheap); the tree count is early-stopped.

    ``extra_trees`` (split thresholds drawn at random, the best of those kept) is a regulariser the
    search switches on where it helps: on the interaction world (a label that multiplies profile and
    behaviour) it raised the CV ROC-AUC of the same configuration from 0.7984 to 0.8073; on the drop,
    seasonal and default worlds it cost 0.001-0.004 (12,000 clients, seed 0).
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "extra_trees": trial.suggest_categorical("extra_trees", [False, True]),
    }


def suggest_logreg(trial: Any) -> dict[str, Any]:
    """Logistic regression: the inverse regularisation strength C."""
    return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


SPACES: dict[str, tuple[Callable[[Any], dict[str, Any]], dict[str, Any]]] = {
    "lightgbm": (
        suggest_lightgbm,
        {**{k: v for k, v in LGBM_BASELINE.items() if k != "n_estimators"}, "extra_trees": False},
    ),
    "logreg": (suggest_logreg, LOGREG_BASELINE),
}


@dataclass
class SearchResult:
    """What a study found and how it ran."""

    kind: str
    best: CVResult
    n_trials_requested: int | None
    n_trials_done: int
    timeout_s: float
    stopped_by_time: bool
    seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    # The best trial's mean CV ROC-AUC while its folds stopped on their validation rows (None: not early-stopped).
    early_stopped_roc_auc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "best_params": self.best.params,
            "best_roc_auc": self.best.mean(),
            "early_stopped_roc_auc": self.early_stopped_roc_auc,
            "n_trials_requested": self.n_trials_requested,
            "n_trials_done": self.n_trials_done,
            "timeout_s": self.timeout_s,
            "stopped_by_time": self.stopped_by_time,
            "reproducible": not self.stopped_by_time and self.n_trials_requested is not None,
            "seconds": round(self.seconds, 2),
            "trials": self.trials,
        }


def search(
    kind: str,
    features: Sequence[FeatureSpec],
    x: pd.DataFrame,
    y: IntArray,
    folds: Sequence[Fold],
    *,
    seed: int,
    n_trials: int | None,
    timeout_s: float,
    n_jobs: int = 1,
) -> SearchResult:
    """Maximise the mean CV ROC-AUC of ``kind`` (``lightgbm`` or ``logreg``) over its space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    suggest, baseline = SPACES[kind]
    sampler = optuna.samplers.TPESampler(seed=seed)
    # Pruning: after the second fold, a trial whose running mean is below the median of the earlier trials
    # at the same fold stops (deterministic: it depends only on the earlier trials' scores).
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.enqueue_trial(dict(baseline))
    best: dict[str, CVResult] = {}
    trials: list[dict[str, Any]] = []

    stops = kind in EARLY_STOPPED_KINDS

    def objective(trial: Any) -> float:
        params = suggest(trial) | ({"n_estimators": MAX_TREES} if stops else {})
        config = CVResult(name=kind, kind=kind, params=params, early_stopping=stops)

        def prune(step: int, running_auc: float) -> None:
            trial.report(running_auc, step)
            if kind in PRUNED_KINDS and step < len(folds) - 1 and trial.should_prune():
                trials.append(
                    {"number": trial.number, "roc_auc": running_auc, "pruned_after_folds": step + 1, **params}
                )
                raise optuna.TrialPruned()

        build = lambda: config.build(features, n_jobs=n_jobs, seed=seed)  # noqa: E731
        cross_validate(config, build, x, y, folds, on_fold=prune)
        value = config.mean()
        record = {"number": trial.number, "roc_auc": value, "seconds": round(config.seconds, 2), **params}
        trials.append(record | ({"trees_per_fold": config.best_iterations} if stops else {}))
        if "best" not in best or value > best["best"].mean():  # ties: the earlier trial stays
            best["best"] = config
        return value

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=n_trials, timeout=max(timeout_s, 1e-3), gc_after_trial=False)
    seconds = time.perf_counter() - start
    done = len(study.trials)
    stopped = n_trials is None or done < n_trials
    if n_trials is not None and done < n_trials:
        log.warning(
            "%s search stopped by its %.0f s time box after %d of %d trials: the result depends on the "
            "machine's speed (raise --search-seconds or lower --search-trials for a reproducible search)",
            kind,
            timeout_s,
            done,
            n_trials,
        )
    if "best" not in best:
        raise RuntimeError(f"the {kind} search ran no trial")
    result = best["best"]
    early_stopped_auc = result.mean()
    if stops:
        result = evaluate_config(result.fixed_trees(), features, x, y, folds, n_jobs=n_jobs, seed=seed)
        seconds = time.perf_counter() - start
    log.info(
        "%s search: %d trials in %.1f s, best CV ROC-AUC %.4f%s with %s",
        kind,
        done,
        seconds,
        result.mean(),
        f" (early-stopped {early_stopped_auc:.4f})" if stops else "",
        result.params,
    )
    return SearchResult(
        kind=kind,
        best=result,
        n_trials_requested=n_trials,
        n_trials_done=done,
        timeout_s=timeout_s,
        stopped_by_time=stopped,
        seconds=seconds,
        trials=trials,
        early_stopped_roc_auc=early_stopped_auc if stops else None,
    )


def calibrated_cv(
    base: CVResult,
    features: Sequence[FeatureSpec],
    x: pd.DataFrame,
    y: IntArray,
    folds: Sequence[Fold],
    *,
    methods: Sequence[str] = ("sigmoid", "isotonic"),
    seed: int = 0,
) -> list[CVResult]:
    """``base`` wrapped in ``CalibratedClassifierCV(method, cv=3, ensemble=False)``, scored on the folds.

    Computes exactly what that wrapper does inside the pipeline (the encoder fitted on the fold's
    training rows; the calibrator fitted on 3-fold ``cross_val_predict`` responses of the classifier
    on those rows; applied to the response of the classifier refitted on all of them), but shares the
    work between the methods and reuses ``base``'s out-of-fold predictions as the refitted classifier's
    responses (for a decision function: their logit). Three inner fits per fold instead of four per fold
    and method. ``tests/test_search.py`` checks the equivalence against ``CalibratedClassifierCV``.
    """
    from sklearn.calibration import _SigmoidCalibration
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from clientml_ds.models import CALIBRATION_FOLDS

    start = time.perf_counter()
    template = base.build(features, n_jobs=1, seed=seed)
    encoder, classifier = template.steps[0][1], template.steps[-1][1]
    uses_decision = hasattr(classifier, "decision_function")
    results = {
        m: CVResult(
            name=f"{base.name} + {m}",
            kind=base.kind,
            params=dict(base.params),
            class_weight=base.class_weight,
            calibration=m,
            fold_scores={k: [] for k in METRICS},
            oof=np.full(len(y), np.nan),
        )
        for m in methods
    }
    for tr, va in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoded = clone(encoder).fit(x.iloc[tr], y[tr]).transform(x.iloc[tr])
            inner = cross_val_predict(
                clone(classifier),
                encoded,
                y[tr],
                cv=StratifiedKFold(CALIBRATION_FOLDS),
                method="decision_function" if uses_decision else "predict_proba",
            )
        inner = np.asarray(inner if uses_decision else inner[:, 1], dtype=np.float64)
        p = np.clip(base.oof[va], _EPS, 1 - _EPS)
        response = np.log(p / (1 - p)) if uses_decision else base.oof[va]
        for method, result in results.items():
            calibrator: Any = (
                IsotonicRegression(out_of_bounds="clip") if method == "isotonic" else _SigmoidCalibration()
            )
            calibrator.fit(inner, y[tr])
            proba = np.clip(np.asarray(calibrator.predict(response), dtype=np.float64), 0.0, 1.0)
            result.oof[va] = proba
            for metric, value in fold_metrics(y[va], proba).items():
                result.fold_scores[metric].append(value)
    seconds = time.perf_counter() - start
    for result in results.values():
        result.seconds = seconds / len(results)
        log.info(
            "CV %-28s ROC-AUC %.4f ± %.4f  log-loss %.4f",
            result.name,
            result.mean(),
            result.std(),
            result.mean("log_loss"),
        )
    return list(results.values())
