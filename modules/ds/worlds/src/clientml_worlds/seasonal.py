"""World ``seasonal``: seasonal buyers, observed at staggered dates; the label reads their own rhythm.

**Activity.** A Hawkes-like cluster process from :data:`START` (2021-01-01, or the signup) to :data:`END`
(2025-01-01, excluded). Immigrant
purchases follow an inhomogeneous Poisson process of intensity ``b * s(t)`` (drawn by thinning), with
``b`` lognormal and a seasonal shape of mean 1, ``s(t) = exp(kappa * cos(2 pi (t - phi) / P)) / I0(kappa)``,
per client one of: flat (``kappa = 0``), a holiday peak (``P`` a year, ``phi`` mid-December, sharp), a
summer high (``phi`` mid-July, mild) or a monthly cycle (``P`` = 30.44 days, ``phi`` a pay day). Each
immigrant triggers ``Poisson(eta)`` follow-up purchases ``1 + Exp(6)`` days later (one generation).
35% of clients lapse at a time ``U(obs - 365, obs + 120)`` days: nothing after it. Each client has its
own ``observation_date`` ``obs``, one of :data:`OBSERVATION_DATES`; its sales go on after it (to
:data:`END`): they are in the file but never in the label, as the contract's features must ignore them.

**Label.** From the client's sales strictly before ``obs`` only (never ``b``, the season, ``eta`` or the
lapse): ``n`` their number, ``R`` the days from the latest to ``obs``, ``F`` from the earliest to ``obs``,
``g = (F - R) / (n - 1)`` the mean gap between purchases, ``y1`` and ``y0`` the numbers in the 90 days
before ``obs`` and in the same 90 days a year earlier (366 to 455 days before)::

    overdue = log((R + 1) / (g + 1))               recency against the client's usual gap
    yoy = log((y1 + 1) / (y0 + 1))                 deviation from the client's own season
    logit = -1.9 + 1.2 * clip(overdue, -2, 4) - 0.8 * yoy      (n >= 2)
    logit = 0                                                  (n < 2: no rhythm to read)
    p_true = sigmoid(logit)

20% of clients are unlabeled.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from clientml_worlds.observe import Observed
from clientml_worlds.tables import MISSING, NO_DATE, Clients, Coded, FloatArray, IntArray, Sales, day_number, draw_codes
from clientml_worlds.world import Chunk, World, WorldSummary, sigmoid, write_world

START = day_number(dt.date(2021, 1, 1))
END = day_number(dt.date(2025, 1, 1))  # the first day without sales
OBSERVATION_DATES = tuple(dt.date(2024, m, 1) for m in (3, 6, 9, 12))
OBSERVATION_DAYS = np.array([day_number(d) for d in OBSERVATION_DATES])
YEAR, MONTH = 365.25, 30.4375
HOLIDAY_PEAK = day_number(dt.date(2020, 12, 15))
SUMMER_PEAK = day_number(dt.date(2020, 7, 15))
PATTERN_P = (0.25, 0.30, 0.20, 0.25)  # flat, holiday, summer, monthly
LAPSE_SHARE = 0.35
CATEGORIES = ("gifts", "apparel", "outdoor", "groceries", "decor")
CATEGORY_PRICE = np.array([45.0, 60.0, 80.0, 18.0, 35.0])
CHANNELS = ("online", "store", "catalogue")
# Label coefficients (see the module docstring).
INTERCEPT, COEF_OVERDUE, COEF_YOY, FEW_SALES_LOGIT = -1.9, 1.2, -0.8, 0.0
OVERDUE_CLIP = (-2.0, 4.0)


def seasonal_logit(
    n: FloatArray, recent: FloatArray, earliest: FloatArray, y1: FloatArray, y0: FloatArray
) -> FloatArray:
    """The label's log-odds; ``recent`` and ``earliest`` are days from the latest / earliest sale to obs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = (earliest - recent) / (n - 1.0)
        overdue = np.log((recent + 1.0) / (gap + 1.0))
    logit = INTERCEPT + COEF_OVERDUE * np.clip(overdue, *OVERDUE_CLIP) + COEF_YOY * np.log((y1 + 1.0) / (y0 + 1.0))
    return np.where(n >= 2, logit, FEW_SALES_LOGIT)


def _clients(rng: np.random.Generator, numbers: IntArray) -> Clients:
    size = len(numbers)
    observation = OBSERVATION_DAYS[rng.integers(0, len(OBSERVATION_DAYS), size)]
    signup = observation - 60 - np.minimum(rng.gamma(1.5, 600.0, size), 10 * 365).astype(np.int64)
    birth = signup - (np.clip(rng.normal(38.0, 13.0, size), 18.0, 80.0) * 365.25).astype(np.int64)
    birth[rng.random(size) < 0.03] = NO_DATE
    income = np.round(rng.gamma(4.0, 12_000.0, size), -1).astype(np.int64)
    income[rng.random(size) < 0.3] = MISSING
    return Clients(
        number=numbers,
        signup=signup,
        birth=birth,
        gender=draw_codes(rng, size, ("f", "m", "x"), (0.52, 0.44, 0.02)),
        region=draw_codes(rng, size, ("R1", "R2", "R3", "R4", "R5", "R6", "R7"), (0.15,) * 6 + (0.09,)),
        segment=draw_codes(rng, size, ("member", "guest"), (0.55, 0.45)),
        channel=draw_codes(rng, size, CHANNELS, (0.5, 0.3, 0.2)),
        income=income,
        observation=observation,
    )


