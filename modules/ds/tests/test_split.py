"""The split rule (time when as-of dates differ, else stratified) and the shared CV folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from clientml_ds.split import make_folds, plan_split
from clientml_mle.train import split_indices


def _frame(n: int, dates: list[str], seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i:05d}" for i in range(n)],
            "as_of_date": pd.to_datetime(rng.choice(dates, size=n)),
            "label": rng.integers(0, 2, size=n).astype(float),
        }
    )
    return frame, frame["label"].to_numpy().astype(np.int64)


def test_one_as_of_date_gives_the_harness_stratified_split() -> None:
    frame, labels = _frame(1000, ["2025-01-01"])
    plan = plan_split(frame, labels, 0.2, seed=4)
    expected_train, expected_test = split_indices(labels, 0.2, 4, frame["client_id"].to_numpy())
    assert plan.rule == "stratified" and "1 distinct" in plan.reason
    np.testing.assert_array_equal(plan.train_pos, expected_train)
    np.testing.assert_array_equal(plan.test_pos, expected_test)


def test_several_as_of_dates_hold_out_the_latest() -> None:
    dates = [f"2024-{m:02d}-01" for m in range(1, 13)]
    frame, labels = _frame(2000, dates)
    plan = plan_split(frame, labels, 0.2, seed=0)
    assert plan.rule == "time"
    test_dates = frame["as_of_date"].iloc[plan.test_pos]
    train_dates = frame["as_of_date"].iloc[plan.train_pos]
    assert train_dates.max() < test_dates.min()
    assert len(plan.test_pos) >= 0.2 * len(frame)
    assert len(plan.test_pos) + len(plan.train_pos) == len(frame)
    assert plan.test_as_of_dates == sorted({str(d.date()) for d in test_dates})


def test_a_test_client_never_trains_on_its_earlier_rows() -> None:
    frame, labels = _frame(600, ["2024-01-01", "2024-06-01"])
    # Client C00000..C00099 also has an earlier row.
    earlier = frame.iloc[:100].assign(as_of_date=pd.Timestamp("2023-01-01"))
    both = pd.concat([frame, earlier], ignore_index=True)
    labels = both["label"].to_numpy().astype(np.int64)
    plan = plan_split(both, labels, 0.2, seed=0)
    test_clients = set(both["client_id"].iloc[plan.test_pos])
    assert not test_clients & set(both["client_id"].iloc[plan.train_pos])
    assert len(plan.train_pos) + len(plan.test_pos) < len(both)  # the left-out earlier rows


def test_latest_dates_with_one_label_fall_back_to_stratified() -> None:
    frame, labels = _frame(500, ["2024-01-01", "2024-02-01"])
    late = frame["as_of_date"] == pd.Timestamp("2024-02-01")
    labels[late.to_numpy()] = 0
    frame.loc[late, "label"] = 0.0
    labels[(~late).to_numpy()] = np.arange((~late).sum()) % 2
    plan = plan_split(frame, labels, 0.2, seed=0)
    assert plan.rule == "stratified" and "fell back" in plan.reason


def test_folds_are_stratified_seeded_and_group_aware() -> None:
    labels = np.array([0, 1] * 100, dtype=np.int64)
    folds = make_folds(labels, 5, seed=1)
    assert len(folds) == 5
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(200))
    assert all(abs(labels[va].mean() - 0.5) < 0.01 for _, va in folds)
    again = make_folds(labels, 5, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    groups = np.repeat(np.arange(50), 4)
    for tr, va in make_folds(labels, 5, seed=1, groups=groups):
        assert not set(groups[tr]) & set(groups[va])
