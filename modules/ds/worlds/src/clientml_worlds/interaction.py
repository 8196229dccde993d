"""World ``interaction``: the label is driven by interactions between the profile and the behaviour.

**Activity.** A gamma-Poisson (negative-binomial) mixture by calendar month over the 30 months before
``T`` = :data:`AS_OF`: a client's count in month ``j`` is ``Poisson(mu * g_j * covered_j)``, with ``mu``
its monthly mean (lognormal, scaled by segment), ``g_j ~ Gamma(k, 1/k)`` a month-to-month burst factor
(``k ~ U(0.4, 3)`` per client: some clients buy in bursts, some steadily) and ``covered_j`` the share of the
month after signup; days are uniform within the month, 30% of sales carry a time of day. Each client has
a deal appetite (``Beta``) and an online propensity that falls with age; its sales' discounts and
channels follow them. Every client's ``observation_date`` is written (``T``); the sales rows are in time
order (a till export), not grouped by client, and the columns are in another order than the contract's.

**Label.** From ``clients.csv`` and the sales of the 365 days before ``T`` only (never ``mu``, ``g``,
the appetite or the propensity): ``n`` their number, ``d`` the share with a discount > 0 (0 without
sales), ``o`` the share of sales in channel ``app`` or ``web`` among those with a channel (0.5 without),
``a`` the age in years at ``T`` (``(T - birth_date) / 365.25``)::

    logit = -0.55
          + (4.0 if region in {north_coast, south_coast} else -2.5) * (d - 0.3)    region x discounts
          + 5.0 * tanh((a - 45) / 12) * (o - 0.5)          age x channel (0 without birth_date)
          + SEGMENT_BASE[segment] + SEGMENT_SLOPE[segment] * log(1 + n)          segment x activity
    p_true = sigmoid(logit)

with ``SEGMENT_BASE = {household: 0.8, freelancer: 1.5, enterprise: 3.2}`` and ``SEGMENT_SLOPE =
{household: -0.6, freelancer: -0.9, enterprise: -1.5}``; an empty region counts as not coastal, an
empty segment as household. 25% of clients are unlabeled.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from clientml_worlds.observe import Observed
from clientml_worlds.tables import (
    MISSING,
    NO_DATE,
    BoolArray,
    Clients,
    Coded,
    FloatArray,
    IntArray,
    Sales,
    day_number,
    draw_codes,
)
from clientml_worlds.world import CLIENT_COLUMNS, SALES_COLUMNS, Chunk, World, WorldSummary, sigmoid, write_world

AS_OF = dt.date(2023, 10, 1)
T = day_number(AS_OF)
MONTHS = 30
REGIONS = ("north_coast", "south_coast", "plains", "highlands", "metro")
COASTAL = ("north_coast", "south_coast")
SEGMENTS = ("household", "freelancer", "enterprise")
SEGMENT_MONTHLY = np.array([0.9, 1.25, 1.8])  # median sales per month
CATEGORIES = ("books", "garden", "toys", "beauty", "tools", "pets")
CATEGORY_PRICE = np.array([15.0, 40.0, 25.0, 30.0, 60.0, 20.0])
CHANNELS = ("app", "web", "store", "call_center")
DISCOUNT_STEPS = np.array([5, 10, 15, 20, 25, 30, 40])  # hundredths
# Label coefficients (see the module docstring).
INTERCEPT = -0.55
COEF_DISCOUNT = {True: 4.0, False: -2.5}  # by coastal region
DISCOUNT_CENTER = 0.3
COEF_AGE_CHANNEL = 5.0
AGE_CENTER, AGE_SCALE = 45.0, 12.0
SEGMENT_BASE = np.array([0.8, 1.5, 3.2])
SEGMENT_SLOPE = np.array([-0.6, -0.9, -1.5])


def interaction_logit(
    *, coastal: BoolArray, segment: IntArray, age: FloatArray, n: FloatArray, d: FloatArray, o: FloatArray
) -> FloatArray:
    """The label's log-odds; ``segment`` codes (MISSING counts as household), ``age`` NaN when unknown."""
    seg = np.maximum(segment, 0)
    age_channel = np.nan_to_num(np.tanh((age - AGE_CENTER) / AGE_SCALE)) * (o - 0.5)
    return (
        INTERCEPT
        + np.where(coastal, COEF_DISCOUNT[True], COEF_DISCOUNT[False]) * (d - DISCOUNT_CENTER)
        + COEF_AGE_CHANNEL * age_channel
        + SEGMENT_BASE[seg]
        + SEGMENT_SLOPE[seg] * np.log1p(n)
    )


def _clients(rng: np.random.Generator, numbers: IntArray) -> Clients:
    size = len(numbers)
    tenure = 20 + np.minimum(rng.exponential(900.0, size), 20 * 365).astype(np.int64)
    age_years = np.clip(rng.normal(40.0, 15.0, size), 18.0, 90.0)
    birth = T - np.maximum((age_years * 365.25).astype(np.int64), tenure + 18 * 366)
    birth[rng.random(size) < 0.10] = NO_DATE
    segment = draw_codes(rng, size, SEGMENTS, (0.6, 0.28, 0.11))
    income = np.round(rng.lognormal(np.log(np.array([38e3, 55e3, 150e3])[np.maximum(segment.codes, 0)]), 0.6), -3)
    income = income.astype(np.int64)
    income[rng.random(size) < 0.2] = MISSING
    return Clients(
        number=numbers,
        signup=T - tenure,
        birth=birth,
        gender=draw_codes(rng, size, ("W", "M"), (0.47, 0.45)),
        region=draw_codes(rng, size, REGIONS, (0.18, 0.17, 0.25, 0.12, 0.27)),
        segment=segment,
        channel=draw_codes(rng, size, ("app_store", "social", "tv", "word_of_mouth"), (0.3, 0.3, 0.2, 0.2)),
        income=income,
        observation=np.full(size, T, dtype=np.int64),
    )


