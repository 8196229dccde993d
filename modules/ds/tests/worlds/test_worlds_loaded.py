"""Each world as the pipeline sees it: loaded by the de tasks with no rejected row, and its ``p_true`` a
function of the loaded rows alone.

The label formulas are written again here with pandas, from the module docstrings, independently of the
worlds' numpy code: from the typed ``clients`` and ``sales`` tables of the warehouse (dates as the loader
parsed them, the time of day dropped), never from the generator's arrays. Each world is 2,000 clients,
loaded once per world (``run_all``: both loads and ``process_data``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clientml_de.tasks import run_all
from clientml_de.warehouse import connect
from clientml_worlds import WORLDS, WorldSummary

N_CLIENTS = 2000
SEED = 5


@dataclass(frozen=True)
class Loaded:
    name: str
    summary: WorldSummary
    run: dict[str, Any]
    clients: pd.DataFrame  # the warehouse's clients table, indexed by client_id
    sales: pd.DataFrame  # the warehouse's sales table, with `day` (sale_date without the time)
    features: pd.DataFrame  # feature_store, indexed by client_id
    truth: pd.Series  # ground_truth.csv's p_true by client_id


@pytest.fixture(scope="module", params=list(WORLDS))
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    out = tmp_path_factory.mktemp(request.param)
    summary = WORLDS[request.param](out, n_clients=N_CLIENTS, seed=SEED)
    url = f"duckdb:///{out / 'warehouse.duckdb'}"
    run = run_all(str(summary.clients_path), str(summary.sales_path), url)
    warehouse = connect(url)
    try:
        clients, sales, features = (warehouse.table(t).to_pandas() for t in ("clients", "sales", "feature_store"))
    finally:
        warehouse.close()
    for column in ("signup_date", "birth_date", "observation_date"):
        clients[column] = pd.to_datetime(clients[column])
    sales["day"] = pd.to_datetime(sales.sale_date).dt.normalize()
    features["as_of_date"] = pd.to_datetime(features.as_of_date)
    truth = pd.read_csv(summary.ground_truth_path, dtype={"client_id": str}).set_index("client_id").p_true
    return Loaded(
        request.param, summary, run, clients.set_index("client_id"), sales, features.set_index("client_id"), truth
    )


def days_before(loaded: Loaded, as_of: pd.Series) -> pd.DataFrame:
    """The sales strictly before their client's as-of date, with ``age``: days from the sale to it (>= 1)."""
    sales = loaded.sales.assign(age=(loaded.sales.client_id.map(as_of) - loaded.sales.day).dt.days)
    return sales[sales.age >= 1]


def per_client(loaded: Loaded, values: pd.Series, fill: float = 0.0) -> np.ndarray:
    """A per-client aggregate for every client, in the order of ``loaded.clients`` (``fill`` without any row)."""
    return values.reindex(loaded.clients.index).fillna(fill).to_numpy(dtype=float)


def p_true(loaded: Loaded, logit: np.ndarray) -> pd.Series:
    return pd.Series(1 / (1 + np.exp(-logit)), index=loaded.clients.index)


def drop_p(loaded: Loaded) -> pd.Series:
    as_of = loaded.sales.day.max() + pd.Timedelta(days=1)  # the loader's default: the day after the latest sale
    assert as_of == pd.Timestamp("2024-07-01")
    s = days_before(loaded, pd.Series(as_of, index=loaded.clients.index))
    s = s.assign(amount=s.quantity * s.unit_price * (1 - s.discount.fillna(0)))
    older, recent = s[(s.age >= 91) & (s.age <= 180)], s[s.age <= 90]
    n1, n2 = (per_client(loaded, w.groupby("client_id").size()) for w in (older, recent))
    s1, s2 = (per_client(loaded, w.groupby("client_id").amount.sum()) for w in (older, recent))
    r, v = np.log((n2 + 1) / (n1 + 1)), np.log((s2 + 100) / (s1 + 100))
    logit = -1.9 + 2.4 * np.maximum(-r, 0) - 0.8 * np.maximum(r, 0) + 0.8 * np.maximum(-v, 0) + 2.0 * (n1 + n2 == 0)
    return p_true(loaded, logit)


