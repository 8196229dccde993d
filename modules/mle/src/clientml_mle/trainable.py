"""Whether labeled rows can train a model with an honest evaluation, checked before anything is fitted.

:func:`check_trainable` is the one up-front check of both trainers (mle's ``train`` and the ds module's
model selection); it raises :class:`TrainingDataError` saying what the data lacks and what is needed.
:func:`check_part` checks one part of a split once it is drawn (a backstop, still before any fitting, for
splits the minimums cannot foresee: the ds time split, clients with several rows).

Minimums, per label (``n`` = rows of the label; clients with a row of it when clients repeat):

- the stratified test split (``test_size``) needs ``ceil(1 / test_size)`` (5 at 20%): sklearn's stratified
  split gives a label at least ``floor(test_size * n)`` test rows, so at least one;
- needs on the training rows (what the test split leaves), each a number ``r`` of each label there:
  ``k``-fold cross-validation: ``r = k`` (one of each label in every fold's validation part);
  calibration's internal ``c``-fold cross-validation inside each of the ``k`` folds' training parts:
  the least ``r`` with ``r - ceil(r / k) >= c`` (4 for ``k=5, c=3``; 5 for ``k=3``); the threshold's
  validation split (``validation_size``): ``r = ceil(1 / validation_size)`` (5 at 20%), one in it;
- a label with ``n`` rows keeps at least ``floor((1 - test_size) * n - 1/2)`` of them in the training rows
  (the rarer label's worst case; the commoner label keeps more), so a need ``r`` there asks for the least
  ``n`` with ``floor((1 - test_size) * n - 1/2) >= r``: 7 for ``r = 5`` at 20%.

At the defaults both trainers need 7 rows of each label (ds: 5-fold CV; mle: the threshold's validation
split). These are the least that let every part of every split hold both labels; they are not enough for a
precise evaluation (the bootstrap confidence intervals say how imprecise it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.contract import FEATURE_STORE, LABEL_COLUMN

from clientml_mle.features import TABLE_ROWS_ATTR

IntArray = npt.NDArray[np.int64]
LABELS = (0, 1)
_EPS = 1e-9


class TrainingDataError(ValueError):
    """The labeled rows cannot train a model; the message says what they lack and what is needed."""


@dataclass(frozen=True)
class Need:
    """What one step of the training protocol needs of each label.

    ``rows``: rows of each label in all (before the test split); ``purpose``: the step, e.g. "the 5-fold
    cross-validation"; ``detail``: why that many, e.g. "5 among the training rows, one per fold".
    """

    rows: int
    purpose: str
    detail: str


def split_minimum(fraction: float) -> int:
    """Rows of a label a stratified split needs to put one in its ``fraction`` part: ``ceil(1 / fraction)``."""
    return math.ceil(1 / fraction - _EPS)


def _in_all(training: int, test_size: float) -> int:
    """The least rows of a label such that the test split leaves ``training`` of them for training."""
    n = training
    while math.floor((1 - test_size) * n - 0.5 + _EPS) < training:
        n += 1
    return n


def _calibration_rows(folds: int, calibration_folds: int) -> int:
    """The least training rows of a label that leave ``calibration_folds`` in each fold's training part."""
    if folds < 2:
        return calibration_folds
    r = calibration_folds
    while r - math.ceil(r / folds) < calibration_folds:
        r += 1
    return r


def minimums(
    *, test_size: float, folds: int = 0, calibration_folds: int = 0, validation_size: float | None = None
) -> list[Need]:
    """The needs of a training protocol, one per step that splits rows (see the module docstring).

    ``folds``: the cross-validation folds of the training rows (0: none); ``calibration_folds``: the
    internal folds of a calibration wrapper (0: none); ``validation_size``: the fraction of the training rows
    held out to choose the threshold (``None``: the threshold is given).

    Raises:
        ValueError: ``test_size`` or ``validation_size`` not in (0, 1), or ``folds`` of 1.
    """
    if not 0 < test_size < 1 or (validation_size is not None and not 0 < validation_size < 1):
        raise ValueError("test_size and validation_size must be between 0 and 1")
    if folds == 1:
        raise ValueError("cross-validation needs at least 2 folds")
    after = f"after the {test_size:.0%} test split"
    needs = [Need(split_minimum(test_size), f"the stratified {test_size:.0%} test split", "one in the test rows")]
    if validation_size is not None:
        r = split_minimum(validation_size)
        needs.append(
            Need(
                _in_all(r, test_size),
                f"the threshold's {validation_size:.0%} validation split",
                f"{r} among the training rows {after}, one in the validation part",
            )
        )
    if folds:
        needs.append(
            Need(
                _in_all(folds, test_size),
                f"the {folds}-fold cross-validation",
                f"{folds} among the training rows {after}, one per fold",
            )
        )
    if calibration_folds:
        r = _calibration_rows(folds, calibration_folds)
        where = f"each fold's training part holds {calibration_folds}" if folds else "it has them"
        needs.append(
            Need(
                _in_all(r, test_size),
                f"calibration's internal {calibration_folds}-fold cross-validation",
                f"{r} among the training rows {after}, so that {where}",
            )
        )
    return needs


