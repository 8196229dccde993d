"""Stage 3: the label and its ground truth.

The label (1 = churn) is drawn *after* the activity, from quantities observable in the two CSVs as written
(profile columns, sales strictly before the as-of date, sale dates truncated to the day), with the exact
names the feature_store uses. See :func:`label_logit` for the formula; ``p_true = sigmoid(logit)``,
``label ~ Bernoulli(p_true)``, and ~15% of clients keep an empty label (to be scored).
``ground_truth.csv`` holds ``p_true`` for every genuine client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clientml_synthetic.clients import ClientRows
from clientml_synthetic.frame import MISSING, NO_DATE, BoolArray, FloatArray, IntArray
from clientml_synthetic.sales import SaleRows
from clientml_synthetic.story import (
    AS_OF_DAY,
    CHANNELS,
    DAYS_PER_YEAR,
    DISCOUNT_VALUES,
    HISTORY_DAYS,
    PREMIUM,
    SEGMENTS,
)

__all__ = ["LabelFeatures", "compute_features", "draw_labels", "label_logit"]

UNLABELED_SHARE = 0.15

# Label model coefficients (see label_logit)
LABEL_INTERCEPT = -1.40
AGE_CENTER, AGE_SCALE = 45.0, 15.0
COEF_AGE_LINEAR = -0.15
COEF_AGE_SQUARED = 0.20
TENURE_CENTER = 6.5  # log1p(tenure_days) of ~2 years
COEF_TENURE = -0.40
SEGMENT_EFFECT = {"consumer": 0.0, "small_business": -0.25, "corporate": -0.45}
CHANNEL_EFFECT = {"web": 0.20, "store": -0.10, "partner": 0.30, "referral": -0.35}
INCOME_CENTER = 10.8  # log1p of ~49k
COEF_INCOME = -0.35
RECENCY_CENTER = float(np.log1p(30.0))
COEF_RECENCY = 0.45
NO_SALES_DAYS = float(HISTORY_DAYS)  # recency assumed for a client without any sale
COEF_NO_SALES = 1.0
COEF_N30 = -0.25
COEF_N90 = -0.20
COEF_N365 = -0.10
TREND_EFFECT = {"consumer": -0.50, "small_business": -0.90, "corporate": -1.30}
SPEND_CENTER = 6.0
COEF_SPEND = -0.12
COEF_PREMIUM_SHARE = -0.90
COEF_DISCOUNT_SHARE = 1.10


@dataclass(frozen=True)
class LabelFeatures:
    """The observable quantities the label depends on, named as in the feature_store (one value per client)."""

    age_years: FloatArray  # NaN when birth_date is empty
    tenure_days: FloatArray
    annual_income: FloatArray  # NaN when empty
    days_since_last_sale: FloatArray  # NaN when the client has no sale
    n_sales_30d: FloatArray
    n_sales_90d: FloatArray
    n_sales_365d: FloatArray
    spend_365d: FloatArray  # sum of quantity * unit_price * (1 - discount), currency units
    premium_share_365d: FloatArray  # 0 without sales in the window
    discount_share_365d: FloatArray  # 0 without sales in the window


def compute_features(clients: ClientRows, sales: SaleRows) -> LabelFeatures:
    """Features at AS_OF of ``clients`` (consecutive numbers) from their clean sales; windows are [AS_OF - N, AS_OF).

    ``sales`` must be sorted by client then day and belong to ``clients`` only.
    """
    n = len(clients)
    local = sales.client - clients.number[0]

    def count(mask: BoolArray, weights: FloatArray | None = None) -> FloatArray:
        w = None if weights is None else weights[mask]
        return np.bincount(local[mask], weights=w, minlength=n).astype(np.float64)

    age = np.where(clients.birth == NO_DATE, np.nan, (AS_OF_DAY - clients.birth) / DAYS_PER_YEAR)
    income = np.where(clients.income == MISSING, np.nan, clients.income.astype(np.float64))
    last = np.full(n, np.nan)
    if len(sales):
        # Client-sorted and day-sorted within a client: each client's last row is its latest sale.
        is_last = np.append(local[1:] != local[:-1], True)
        last[local[is_last]] = sales.day[is_last]
    in_365 = sales.day >= AS_OF_DAY - 365
    discount = np.where(sales.discount == MISSING, 0.0, DISCOUNT_VALUES[np.maximum(sales.discount, 0)])
    amount = sales.quantity * (sales.cents / 100.0) * (1.0 - discount)
    n365 = count(in_365)
    with np.errstate(invalid="ignore", divide="ignore"):
        premium_share = np.nan_to_num(count(in_365 & (sales.category == PREMIUM)) / n365)
        discount_share = np.nan_to_num(count(in_365 & (discount > 0)) / n365)
    return LabelFeatures(
        age_years=age,
        tenure_days=(AS_OF_DAY - clients.signup).astype(np.float64),
        annual_income=income,
        days_since_last_sale=AS_OF_DAY - last,
        n_sales_30d=count(sales.day >= AS_OF_DAY - 30),
        n_sales_90d=count(sales.day >= AS_OF_DAY - 90),
        n_sales_365d=n365,
        spend_365d=count(in_365, amount),
        premium_share_365d=premium_share,
        discount_share_365d=discount_share,
    )


def label_logit(features: LabelFeatures, segment: IntArray, channel: IntArray) -> FloatArray:
    """The churn log-odds, one per client; ``p_true = sigmoid(label_logit(...))``.

    ``segment`` and ``channel`` are codes into ``SEGMENTS`` and ``CHANNELS``, of the features' length.
    Missing profile values are neutral (0).

    logit = LABEL_INTERCEPT
      + COEF_AGE_LINEAR * a + COEF_AGE_SQUARED * a**2,          a = (age_years - 45) / 15 (0 if missing)
      + COEF_TENURE * (log1p(tenure_days) - 6.5)
      + SEGMENT_EFFECT[segment] + CHANNEL_EFFECT[acquisition_channel]
      + COEF_INCOME * (log1p(annual_income) - 10.8)             (0 if missing)
      + COEF_RECENCY * (log1p(days_since_last_sale) - log1p(30)) (days = 1095 if no sale)
      + COEF_NO_SALES * [no sale at all]
      + COEF_N30 * log1p(n_sales_30d) + COEF_N90 * log1p(n_sales_90d) + COEF_N365 * log1p(n_sales_365d)
      + TREND_EFFECT[segment] * log((n_sales_90d + 1) / (n_sales_365d / 4 + 1))
      + COEF_SPEND * (log1p(spend_365d) - 6)
      + COEF_PREMIUM_SHARE * premium_share_365d + COEF_DISCOUNT_SHARE * discount_share_365d
    """
    f = features
    a = np.nan_to_num((f.age_years - AGE_CENTER) / AGE_SCALE)
    log_income = np.log1p(np.maximum(f.annual_income, 0.0))
    no_sales = np.isnan(f.days_since_last_sale)
    recency = np.log1p(np.where(no_sales, NO_SALES_DAYS, f.days_since_last_sale))
    trend = np.log((f.n_sales_90d + 1.0) / (f.n_sales_365d / 4.0 + 1.0))
    segment_effect = np.array([SEGMENT_EFFECT[s] for s in SEGMENTS])[segment]
    trend_effect = np.array([TREND_EFFECT[s] for s in SEGMENTS])[segment]
    channel_effect = np.array([CHANNEL_EFFECT[c] for c in CHANNELS])[channel]
    return (
        LABEL_INTERCEPT
        + COEF_AGE_LINEAR * a
        + COEF_AGE_SQUARED * a**2
        + COEF_TENURE * (np.log1p(f.tenure_days) - TENURE_CENTER)
        + segment_effect
        + channel_effect
        + COEF_INCOME * np.nan_to_num(log_income - INCOME_CENTER)
        + COEF_RECENCY * (recency - RECENCY_CENTER)
        + COEF_NO_SALES * no_sales
        + COEF_N30 * np.log1p(f.n_sales_30d)
        + COEF_N90 * np.log1p(f.n_sales_90d)
        + COEF_N365 * np.log1p(f.n_sales_365d)
        + trend_effect * trend
        + COEF_SPEND * (np.log1p(f.spend_365d) - SPEND_CENTER)
        + COEF_PREMIUM_SHARE * f.premium_share_365d
        + COEF_DISCOUNT_SHARE * f.discount_share_365d
    )


def draw_labels(rng: np.random.Generator, clients: ClientRows, sales: SaleRows) -> tuple[IntArray, FloatArray]:
    """``(label, p_true)`` per client: label 0 / 1, or MISSING for the ~15% left unlabeled; p_true in (0, 1).

    ``clients`` and ``sales`` as for :func:`compute_features`; draws from ``rng`` only.
    """
    size = len(clients)
    p_true = 1.0 / (1.0 + np.exp(-label_logit(compute_features(clients, sales), clients.segment, clients.channel)))
    label = (rng.random(size) < p_true).astype(np.int64)
    label[rng.random(size) < UNLABELED_SHARE] = MISSING
    return label, p_true
