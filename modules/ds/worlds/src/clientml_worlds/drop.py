"""World ``drop``: the label is driven by a drop in activity between the last 90 days and the 90 before.

**Activity.** A piecewise-homogeneous Poisson process per client over ``[start, T)``, ``T`` = :data:`AS_OF`
and ``start = max(signup, T - 900 days)``: rate ``lam`` (sales per day, gamma across clients, scaled by
segment) until a client-specific change point ``tau ~ T - U(0, 420)`` days (at least ``start``), then
``lam * m`` with ``m ~ U(0, 0.5)`` (40% of clients: a drop), ``m ~ U(1.5, 3)`` (15%: a rise) or ``m = 1``
(45%). Each sale
gets a category, quantity, price, an occasional discount and a channel from the client's own mix. The
latest sale of the first chunk is moved to ``T - 1`` so that the dataset's default as-of date (the day
after the latest sale) is ``T``; ``observation_date`` is left empty.

**Label.** From the realised sales only (never ``lam``, ``tau`` or ``m``), with ``n1, s1`` the number and
spend (``quantity * unit_price * (1 - discount)``) of the sales 91 to 180 days before ``T`` and
``n2, s2`` those of the last 90 days::

    r = log((n2 + 1) / (n1 + 1))             count trend
    v = log((s2 + 100) / (s1 + 100))         spend trend
    logit = -1.9 + 2.4 * max(-r, 0) - 0.8 * max(r, 0) + 0.8 * max(-v, 0) + 2.0 * [n1 + n2 = 0]
    p_true = sigmoid(logit)

A drop weighs far more than a rise; 30% of clients are unlabeled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np

from clientml_worlds.observe import Observed
from clientml_worlds.tables import MISSING, NO_DATE, Clients, Coded, FloatArray, IntArray, Sales, day_number, draw_codes
from clientml_worlds.world import Chunk, World, WorldSummary, sigmoid, write_world

AS_OF = dt.date(2024, 7, 1)
T = day_number(AS_OF)
HISTORY_DAYS = 900
# "NA" (North America) is a value, not an empty field: a reader that takes it for a null is wrong.
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
SEGMENTS = ("starter", "growth", "scale")
SEGMENT_RATE = np.array([0.036, 0.050, 0.072])  # mean sales per day before the change point
CATEGORIES = ("license", "addon", "hardware", "support", "training")
CATEGORY_P = np.array([0.35, 0.25, 0.10, 0.20, 0.10])
CATEGORY_PRICE = np.array([120.0, 35.0, 450.0, 80.0, 300.0])
CHANNELS = ("self_serve", "sales_rep", "reseller")
# Label coefficients (see the module docstring).
INTERCEPT = -1.9
COEF_DROP, COEF_RISE, COEF_SPEND_DROP, COEF_IDLE = 2.4, -0.8, 0.8, 2.0
SPEND_SMOOTHING = 100.0


def drop_logit(n1: FloatArray, n2: FloatArray, s1: FloatArray, s2: FloatArray) -> FloatArray:
    """The label's log-odds from the counts and spends of the two periods (one value per client)."""
    r = np.log((n2 + 1.0) / (n1 + 1.0))
    v = np.log((s2 + SPEND_SMOOTHING) / (s1 + SPEND_SMOOTHING))
    return (
        INTERCEPT
        + COEF_DROP * np.maximum(-r, 0.0)
        + COEF_RISE * np.maximum(r, 0.0)
        + COEF_SPEND_DROP * np.maximum(-v, 0.0)
        + COEF_IDLE * ((n1 + n2) == 0)
    )


def _clients(rng: np.random.Generator, numbers: IntArray) -> Clients:
    size = len(numbers)
    tenure = 30 + np.minimum(rng.gamma(1.1, 700.0, size), 15 * 365).astype(np.int64)
    age_days = (np.clip(rng.normal(41.0, 12.0, size), 19.0, 85.0) * 365.25).astype(np.int64)
    birth = np.where(rng.random(size) < 0.06, NO_DATE, T - np.maximum(age_days, tenure + 18 * 366))
    income = np.round(rng.lognormal(np.log(60_000.0), 0.5, size), -2).astype(np.int64)
    income[rng.random(size) < 0.12] = MISSING
    return Clients(
        number=numbers,
        signup=T - tenure,
        birth=birth,
        gender=draw_codes(rng, size, ("female", "male", "other"), (0.49, 0.47, 0.01)),
        region=draw_codes(rng, size, REGIONS, (0.4, 0.3, 0.2, 0.1)),
        segment=draw_codes(rng, size, SEGMENTS, (0.5, 0.35, 0.15)),
        channel=draw_codes(rng, size, ("organic", "paid_search", "partner", "outbound"), (0.4, 0.3, 0.15, 0.15)),
        income=income,
        observation=np.full(size, NO_DATE, dtype=np.int64),
    )


