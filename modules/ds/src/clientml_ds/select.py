"""Model selection on the training part: candidates on shared folds, search, class weights, calibration,
threshold.

1. The training rows (a seeded sample of at most ``max_search_rows`` of them on big data) are cut into
   stratified K folds; every configuration below is scored on those same folds.
2. ``dummy`` (the prior); ``logreg`` and ``lightgbm`` each searched (:func:`clientml_ds.search.search`)
   within one shared time box: logistic regression gets at most a quarter of it, LightGBM the rest.
   LightGBM's trial budget scales with the rows searched (:func:`scaled_trials`: more trials on small
   data, where they are cheap and where the choice matters most) unless a count is given.
3. Imbalance: each searched model's best parameters are scored again with ``class_weight="balanced"``;
   the weights are kept only if they raise the CV ROC-AUC by more than the tie tolerance. No resampling.
4. Winner: the highest mean CV ROC-AUC; a candidate within ``tie_tolerance`` (0.001) of the best counts as
   tied and the simplest tied one wins (dummy < logreg < lightgbm; unweighted < weighted). Only
   *deployable* candidates can win: their fitted pipeline must hold no type outside the bundle loader's
   allow-list (:data:`clientml_mle.bundle.TRUSTED_TYPES`), else scoring and serving would refuse it.
5. Calibration: the winner wrapped in ``CalibratedClassifierCV`` (sigmoid, isotonic) on the same folds;
   the method with the lowest CV log-loss is kept if it lowers the uncalibrated log-loss by more than
   0.001 and does not cost more than 0.002 of CV ROC-AUC (isotonic's steps create ties), and if it is
   deployable.
6. Threshold: the probability maximising F1 on the final configuration's out-of-fold predictions (the
   training rows only; the test rows are never used to choose anything).

The winner's cross-validated ROC-AUC is reported two ways: the mean ± std of the fold AUCs, and the AUC
of its pooled out-of-fold predictions with a percentile-bootstrap 95% CI (``oof_roc_auc``). Both are
slightly optimistic (the search picked the best of many configurations on these folds); the held-out
test AUC of the final model is the unbiased figure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_mle.bundle import TRUSTED_TYPES
from clientml_mle.evaluate import bootstrap_auc_ap, choose_threshold
from clientml_mle.schema import FeatureSpec
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from clientml_ds.models import CALIBRATION_FOLDS, COMPLEXITY, untrusted_types
from clientml_ds.search import CVResult, SearchResult, calibrated_cv, evaluate_config, search
from clientml_ds.split import Fold, make_folds

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
TIE_TOLERANCE = 0.001
CALIBRATION_MAX_AUC_LOSS = 0.002
# Calibration must lower the CV log-loss by more than this to be kept: smaller gains are fold noise, and
# as for the winner, a tie goes to the simpler model (no wrapper).
CALIBRATION_MIN_GAIN = 0.001
LOGREG_TIME_SHARE = 0.25
DEPLOYABILITY_SAMPLE = 400
# LightGBM trials scale as TRIAL_ROWS / rows searched, within [MIN_TRIALS, MAX_TRIALS]: a trial's cost grows
# with the rows, so the search's work stays about constant: 30 trials on 6,700 rows (the training part of a
# 12,000-client dataset), 15, the count that was the default before, from 13,300 rows on. More did not pay
# here: on the drop world (richer features of the features branch), the best of 30 trials was among the first 15.
TRIAL_ROWS = 200_000
MIN_TRIALS, MAX_TRIALS = 15, 40


def scaled_trials(rows: int) -> int:
    """LightGBM trials for a search on ``rows`` rows (see :data:`TRIAL_ROWS`)."""
    return int(np.clip(round(TRIAL_ROWS / max(rows, 1)), MIN_TRIALS, MAX_TRIALS))


def resolve_trials(trials: int | Literal["auto"] | None, rows: int) -> int | None:
    """A trial budget as a count (``"auto"``: :func:`scaled_trials` of ``rows``; ``None``: the time box alone)."""
    return scaled_trials(rows) if trials == "auto" else trials


@dataclass(frozen=True)
class SearchBudget:
    """How much search: trials per model (the budget), and a shared time box (the safety cap).

    ``lightgbm_trials="auto"`` is :func:`scaled_trials` of the rows searched; ``None`` makes the time box
    the only budget. The default box (240 s) holds the 30-40 trials of a small dataset on a busy 2-core
    machine (1.5 to 6 s a trial there, by load); on big data it is what stops an automatic budget.
    """

    seconds: float = 240.0
    lightgbm_trials: int | Literal["auto"] | None = "auto"
    logreg_trials: int | None = 6
    n_folds: int = 5
    max_rows: int = 100_000

    def for_rows(self, rows: int) -> SearchBudget:
        """This budget with an automatic trial count resolved for ``rows`` searched rows."""
        return replace(self, lightgbm_trials=resolve_trials(self.lightgbm_trials, rows))

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "lightgbm_trials": self.lightgbm_trials,
            "logreg_trials": self.logreg_trials,
            "n_folds": self.n_folds,
            "max_rows": self.max_rows,
        }


@dataclass
class Selection:
    """The outcome of model selection: every configuration scored, the winner, its threshold."""

    candidates: list[CVResult]
    searches: dict[str, SearchResult]
    winner: CVResult
    uncalibrated: CVResult
    threshold: float
    not_deployable: dict[str, list[str]]
    decisions: list[str]
    budget: SearchBudget
    search_rows: int
    train_rows: int
    n_folds: int
    seconds: float
    oof_roc_auc: dict[str, float] = field(default_factory=dict)
    trusted_types: frozenset[str] = field(default=TRUSTED_TYPES, repr=False)

    def build(self, features: Sequence[FeatureSpec], *, n_jobs: int = 1, seed: int = 0) -> Pipeline:
        return self.winner.build(features, n_jobs=n_jobs, seed=seed)

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.candidates:
            row = c.row()
            row["winner"] = c is self.winner
            row["deployable"] = c.name not in self.not_deployable
            rows.append(row)
        return rows

    def to_dict(self, *, trials: bool = True) -> dict[str, Any]:
        return {
            "winner": self.winner.name,
            "kind": self.winner.kind,
            "params": self.winner.params,
            "class_weight": self.winner.class_weight,
            "calibration": self.winner.calibration,
            "cv_roc_auc": self.winner.mean(),
            "cv_roc_auc_std": self.winner.std(),
            "oof_roc_auc": self.oof_roc_auc,
            "cv_pr_auc": self.winner.mean("pr_auc"),
            "cv_log_loss": self.winner.mean("log_loss"),
            "threshold": self.threshold,
            "threshold_rule": "max F1 on out-of-fold predictions of the training rows",
            "n_folds": self.n_folds,
            "train_rows": self.train_rows,
            "search_rows": self.search_rows,
            "budget": self.budget.to_dict(),
            "searches": {
                k: {kk: vv for kk, vv in s.to_dict().items() if trials or kk != "trials"}
                for k, s in self.searches.items()
            },
            "candidates": self.table(),
            "not_deployable": self.not_deployable,
            "decisions": self.decisions,
            "seconds": round(self.seconds, 2),
        }


def _search_sample(y: IntArray, groups: npt.NDArray[Any] | None, max_rows: int, seed: int) -> IntArray:
    """Positions of at most ``max_rows`` rows (all when fewer): stratified, or whole clients."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n, dtype=np.int64)
    if groups is not None and len(np.unique(groups)) < n:
        unique = np.unique(groups)
        rng = np.random.default_rng(seed)
        rng.shuffle(unique)
        counts = pd.Series(groups).value_counts()
        keep = unique[np.cumsum(counts.loc[unique].to_numpy()) <= max_rows]
        return np.flatnonzero(np.isin(groups, keep)).astype(np.int64)
    picked, _ = train_test_split(np.arange(n), train_size=max_rows, stratify=y, random_state=seed)
    return np.sort(picked).astype(np.int64)