def _month_starts() -> IntArray:
    """Day numbers of the first day of each of the MONTHS months before T, then of T's month (MONTHS + 1)."""
    last = np.datetime64(AS_OF, "M")
    months = np.arange(last - MONTHS, last + 1)
    return months.astype("datetime64[D]").astype(np.int64)


def _sales(rng: np.random.Generator, clients: Clients) -> Sales:
    """Negative-binomial monthly counts, uniform days within each month, then the sale attributes."""
    size = len(clients)
    starts = _month_starts()
    lo = np.maximum(starts[:-1][None, :], clients.signup[:, None])  # (clients, months)
    covered = np.clip(starts[1:][None, :] - lo, 0, None)
    mu = rng.lognormal(np.log(SEGMENT_MONTHLY[np.maximum(clients.segment.codes, 0)]), 0.6) / 30.4
    k = rng.uniform(0.4, 3.0, size)
    burst = rng.gamma(k[:, None], 1.0 / k[:, None], (size, MONTHS))
    counts = rng.poisson(mu[:, None] * burst * covered)
    flat = counts.ravel()
    owner = np.repeat(np.arange(size), counts.sum(axis=1))
    n = len(owner)
    first = np.repeat(lo.ravel(), flat)
    day = first + np.floor(rng.random(n) * np.repeat(covered.ravel(), flat)).astype(np.int64)
    second = np.where(rng.random(n) < 0.3, rng.integers(8 * 3600, 22 * 3600, n), MISSING).astype(np.int64)

    birth = clients.birth[owner]
    age = np.where(birth == NO_DATE, 40.0, (T - birth) / 365.25)
    # Younger clients lean online, but each client has its own habit on top.
    habit = rng.normal(0.0, 1.5, size)[owner]
    online = rng.random(n) < 1.0 / (1.0 + np.exp(-(1.0 - 0.04 * (age - 25.0) + habit)))
    channel = np.where(online, rng.integers(0, 2, n), np.where(rng.random(n) < 0.8, 2, 3)).astype(np.int64)
    channel[rng.random(n) < 0.02] = MISSING
    coastal = clients.region.isin(*COASTAL)
    appetite = np.where(coastal, rng.beta(1.2, 1.8, size), rng.beta(1.0, 2.5, size))[owner]
    discounted = rng.random(n) < appetite
    discount = np.where(discounted, rng.choice(DISCOUNT_STEPS, n), np.where(rng.random(n) < 0.3, 0, MISSING)).astype(
        np.int64
    )
    category = rng.integers(0, len(CATEGORIES), n)
    enterprise = clients.segment.codes[owner] == SEGMENTS.index("enterprise")
    quantity = 1 + rng.poisson(np.where(enterprise, 2.0, 0.6))
    cents = np.round(rng.lognormal(np.log(CATEGORY_PRICE[category]), 0.6) * 100).astype(np.int64)
    sales = Sales(
        client=clients.number[owner],
        day=day,
        second=second,
        category=Coded(CATEGORIES, category.astype(np.int64)),
        quantity=quantity.astype(np.int64),
        cents=cents,
        discount=discount,
        channel=Coded(CHANNELS, channel),
    )
    # In time order, as a till exports them; a plain date sorts as midnight.
    return sales.take(np.lexsort((sales.client, np.maximum(second, 0), day)))


def _draw(rng: np.random.Generator, numbers: IntArray) -> Chunk:
    clients = _clients(rng, numbers)
    sales = _sales(rng, clients)
    as_of = clients.observation
    seen = Observed(sales, int(numbers[0]), as_of)
    year = seen.window(1, 365)
    n = seen.count(year)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.nan_to_num(seen.count(year & (sales.discount > 0)) / n)
        with_channel = seen.count(year & (sales.channel.codes != MISSING))
        o = np.where(with_channel > 0, seen.count(year & sales.channel.isin("app", "web")) / with_channel, 0.5)
    age = np.where(clients.birth == NO_DATE, np.nan, (T - clients.birth) / 365.25)
    logit = interaction_logit(
        coastal=clients.region.isin(*COASTAL), segment=clients.segment.codes, age=age, n=n, d=d, o=o
    )
    return Chunk(clients=clients, sales=sales, p_true=sigmoid(logit), as_of=as_of)


WORLD = World(
    name="interaction",
    draw=_draw,
    client_prefix="I",
    sale_prefix="IS",
    unlabeled_share=0.25,
    client_columns=(*CLIENT_COLUMNS[::-1],),  # the contract lets the columns come in any order
    sales_columns=(*SALES_COLUMNS[2:], *SALES_COLUMNS[:2]),
)


def generate(out_dir: Path, *, n_clients: int, seed: int) -> WorldSummary:
    """Write the ``interaction`` world (module docstring) into ``out_dir``: about 25 sales per client."""
    return write_world(WORLD, out_dir, n_clients=n_clients, seed=seed)