def _sales(rng: np.random.Generator, clients: Clients) -> Sales:
    """Two homogeneous Poisson pieces per client, before and after its change point."""
    size = len(clients)
    start = np.maximum(clients.signup, T - HISTORY_DAYS)
    lam = rng.gamma(2.0, 0.5, size) * SEGMENT_RATE[clients.segment.codes]
    kind = rng.random(size)
    m = np.where(kind < 0.40, rng.uniform(0.0, 0.5, size), np.where(kind < 0.55, rng.uniform(1.5, 3.0, size), 1.0))
    tau = np.clip(T - rng.uniform(0.0, 420.0, size), start, T)
    first_len, second_len = tau - start, T - tau
    n_first = rng.poisson(lam * first_len)
    n_second = rng.poisson(lam * m * second_len)
    owner = np.concatenate([np.repeat(np.arange(size), n_first), np.repeat(np.arange(size), n_second)])
    piece_start = np.concatenate([np.repeat(start, n_first), np.repeat(tau, n_second)])
    piece_len = np.concatenate([np.repeat(first_len, n_first), np.repeat(second_len, n_second)])
    day = np.minimum(np.floor(piece_start + rng.random(len(owner)) * piece_len).astype(np.int64), T - 1)
    order = np.lexsort((day, owner))
    owner, day = owner[order], day[order]
    n = len(owner)

    category = draw_codes(rng, n, CATEGORIES, tuple(CATEGORY_P))
    scale = clients.segment.codes[owner] == SEGMENTS.index("scale")
    quantity = 1 + rng.poisson(np.where(scale, 1.5, 0.3))
    cents = np.round(rng.lognormal(np.log(CATEGORY_PRICE[category.codes]), 0.35) * 100).astype(np.int64)
    discount = np.where(rng.random(n) < 0.85, MISSING, rng.choice([10, 20], n, p=[0.7, 0.3])).astype(np.int64)
    # Each client mostly uses one channel: its own favourite, 80% of the time.
    favourite = rng.integers(0, len(CHANNELS), size)[owner]
    channel = np.where(rng.random(n) < 0.8, favourite, rng.integers(0, len(CHANNELS), n)).astype(np.int64)
    return Sales(
        client=clients.number[owner],
        day=day,
        second=np.full(n, MISSING, dtype=np.int64),
        category=category,
        quantity=quantity.astype(np.int64),
        cents=cents,
        discount=discount,
        channel=Coded(CHANNELS, channel),
    )


def _pin_latest(sales: Sales) -> Sales:
    """The latest sale moved to ``T - 1`` (it stays its client's latest, so the order holds)."""
    if len(sales) == 0:  # pragma: no cover - a chunk of at least 100 clients always buys something
        raise RuntimeError("the first chunk has no sale to pin the as-of date to")
    day = sales.day.copy()
    day[int(np.argmax(day))] = T - 1
    return replace(sales, day=day)


def _draw(rng: np.random.Generator, numbers: IntArray) -> Chunk:
    clients = _clients(rng, numbers)
    sales = _sales(rng, clients)
    if numbers[0] == 1:  # the first chunk: it fixes the dataset's as-of date
        sales = _pin_latest(sales)
    as_of = np.full(len(numbers), T, dtype=np.int64)
    seen = Observed(sales, int(numbers[0]), as_of)
    amount = sales.amount()
    older, recent = seen.window(91, 180), seen.window(1, 90)
    logit = drop_logit(seen.count(older), seen.count(recent), seen.count(older, amount), seen.count(recent, amount))
    return Chunk(clients=clients, sales=sales, p_true=sigmoid(logit), as_of=as_of)


WORLD = World(name="drop", draw=_draw, client_prefix="D", sale_prefix="DS", unlabeled_share=0.30)


def generate(out_dir: Path, *, n_clients: int, seed: int) -> WorldSummary:
    """Write the ``drop`` world (module docstring) into ``out_dir``: about 25 sales per client."""
    return write_world(WORLD, out_dir, n_clients=n_clients, seed=seed)
