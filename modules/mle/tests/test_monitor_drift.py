"""The drift statistics and one feature's comparison, on hand-made profiles: the formulas, the rule, the faults."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from clientml_mle.monitor.drift import (
    EPSILON,
    DriftThresholds,
    compare_feature,
    compare_scores,
    js_distance,
    psi,
    psi_noise,
    relied_on_features,
)
from clientml_mle.monitor.profile import CategoryShares, FeatureProfile, NumericBins, ScoreProfile
from clientml_mle.schema import FeatureSpec

LIMITS = DriftThresholds()
REF = 10_000  # training rows behind the hand-made profiles: the sampling noise is the current side's
AMOUNT = FeatureSpec(name="amount", type="number")
CHANNEL = FeatureSpec(name="channel", type="category", categories=["mail", "phone", "web"])
FLAG = FeatureSpec(name="flag", type="boolean")


def _amount(importance: float = 0.3, null_rate: float = 0.0) -> FeatureProfile:
    bins = NumericBins(edges=[10.0, 20.0, 30.0], proportions=[0.25, 0.25, 0.25, 0.25])
    return FeatureProfile(name="amount", type="number", null_rate=null_rate, importance=importance, bins=bins)


def _channel(importance: float = 0.3) -> FeatureProfile:
    shares = CategoryShares(values=["web", "phone"], proportions=[0.6, 0.3, 0.1])
    return FeatureProfile(name="channel", type="category", null_rate=0.0, importance=importance, categories=shares)


def test_psi_is_the_textbook_sum_and_the_symmetric_kl() -> None:
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25, 0.25, 0.25, 0.25])
    smoothed_p, smoothed_q = (p + EPSILON) / (1 + 4 * EPSILON), (q + EPSILON) / (1 + 4 * EPSILON)
    assert psi(p, q) == pytest.approx(float(np.sum((smoothed_p - smoothed_q) * np.log(smoothed_p / smoothed_q))))
    assert psi(p, q) == pytest.approx(psi(q, p)) and psi(p, p) == pytest.approx(0.0, abs=1e-12)
    # An empty bin is smoothed: large but finite.
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])) and psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) > 1
    assert js_distance(p, p) == pytest.approx(0.0, abs=1e-7) and js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_the_noise_limit_holds_the_false_alarms_of_unchanged_samples_near_one_percent() -> None:
    """Two samples of one distribution, binned in deciles: PSI exceeds psi_noise at 99% about 1% of the time
    (Yurdakul 2018's chi-square), with our smoothing; and the limit shrinks as the samples grow."""
    rng = np.random.default_rng(0)
    shares = np.full(10, 0.1)
    n, m, runs = 150, 120, 3000
    limit = psi_noise(n, m, 10, 0.99)
    alarms = sum(psi(rng.multinomial(n, shares) / n, rng.multinomial(m, shares) / m) > limit for _ in range(runs))
    assert 0.002 < alarms / runs < 0.03
    assert psi_noise(100_000, 100_000, 10, 0.99) < 0.001 and limit > 0.2
    assert psi_noise(0, 10, 10, 0.99) == math.inf and psi_noise(10, 10, 1, 0.99) == 0.0


def test_a_large_psi_on_small_samples_is_noise() -> None:
    current = pd.Series([5.0] * 6 + [15.0] * 2 + [25.0] * 2 + [35.0] * 2)
    drift = compare_feature(_amount(), AMOUNT, current, LIMITS, reference_rows=12, relied_on=True)
    assert drift.value is not None and drift.value > 0.2 and not drift.drifted and drift.reasons == []
    assert "is within the sampling noise of 12 reference and 12 current values" in drift.message
    many = compare_feature(_amount(), AMOUNT, pd.concat([current] * 100), LIMITS, reference_rows=REF, relied_on=True)
    assert many.drifted and many.value == pytest.approx(drift.value)


def test_the_same_distribution_is_stable() -> None:
    current = pd.Series([5.0, 15.0, 25.0, 35.0] * 25)
    drift = compare_feature(_amount(), AMOUNT, current, LIMITS, reference_rows=REF, relied_on=True)
    assert drift.value == pytest.approx(0.0, abs=1e-9) and not drift.drifted and drift.message == "stable"
    assert drift.reasons == [] and drift.relied_on


def test_a_shifted_feature_the_model_relies_on_drifts_with_a_reason() -> None:
    drift = compare_feature(
        _amount(importance=0.18),
        AMOUNT,
        pd.Series([35.0] * 90 + [5.0] * 10),
        LIMITS,
        reference_rows=REF,
        relied_on=True,
    )
    assert drift.drifted and drift.value is not None and drift.value > 0.2
    assert drift.reasons == [f"PSI {drift.value:.2f} > 0.2 on amount (importance 18%)"]
    assert drift.current == pytest.approx([0.1, 0.0, 0.0, 0.9])


def test_a_shift_on_a_feature_the_model_barely_uses_does_not_count() -> None:
    drift = compare_feature(
        _amount(importance=0.01), AMOUNT, pd.Series([35.0] * 100), LIMITS, reference_rows=REF, relied_on=False
    )
    assert drift.drifted and not drift.relied_on and drift.reasons == []
    assert "the model relies little on it (importance 1%, outside the features holding 80%" in drift.message


@pytest.mark.parametrize(
    ("importance", "coverage", "expected"),
    [
        ({"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}, 0.8, {"a", "b"}),
        ({"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}, 0.81, {"a", "b", "c", "d"}),  # c and d tie at the boundary
        ({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}, 0.5, {"a", "b", "c", "d"}),
        ({"a": 0.9, "b": 0.1}, 1.0, {"a", "b"}),
        ({"a": 1.0, "b": 0.0}, 0.8, {"a"}),
    ],
)
def test_relied_on_features_hold_the_coverage(
    importance: dict[str, float], coverage: float, expected: set[str]
) -> None:
    assert relied_on_features(importance, coverage) == expected


def test_a_null_rate_change_drifts() -> None:
    current = pd.Series([5.0, 15.0, 25.0, 35.0] * 15 + [None] * 40, dtype=float)
    drift = compare_feature(_amount(null_rate=0.05), AMOUNT, current, LIMITS, reference_rows=REF, relied_on=True)
    assert drift.drifted and drift.value == pytest.approx(0.0, abs=1e-9)
    assert drift.null_rate_current == pytest.approx(0.4)
    assert drift.reasons == ["null rate 0.05 -> 0.40 (+0.35, beyond 0.1) on amount (importance 30%)"]


def test_an_absent_feature_is_null_for_every_client() -> None:
    drift = compare_feature(_amount(), AMOUNT, None, LIMITS, reference_rows=REF, relied_on=True)
    assert drift.value is None and drift.null_rate_current == 1.0 and drift.drifted
    assert "absent from the current feature_store" in drift.message


def test_unseen_categories_are_counted_and_named() -> None:
    current = pd.Series(["web"] * 50 + ["phone"] * 30 + ["mail"] * 5 + ["fax"] * 10 + ["pigeon"] * 5, dtype=object)
    drift = compare_feature(_channel(), CHANNEL, current, LIMITS, reference_rows=REF, relied_on=True)
    assert drift.unseen_categories == {"fax": 10, "pigeon": 5}
    assert "2 categories never seen in training, in 15 rows (15%): 'fax' (10), 'pigeon' (5)" in drift.message
    assert drift.current == pytest.approx([0.5, 0.3, 0.2])  # the unseen ones and "mail" in (other)


def test_values_of_the_wrong_type_are_reported_not_raised() -> None:
    drift = compare_feature(
        _amount(), AMOUNT, pd.Series(["12", "n/a"], dtype=object), LIMITS, reference_rows=REF, relied_on=True
    )
    assert drift.drifted and drift.value is None and drift.null_rate_current is None
    assert "current values are not of the trained type" in drift.message and "amount" in drift.message


def test_booleans_are_compared_as_categories() -> None:
    shares = CategoryShares(values=["false", "true"], proportions=[0.8, 0.2, 0.0])
    profile = FeatureProfile(name="flag", type="boolean", null_rate=0.0, importance=0.2, categories=shares)
    drift = compare_feature(
        profile, FLAG, pd.Series([1.0] * 80 + [0.0] * 20), LIMITS, reference_rows=REF, relied_on=True
    )
    assert drift.current == pytest.approx([0.2, 0.8, 0.0]) and drift.drifted and drift.unseen_categories == {}


def test_the_score_distribution() -> None:
    profile = ScoreProfile(rows=100, bins=NumericBins(edges=[0.5], proportions=[0.7, 0.3]))
    same = compare_scores(profile, np.array([0.1] * 70 + [0.9] * 30), LIMITS, "scores: here")
    assert not same.drifted and same.message == "scores: here" and same.relied_on and same.importance is None
    moved = compare_scores(profile, np.array([0.9] * 80 + [0.1] * 20), LIMITS, "scores: here")
    assert moved.drifted and moved.reasons == [f"PSI {moved.value:.2f} > 0.2 on the score distribution"]
    none = compare_scores(profile, None, LIMITS, "no scores")
    assert none.value is None and not none.drifted and none.current == []