def _deployability(
    configs: Iterable[CVResult],
    features: Sequence[FeatureSpec],
    x: pd.DataFrame,
    y: IntArray,
    *,
    trusted: frozenset[str],
    seed: int,
) -> dict[str, list[str]]:
    """Names of the configurations whose fitted pipeline needs types the bundle loader refuses.

    Each kind is fitted once on a stratified sample of ``DEPLOYABILITY_SAMPLE`` rows, topped up with the
    first rows of a label the sample holds fewer than ``CALIBRATION_FOLDS`` of (a calibrated candidate's
    internal folds need that many).
    """
    idx = _search_sample(y, None, DEPLOYABILITY_SAMPLE, seed)
    for label in (0, 1):
        short = CALIBRATION_FOLDS - int((y[idx] == label).sum())
        if short > 0:
            idx = np.union1d(idx, np.setdiff1d(np.flatnonzero(y == label), idx)[:short])
    refused: dict[str, list[str]] = {}
    seen: dict[tuple[str, str | None], list[str]] = {}
    for config in configs:
        key = (config.kind, config.calibration)
        if key not in seen:
            pipeline = config.build(features, seed=seed)
            seen[key] = untrusted_types(pipeline, x.iloc[idx], y[idx], trusted)
        if seen[key]:
            refused[config.name] = seen[key]
    return refused