def _immigrants(rng: np.random.Generator, start: IntArray, stop: FloatArray) -> tuple[IntArray, IntArray]:
    """(owner, day) of the seasonal Poisson purchases of each client in ``[start, stop)``, by thinning."""
    size = len(start)
    pattern = rng.choice(4, size, p=PATTERN_P)
    kappa = np.select(
        [pattern == 1, pattern == 2, pattern == 3],
        [rng.uniform(1.5, 4.0, size), rng.uniform(0.5, 1.5, size), rng.uniform(1.0, 3.0, size)],
        0.0,
    )
    period = np.where(pattern == 3, MONTH, YEAR)
    phase = np.select([pattern == 1, pattern == 2], [HOLIDAY_PEAK, SUMMER_PEAK], rng.uniform(0.0, MONTH, size))
    base = rng.lognormal(np.log(0.016), 0.7, size)
    peak = np.exp(kappa)  # the maximum of exp(kappa * cos(.)); the I0 normalisation cancels in the thinning
    length = np.maximum(stop - start, 0.0)
    candidates = rng.poisson(base * peak / np.i0(kappa) * length)
    owner = np.repeat(np.arange(size), candidates)
    t = np.repeat(start, candidates) + rng.random(len(owner)) * np.repeat(length, candidates)
    shape = np.exp(kappa[owner] * (np.cos(2 * np.pi * (t - phase[owner]) / period[owner]) - 1.0))
    keep = rng.random(len(owner)) < shape
    return owner[keep], np.floor(t[keep]).astype(np.int64)


def _sales(rng: np.random.Generator, clients: Clients) -> Sales:
    size = len(clients)
    start = np.maximum(clients.signup, START)
    lapses = rng.random(size) < LAPSE_SHARE
    stop = np.where(lapses, clients.observation + rng.uniform(-365.0, 120.0, size), END).clip(None, END)
    owner, day = _immigrants(rng, start, stop)
    eta = rng.uniform(0.0, 0.8, size)
    children = rng.poisson(eta[owner])
    child_owner = np.repeat(owner, children)
    child_day = np.repeat(day, children) + 1 + np.floor(rng.exponential(6.0, len(child_owner))).astype(np.int64)
    owner, day = np.concatenate([owner, child_owner]), np.concatenate([day, child_day])
    alive = day < stop[owner]
    order = np.lexsort((day[alive], owner[alive]))
    owner, day = owner[alive][order], day[alive][order]
    n = len(owner)

    category = draw_codes(rng, n, CATEGORIES, (0.3, 0.25, 0.15, 0.2, 0.1))
    cents = np.round(rng.gamma(3.0, CATEGORY_PRICE[category.codes] / 3.0) * 100).astype(np.int64)
    discount = np.where(rng.random(n) < 0.25, rng.choice([10, 25, 50], n), MISSING).astype(np.int64)
    # The acquisition channel is the usual sales channel (same values); a few sales record none.
    channel = clients.channel.codes[owner].copy()
    elsewhere = rng.random(n) < 0.25
    channel[elsewhere] = rng.integers(0, len(CHANNELS), int(elsewhere.sum()))
    channel[rng.random(n) < 0.03] = MISSING
    return Sales(
        client=clients.number[owner],
        day=day,
        second=np.full(n, MISSING, dtype=np.int64),
        category=category,
        quantity=rng.geometric(0.7, n).astype(np.int64),
        cents=cents,
        discount=discount,
        channel=Coded(CHANNELS, channel),
    )


def _draw(rng: np.random.Generator, numbers: IntArray) -> Chunk:
    clients = _clients(rng, numbers)
    sales = _sales(rng, clients)
    seen = Observed(sales, int(numbers[0]), clients.observation)
    n = seen.count(seen.before)
    logit = seasonal_logit(
        n,
        seen.most_recent_age(seen.before),
        seen.oldest_age(seen.before),
        seen.count(seen.window(1, 90)),
        seen.count(seen.window(366, 455)),
    )
    return Chunk(clients=clients, sales=sales, p_true=sigmoid(logit), as_of=clients.observation)


WORLD = World(name="seasonal", draw=_draw, client_prefix="S", sale_prefix="SS", unlabeled_share=0.20)


def generate(out_dir: Path, *, n_clients: int, seed: int) -> WorldSummary:
    """Write the ``seasonal`` world (module docstring) into ``out_dir``: about 25 sales per client."""
    return write_world(WORLD, out_dir, n_clients=n_clients, seed=seed)