def interaction_p(loaded: Loaded) -> pd.Series:
    c = loaded.clients
    s = days_before(loaded, c.observation_date)
    year = s[s.age <= 365]
    by_client = year.groupby("client_id")
    n = per_client(loaded, by_client.size())
    d = per_client(loaded, by_client.discount.apply(lambda x: (x > 0).mean()))
    with_channel = year[year.sales_channel.notna()]
    o = per_client(
        loaded, with_channel.groupby("client_id").sales_channel.apply(lambda x: x.isin(["app", "web"]).mean()), 0.5
    )
    age = ((c.observation_date - c.birth_date).dt.days / 365.25).to_numpy(dtype=float)
    coastal = c.region.isin(["north_coast", "south_coast"]).to_numpy()
    segment = c.segment.fillna("household")
    base = segment.map({"household": 0.8, "freelancer": 1.5, "enterprise": 3.2}).to_numpy(dtype=float)
    slope = segment.map({"household": -0.6, "freelancer": -0.9, "enterprise": -1.5}).to_numpy(dtype=float)
    logit = (
        -0.55
        + np.where(coastal, 4.0, -2.5) * (d - 0.3)
        + 5.0 * np.nan_to_num(np.tanh((age - 45) / 12)) * (o - 0.5)
        + base
        + slope * np.log1p(n)
    )
    return p_true(loaded, logit)


def seasonal_p(loaded: Loaded) -> pd.Series:
    s = days_before(loaded, loaded.clients.observation_date)
    by_client = s.groupby("client_id")
    n = per_client(loaded, by_client.size())
    recent, earliest = per_client(loaded, by_client.age.min()), per_client(loaded, by_client.age.max())
    y1 = per_client(loaded, s[s.age <= 90].groupby("client_id").size())
    y0 = per_client(loaded, s[(s.age >= 366) & (s.age <= 455)].groupby("client_id").size())
    with np.errstate(invalid="ignore", divide="ignore"):  # n < 2: no gap, replaced below
        gap = (earliest - recent) / (n - 1)
        overdue = np.clip(np.log((recent + 1) / (gap + 1)), -2, 4)
    logit = np.where(n >= 2, -1.9 + 1.2 * overdue - 0.8 * np.log((y1 + 1) / (y0 + 1)), 0.0)
    return p_true(loaded, logit)


P_TRUE: dict[str, Callable[[Loaded], pd.Series]] = {
    "drop": drop_p,
    "interaction": interaction_p,
    "seasonal": seasonal_p,
}


def test_every_world_has_its_independent_recomputation() -> None:
    assert set(P_TRUE) == set(WORLDS)


def test_the_loader_accepts_every_row(loaded: Loaded) -> None:
    summary, run = loaded.summary, loaded.run
    assert (run["clients"]["rows_loaded"], run["clients"]["rows_rejected"], run["clients"]["duplicates"]) == (
        summary.n_clients,
        0,
        0,
    )
    assert (run["sales"]["rows_loaded"], run["sales"]["rows_rejected"], run["sales"]["duplicates"]) == (
        summary.n_sales,
        0,
        0,
    )
    assert run["feature_store"]["rows"] == summary.n_clients
    assert loaded.clients.label.notna().sum() == summary.n_labeled


def test_empty_fields_and_only_they_load_as_nulls(loaded: Loaded) -> None:
    """Values such as the drop world's region ``NA`` (North America) stay values."""
    raw = pd.read_csv(loaded.summary.clients_path, dtype=str, keep_default_na=False).set_index("client_id")
    for column in ("gender", "region", "segment", "acquisition_channel", "birth_date", "annual_income"):
        assert (loaded.clients[column].isna() == (raw[column] == "").reindex(loaded.clients.index)).all(), column


def test_feature_store_as_of_dates_are_the_worlds(loaded: Loaded) -> None:
    as_of = loaded.features.as_of_date
    assert sorted({d.date() for d in as_of}) == list(loaded.summary.as_of_dates)
    observation = loaded.clients.observation_date.reindex(as_of.index)
    observed = observation.notna()
    assert (as_of[observed] == observation[observed]).all()


def test_p_true_is_a_function_of_the_loaded_rows(loaded: Loaded) -> None:
    recomputed = P_TRUE[loaded.name](loaded)
    assert recomputed.notna().all()
    np.testing.assert_allclose(
        recomputed.to_numpy(), loaded.truth.reindex(recomputed.index).to_numpy(), rtol=0, atol=1e-9
    )


def test_the_features_see_the_sales_the_label_sees(loaded: Loaded) -> None:
    """feature_store counts exactly the sales the label read: those before each client's as-of date."""
    seen = days_before(loaded, loaded.features.as_of_date).groupby("client_id").size()
    counted = pd.Series(per_client(loaded, seen), index=loaded.clients.index).reindex(loaded.features.index)
    assert (loaded.features.n_sales_total == counted).all()


def test_only_the_seasonal_world_has_sales_on_or_after_an_as_of_date(loaded: Loaded) -> None:
    """The seasonal world keeps selling after its observation dates (the trap the point-in-time rule is for)."""
    after = loaded.sales.day >= loaded.sales.client_id.map(loaded.features.as_of_date)
    if loaded.name == "seasonal":
        assert after.mean() > 0.1
        assert loaded.sales.day.max() == pd.Timestamp(dt.date(2024, 12, 31))
    else:
        assert not after.any()