def pick_winner(candidates: Sequence[CVResult], tolerance: float = TIE_TOLERANCE) -> CVResult:
    """Best mean CV ROC-AUC; among those within ``tolerance`` of it, the simplest."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    best = max(c.mean() for c in candidates)
    tied = [c for c in candidates if c.mean() >= best - tolerance]
    return min(tied, key=lambda c: (COMPLEXITY[c.kind], c.class_weight is not None, c.calibration is not None))


def select_model(
    x: pd.DataFrame,
    y: IntArray,
    features: Sequence[FeatureSpec],
    *,
    groups: npt.NDArray[Any] | None = None,
    seed: int = 0,
    budget: SearchBudget | None = None,
    n_jobs: int = 1,
    tie_tolerance: float = TIE_TOLERANCE,
    trusted_types: Iterable[str] = TRUSTED_TYPES,
    kinds: Sequence[str] = ("dummy", "logreg", "lightgbm"),
) -> Selection:
    """Choose the model on the training rows ``x``/``y`` (see the module docstring).

    Raises:
        clientml_mle.trainable.TrainingDataError: folds that would not hold both labels, or too few rows of
            a label for calibration's internal folds (:func:`clientml_ds.split.make_folds`), before any fit.
    """
    budget = budget or SearchBudget()
    trusted = frozenset(trusted_types)
    start = time.perf_counter()
    deadline = start + budget.seconds
    sample = _search_sample(y, groups, budget.max_rows, seed)
    budget = budget.for_rows(len(sample))
    xs, ys = x.iloc[sample], y[sample]
    gs = groups[sample] if groups is not None else None
    calibration = f"calibration's internal {CALIBRATION_FOLDS}-fold cross-validation"
    if set(kinds) - {"dummy"}:  # a calibrated candidate fits CALIBRATION_FOLDS folds in each fold's training rows
        folds = make_folds(
            ys, budget.n_folds, seed, gs, min_train_per_label=CALIBRATION_FOLDS, min_train_reason=calibration
        )
    else:
        folds = make_folds(ys, budget.n_folds, seed, gs)
    decisions: list[str] = []
    if len(sample) < len(y):
        decisions.append(
            f"search on a seeded sample of {len(sample):,} of the {len(y):,} training rows "
            f"(max_rows {budget.max_rows:,}); the final model is fitted on all of them"
        )

    def ev(config: CVResult) -> CVResult:
        return evaluate_config(config, features, xs, ys, folds, n_jobs=n_jobs, seed=seed)

    candidates: list[CVResult] = []
    searches: dict[str, SearchResult] = {}
    if "dummy" in kinds:
        candidates.append(ev(CVResult(name="dummy (prior)", kind="dummy", params={})))
    for kind in ("logreg", "lightgbm"):
        if kind not in kinds:
            continue
        remaining = max(deadline - time.perf_counter(), 0.0)
        share = remaining * LOGREG_TIME_SHARE if kind == "logreg" and "lightgbm" in kinds else remaining
        trials = budget.logreg_trials if kind == "logreg" else resolve_trials(budget.lightgbm_trials, len(sample))
        found = search(kind, features, xs, ys, folds, seed=seed, n_trials=trials, timeout_s=share, n_jobs=n_jobs)
        searches[kind] = found
        plain = found.best
        plain.name = kind
        weighted = ev(
            CVResult(name=f"{kind} + balanced", kind=kind, params=dict(plain.params), class_weight="balanced")
        )
        candidates += [plain, weighted]
        verdict = "kept" if weighted.mean() > plain.mean() + tie_tolerance else "not kept"
        decisions.append(
            f"{kind}: balanced class weights give CV ROC-AUC {weighted.mean():.4f} vs {plain.mean():.4f} "
            f"without: {verdict}"
        )

    not_deployable = _deployability(candidates, features, xs, ys, trusted=trusted, seed=seed)
    for name, types in not_deployable.items():
        decisions.append(f"{name}: not deployable, its pipeline holds types the bundle loader refuses: {types}")
    eligible = [c for c in candidates if c.name not in not_deployable]
    uncalibrated = pick_winner(eligible, tie_tolerance)
    decisions.append(
        f"winner by CV ROC-AUC (ties within {tie_tolerance} go to the simpler model): {uncalibrated.name} "
        f"({uncalibrated.mean():.4f} ± {uncalibrated.std():.4f})"
    )
    winner = uncalibrated
    if uncalibrated.kind != "dummy":
        winner = _calibrate(
            uncalibrated,
            candidates=candidates,
            folds=folds,
            features=features,
            xs=xs,
            ys=ys,
            trusted=trusted,
            seed=seed,
            not_deployable=not_deployable,
            decisions=decisions,
        )
    threshold = choose_threshold(ys, winner.oof, "max_f1")
    low, high = bootstrap_auc_ap(ys, winner.oof, n_boot=1000, seed=seed)["roc_auc"]
    oof_auc = {"roc_auc": float(roc_auc_score(ys, winner.oof)), "ci95_low": low, "ci95_high": high}
    decisions.append(f"threshold {threshold:.4f}: max F1 on the out-of-fold predictions of {winner.name}")
    seconds = time.perf_counter() - start
    log.info("model selection took %.1f s: %s", seconds, winner.name)
    return Selection(
        candidates=candidates,
        searches=searches,
        winner=winner,
        uncalibrated=uncalibrated,
        threshold=threshold,
        not_deployable=not_deployable,
        decisions=decisions,
        budget=budget,
        search_rows=len(sample),
        train_rows=len(y),
        n_folds=len(folds),
        seconds=seconds,
        oof_roc_auc=oof_auc,
        trusted_types=trusted,
    )


def _calibrate(
    base: CVResult,
    *,
    candidates: list[CVResult],
    folds: Sequence[Fold],
    features: Sequence[FeatureSpec],
    xs: pd.DataFrame,
    ys: IntArray,
    trusted: frozenset[str],
    seed: int,
    not_deployable: dict[str, list[str]],
    decisions: list[str],
) -> CVResult:
    tried = calibrated_cv(base, features, xs, ys, folds, seed=seed)
    candidates += tried
    refused = _deployability(tried, features, xs, ys, trusted=trusted, seed=seed)
    not_deployable.update(refused)
    usable = [c for c in tried if c.name not in refused]
    if not usable:
        decisions.append(f"calibration: not deployable here ({sorted(refused.values())[0]}): not used")
        return base
    best = min(usable, key=lambda c: c.mean("log_loss"))
    improves = best.mean("log_loss") < base.mean("log_loss") - CALIBRATION_MIN_GAIN
    keeps_auc = best.mean() >= base.mean() - CALIBRATION_MAX_AUC_LOSS
    change = (
        f"CV log-loss {base.mean('log_loss'):.4f} -> {best.mean('log_loss'):.4f}, "
        f"ROC-AUC {base.mean():.4f} -> {best.mean():.4f}"
    )
    if improves and keeps_auc:
        decisions.append(f"calibration: {best.calibration} ({change}): kept")
        return best
    why = (
        f"does not lower the log-loss by more than {CALIBRATION_MIN_GAIN}"
        if not improves
        else f"costs more than {CALIBRATION_MAX_AUC_LOSS} ROC-AUC"
    )
    decisions.append(f"calibration: the best method, {best.calibration} ({change}), {why}: not kept")
    return base
