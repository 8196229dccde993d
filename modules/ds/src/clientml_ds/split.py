"""The train/test split rule, and the cross-validation folds of the training part.

Rule: when ``as_of_date`` has more than one distinct value (observation dates differ, e.g. one row per
loan date in Berka, or several snapshots of the same clients), the test set is the rows of the latest
as-of dates: the fewest latest dates holding at least ``test_size`` of the rows (and both labels). A
model is then judged the way it is used: trained on the past, scoring later observations. A client of
the test set never appears in the training part (its earlier rows are left out), so a client's identity
cannot leak across the split. When every row has the same as-of date (one snapshot: the generated data,
Telco), time carries no information and the split is the mle harness's stratified random split
(:func:`clientml_mle.train.split_indices`, group-aware when a client has several rows).

The cross-validation folds of the training part are stratified K-fold (group-aware when a client has
several rows), shuffled with the seed; every candidate is scored on the same folds. Folds are never
reduced to fit the data: fewer rows of a label than folds, or a fold without both labels, is refused before
anything is fitted (a fold with one label has no ROC-AUC, and nothing else may stand in for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.contract import KEY_COLUMNS
from clientml_mle.train import split_indices
from clientml_mle.trainable import check_part
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

IntArray = npt.NDArray[np.int64]
Fold = tuple[IntArray, IntArray]
SplitRule = Literal["time", "stratified"]


@dataclass(frozen=True)
class SplitPlan:
    """Positions (in the frame) of the training and test rows, and why the split was made that way."""

    train_pos: IntArray
    test_pos: IntArray
    rule: SplitRule
    reason: str
    test_as_of_dates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "reason": self.reason,
            "train_rows": len(self.train_pos),
            "test_rows": len(self.test_pos),
            "test_as_of_dates": self.test_as_of_dates,
        }


def plan_split(frame: pd.DataFrame, labels: IntArray, test_size: float, seed: int) -> SplitPlan:
    """Apply the split rule (module docstring) to a training frame with its 0/1 ``labels``."""
    client, as_of = KEY_COLUMNS
    groups = frame[client].to_numpy() if client in frame.columns else None
    dates = pd.to_datetime(frame[as_of]) if as_of in frame.columns else None
    n_dates = int(dates.nunique()) if dates is not None else 0
    if dates is not None and n_dates > 1:
        plan = _time_split(dates, labels, groups, test_size)
        if plan is not None:
            return plan
        fallback = "; the latest dates never held both labels, so fell back to a stratified random split"
    else:
        fallback = ""
    train_pos, test_pos = split_indices(labels, test_size, seed, groups)
    reason = (
        f"as_of_date has {n_dates} distinct value(s): a single observation date carries no time order, "
        f"so a stratified random {test_size:.0%} test split (seed {seed})" + fallback
    )
    return SplitPlan(train_pos.astype(np.int64), test_pos.astype(np.int64), "stratified", reason)


def _time_split(
    dates: pd.Series, labels: IntArray, groups: npt.NDArray[Any] | None, test_size: float
) -> SplitPlan | None:
    order = dates.value_counts().sort_index(ascending=False)  # latest date first, with row counts
    target = test_size * len(dates)
    chosen: list[pd.Timestamp] = []
    taken = 0
    for date, count in order.items():
        chosen.append(pd.Timestamp(str(date)))
        taken += int(count)
        in_test = dates.isin(chosen).to_numpy()
        if taken >= target and len(np.unique(labels[in_test])) == 2:
            break
    in_test = dates.isin(chosen).to_numpy()
    if len(np.unique(labels[in_test])) < 2 or in_test.all():
        return None
    in_train = ~in_test
    if groups is not None:
        in_train &= ~np.isin(groups, groups[in_test])
    if len(np.unique(labels[in_train])) < 2:
        return None
    cutoff = min(chosen)
    reason = (
        f"as_of_date has {dates.nunique()} distinct values: the test set is the rows of the {len(chosen)} "
        f"latest as-of dates (from {cutoff.date()} on, {in_test.sum()} rows, {in_test.mean():.1%}), the "
        "model is trained on earlier observations only"
    )
    if groups is not None and (~in_test & ~in_train).any():
        reason += f"; {(~in_test & ~in_train).sum()} earlier rows of test clients are left out"
    return SplitPlan(
        np.flatnonzero(in_train).astype(np.int64),
        np.flatnonzero(in_test).astype(np.int64),
        "time",
        reason,
        sorted(str(d.date()) for d in chosen),
    )


def make_folds(
    labels: IntArray,
    n_folds: int,
    seed: int,
    groups: npt.NDArray[Any] | None = None,
    *,
    min_train_per_label: int = 1,
    min_train_reason: str = "fitting a classifier",
) -> list[Fold]:
    """Stratified K-fold of the given rows (group-aware when a group repeats), shuffled with ``seed``.

    ``labels``: the rows' 0/1 labels, shape ``(n,)``; returns ``n_folds`` (training, validation) position
    pairs. Every fold is checked before it is used: its validation part holds both labels (else its
    ROC-AUC would be undefined) and its training part ``min_train_per_label`` of each (e.g. what a
    calibration wrapper's internal folds need; ``min_train_reason`` says so in the message).

    Raises:
        clientml_mle.trainable.TrainingDataError: fewer rows of a label than folds, or a fold that would not
            hold what is needed (e.g. too few clients of a label to spread over the folds).
    """
    positions = np.arange(len(labels))
    what = f"the {n_folds}-fold cross-validation"
    check_part(labels, "the cross-validated rows", what, at_least=n_folds)
    if groups is not None and len(np.unique(groups)) < len(groups):
        splitter: Any = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(positions, labels, groups)
    else:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(positions, labels)
    folds = [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in splits]
    for i, (tr, va) in enumerate(folds, start=1):
        check_part(labels[va], f"fold {i} of {what}: its validation rows", "a cross-validated score")
        check_part(labels[tr], f"fold {i} of {what}: its training rows", min_train_reason, at_least=min_train_per_label)
    return folds