def _counts(labels: IntArray, groups: npt.NDArray[Any] | None) -> tuple[list[int], str]:
    """Rows of each label, or clients with a row of each label when a client has several rows."""
    if groups is not None and len(np.unique(groups)) < len(groups):
        return [len(np.unique(groups[labels == label])) for label in LABELS], "clients with label"
    return np.bincount(labels, minlength=2).tolist(), "labeled rows of label"


def check_trainable(
    labels: IntArray,
    *,
    test_size: float,
    folds: int = 0,
    calibration_folds: int = 0,
    validation_size: float | None = None,
    groups: npt.NDArray[Any] | None = None,
    table: str = FEATURE_STORE,
    table_rows: int | None = None,
) -> None:
    """Refuse labels that cannot train and evaluate a model with the given protocol, before any fitting.

    ``labels``: the 0/1 labels of the labeled rows, shape ``(n,)``; ``groups``: the client of each row
    (counts are of clients when one repeats); ``table``: the table the rows come from, and ``table_rows``
    how many rows it has in all, labeled or not (for the message when none is labeled). The protocol
    parameters are :func:`minimums`'s.

    Raises:
        TrainingDataError: no labeled row, one label only, or fewer rows of a label than a step needs;
            the message names the step and its minimum, e.g. "feature_store has 3 labeled rows of label 1:
            too few, the 5-fold cross-validation needs at least 7 of each label (...)".
        ValueError: invalid protocol parameters.
    """
    needs = minimums(
        test_size=test_size, folds=folds, calibration_folds=calibration_folds, validation_size=validation_size
    )
    least = max(n.rows for n in needs)
    if len(labels) == 0:
        if table_rows == 0:
            raise TrainingDataError(f"{table} has no rows: nothing to train on (run the data pipeline first)")
        has = f"has {table_rows} rows and none is labeled" if table_rows else "has no labeled rows"
        raise TrainingDataError(
            f"{table} {has}: nothing to train on (training needs at least {least} labeled rows of each label, 0 and 1)"
        )
    counts, unit = _counts(labels, groups)
    if min(counts) == 0:
        only = LABELS[int(np.argmax(counts))]
        raise TrainingDataError(
            f"{table}'s {len(labels)} labeled rows all have label {only}: a classifier needs both labels "
            f"(at least {least} rows of each, 0 and 1)"
        )
    for label, count in zip(LABELS, counts, strict=True):
        short = [n for n in needs if count < n.rows]
        if short:
            need = max(short, key=lambda n: n.rows)
            raise TrainingDataError(
                f"{table} has {count} {unit} {label}: too few, {need.purpose} needs at least {need.rows} of each "
                f"label ({need.detail})"
            )


def check_part(labels: IntArray, what: str, why: str, *, at_least: int = 1) -> None:
    """Refuse one part of a drawn split that holds fewer than ``at_least`` rows of a label.

    ``labels``: the labels of the part's rows; ``what`` names the part ("the test rows"), ``why`` what
    needs it ("evaluating the model").

    Raises:
        TrainingDataError: e.g. "the test rows hold 0 rows of label 1 (of 12): evaluating the model needs at
            least 1 of each label".
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)
    for label in LABELS:
        if counts[label] < at_least:
            raise TrainingDataError(
                f"{what} hold {counts[label]} rows of label {label} (of {len(labels)}): {why} needs at least "
                f"{at_least} of each label"
            )


def training_labels(frame: pd.DataFrame) -> IntArray:
    """The 0/1 labels of a training frame's ``label`` column, shape ``(len(frame),)``.

    Empty when no row is labeled (or there is no row): :func:`check_trainable` then says so, with the
    table's row count from :func:`table_rows`.

    Raises:
        TrainingDataError: no label column, some (not all) rows without a label, or a label other than 0/1.
    """
    if LABEL_COLUMN not in frame.columns:
        raise TrainingDataError(f"the training rows have no {LABEL_COLUMN!r} column: nothing to train on")
    raw = pd.to_numeric(frame[LABEL_COLUMN], errors="coerce")
    if raw.isna().all():
        return np.empty(0, dtype=np.int64)
    if raw.isna().any():
        raise TrainingDataError(
            f"the training rows include {int(raw.isna().sum())} rows without a label (of {len(frame)}): "
            "read the labeled rows only (clientml_mle.features.training_frame)"
        )
    if not raw.isin(LABELS).all():
        other = sorted({float(v) for v in raw[~raw.isin(LABELS)].unique()})[:5]
        raise TrainingDataError(f"labels must be 0 or 1; found {other}")
    return raw.to_numpy().astype(np.int64)


def table_rows(frame: pd.DataFrame) -> int:
    """How many rows the training frame's table has, labeled or not.

    What the reader recorded (``frame.attrs["table_rows"]``, set by
    :func:`clientml_mle.features.training_frame` when no row is labeled), else the frame's own length.
    """
    value = frame.attrs.get(TABLE_ROWS_ATTR)
    return int(value) if value is not None else len(frame)
