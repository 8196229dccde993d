"""The generated files read as a loader would (every field as text) and the label's true probability
recomputed from that text alone: shared by the generator's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from clientml_synthetic import LabelFeatures, label_logit
from clientml_synthetic.story import CHANNELS, SEGMENTS


def read_raw(path: Path) -> pd.DataFrame:
    """Every field as the exact text written (empty stays empty)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def number(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.where(s != ""), errors="coerce")


def features_from_files(clients: pd.DataFrame, sales: pd.DataFrame) -> LabelFeatures:
    """The label quantities recomputed from the CSV text alone, as the feature_store would."""
    day = pd.to_datetime(sales.sale_date.str.slice(0, 10))
    as_of = day.max() + pd.Timedelta(days=1)
    age = (as_of - pd.to_datetime(clients.birth_date.where(clients.birth_date != ""))).dt.days / 365.25
    s = pd.DataFrame(
        {
            "client_id": sales.client_id,
            "days_ago": (as_of - day).dt.days,
            "amount": number(sales.quantity) * number(sales.unit_price) * (1 - number(sales.discount).fillna(0.0)),
            "premium": sales.product_category == "premium_services",
            "discounted": number(sales.discount).fillna(0.0) > 0,
        }
    )
    y = s[s.days_ago <= 365]
    agg = pd.DataFrame(
        {
            "last": s.groupby("client_id").days_ago.min(),
            "n30": s[s.days_ago <= 30].groupby("client_id").size(),
            "n90": s[s.days_ago <= 90].groupby("client_id").size(),
            "n365": y.groupby("client_id").size(),
            "spend": y.groupby("client_id").amount.sum(),
            "premium": y.groupby("client_id").premium.mean(),
            "discounted": y.groupby("client_id").discounted.mean(),
        }
    ).reindex(clients.client_id)
    filled = agg.fillna({c: 0.0 for c in agg.columns if c != "last"})

    def arr(x: pd.Series) -> np.ndarray:
        return x.to_numpy(dtype=float)

    return LabelFeatures(
        age_years=arr(age),
        tenure_days=arr((as_of - pd.to_datetime(clients.signup_date)).dt.days),
        annual_income=arr(number(clients.annual_income)),
        days_since_last_sale=arr(filled["last"]),
        n_sales_30d=arr(filled.n30),
        n_sales_90d=arr(filled.n90),
        n_sales_365d=arr(filled.n365),
        spend_365d=arr(filled.spend),
        premium_share_365d=arr(filled.premium),
        discount_share_365d=arr(filled.discounted),
    )


def true_probability(clients: pd.DataFrame, sales: pd.DataFrame) -> np.ndarray:
    """Every client's p_true from the files as written (the generator's formula, ``label_logit``)."""
    segment = clients.segment.map({s: i for i, s in enumerate(SEGMENTS)}).to_numpy()
    channel = clients.acquisition_channel.map({c: i for i, c in enumerate(CHANNELS)}).to_numpy()
    return 1 / (1 + np.exp(-label_logit(features_from_files(clients, sales), segment, channel)))
