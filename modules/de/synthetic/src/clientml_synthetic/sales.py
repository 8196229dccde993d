"""Stage 2: each client's activity, then its sales.

Activity covers the 3 years before the as-of date (and never before signup). Each client has a yearly
purchase rate (lognormal, higher for business segments) and one activity pattern:

* ``none``     - never bought anything (zero sales rows);
* ``stable``   - constant rate;
* ``decaying`` - constant until a change point, then exponentially fading (the typical churner);
* ``stopped``  - constant until a change point, then nothing at all;
* ``growing``  - constant until a change point, then exponentially increasing.

Sale times are drawn by inverting the cumulative intensity, so the whole thing is vectorised. Each sale
gets a category from the client's own category mix (a Dirichlet draw around a segment mix), a quantity,
a price (lognormal per category, scaled by the client's price level), an optional discount (driven by the
client's appetite for deals) and a sales channel (driven by the acquisition channel). About 5% of sales
carry a time of day and are written as ISO 8601 timestamps instead of plain dates. The latest sale is
pinned to the day before the as-of date (:func:`pin_latest_sale`), so the dataset's default as-of date
(the day after the latest ``sale_date``) is :data:`~clientml_synthetic.story.AS_OF`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from clientml_synthetic.clients import ClientRows
from clientml_synthetic.frame import MISSING, FloatArray, Frame, IntArray
from clientml_synthetic.story import AS_OF_DAY, DISCOUNTS, HISTORY_DAYS

SEGMENT_RATE_MEDIAN = np.array([11.0, 16.0, 22.0])  # sales per year while active
# Category mix per segment; each client draws its own mix around it.
SEGMENT_CATEGORY_MIX = np.array(
    [
        [0.15, 0.18, 0.30, 0.20, 0.12, 0.05],
        [0.25, 0.20, 0.15, 0.08, 0.07, 0.25],
        [0.25, 0.15, 0.08, 0.05, 0.05, 0.42],
    ]
)
CATEGORY_MIX_CONCENTRATION = 4.0
CATEGORY_PRICE_MEDIAN = np.array([220.0, 55.0, 12.0, 40.0, 48.0, 380.0])
SEGMENT_QUANTITY = np.array([0.4, 1.5, 3.0])
CATEGORY_QUANTITY = np.array([0.5, 1.0, 2.0, 1.0, 0.8, 0.3])
DISCOUNT_P = np.array([0.0, 0.16, 0.24, 0.14, 0.16, 0.08, 0.10, 0.07, 0.05])
# Rows: acquisition channel; columns: online / store / phone.
CHANNEL_SALES_MIX = np.array(
    [
        [0.75, 0.20, 0.05],
        [0.20, 0.70, 0.10],
        [0.40, 0.30, 0.30],
        [0.45, 0.45, 0.10],
    ]
)
PATTERNS = ("none", "stable", "decaying", "stopped", "growing")
PATTERN_P = (0.04, 0.56, 0.18, 0.12, 0.10)
TIMESTAMP_SHARE = 0.05


@dataclass(frozen=True)
class SaleRows(Frame):
    """Sale rows, sorted by client then day; codes index the tuples of :mod:`clientml_synthetic.story`."""

    number: IntArray  # sale_id is S + 9 digits (file row number); MISSING -> numbered when written / empty
    client: IntArray  # client number
    day: IntArray  # days since 1970-01-01
    second: IntArray  # second of the day; MISSING -> written as a plain date
    category: IntArray  # MISSING -> empty
    quantity: IntArray
    cents: IntArray  # unit price in cents
    discount: IntArray  # index into DISCOUNTS; MISSING -> empty
    channel: IntArray  # sales channel; MISSING -> empty


@dataclass(frozen=True)
class Activity:
    """Per-client latent activity parameters of a chunk (arrays of one value per client; days are floats)."""

    start: IntArray  # first possible sale day (days since 1970-01-01)
    change: FloatArray  # days after start where the pattern kicks in
    length: FloatArray  # days of the window in which sales can happen
    decay: FloatArray  # per-day exponential rate after the change point (negative = growth)
    rate: FloatArray  # sales per day before the change point
    category_cum: FloatArray  # (n, categories) cumulative category mix
    price_level: FloatArray  # price multiplier, around 1
    deal_appetite: FloatArray  # probability that a sale is discounted


def draw_activity(rng: np.random.Generator, clients: ClientRows) -> Activity:
    """One :class:`Activity` entry per client, drawn from ``rng`` in a fixed order."""
    size = len(clients)
    pattern = rng.choice(len(PATTERNS), size, p=PATTERN_P)
    start = np.maximum(clients.signup, AS_OF_DAY - HISTORY_DAYS)
    window = (AS_OF_DAY - start).astype(np.float64)
    rate = rng.lognormal(np.log(SEGMENT_RATE_MEDIAN[clients.segment]), 0.6) / 365.0
    rate[pattern == PATTERNS.index("none")] = 0.0
    # Change point somewhere in the window; stable clients simply never reach it.
    change = window * rng.uniform(0.15, 0.9, size)
    decay = np.zeros(size)
    is_decaying = pattern == PATTERNS.index("decaying")
    decay[is_decaying] = 1.0 / rng.uniform(30.0, 300.0, int(is_decaying.sum()))
    is_growing = pattern == PATTERNS.index("growing")
    decay[is_growing] = -1.0 / rng.uniform(250.0, 700.0, int(is_growing.sum()))
    length = window.copy()
    stable = pattern == PATTERNS.index("stable")
    change[stable] = window[stable]
    stopped = pattern == PATTERNS.index("stopped")
    length[stopped] = change[stopped]

    mix = rng.standard_gamma(SEGMENT_CATEGORY_MIX[clients.segment] * CATEGORY_MIX_CONCENTRATION)
    mix /= mix.sum(axis=1, keepdims=True)
    return Activity(
        start=start,
        change=change,
        length=length,
        decay=decay,
        rate=rate,
        category_cum=np.cumsum(mix, axis=1),
        price_level=rng.lognormal(0.0, 0.25, size),
        deal_appetite=rng.beta(1.2, 3.5, size),
    )


def draw_sales(rng: np.random.Generator, clients: ClientRows, act: Activity) -> SaleRows:
    """The clients' sales (any number per client, possibly none), sorted by client then day, unnumbered.

    Every sale falls before the as-of date and on or after its client's ``act.start``.
    """
    # Intensity: `rate` until the change point, then rate * exp(-decay * (t - change)).
    before = np.minimum(act.change, act.length)
    after_len = np.maximum(act.length - act.change, 0.0)
    safe_decay = np.where(act.decay == 0.0, 1.0, act.decay)
    after_mass = np.where(act.decay == 0.0, after_len, -np.expm1(-act.decay * after_len) / safe_decay)
    expected = act.rate * (before + after_mass)
    per_client = rng.poisson(expected)
    owner = np.repeat(np.arange(len(clients)), per_client)
    n = len(owner)

    # Inverse of the cumulative intensity at a uniform draw of its total.
    v = rng.random(n) * (before + after_mass)[owner]
    k = act.decay[owner]
    over = v - before[owner]
    safe_k = np.where(k == 0.0, 1.0, k)
    offset_after = np.where(k == 0.0, over, -np.log1p(-k * np.maximum(over, 0.0)) / safe_k)
    t = np.where(over <= 0.0, v, before[owner] + offset_after)
    day = act.start[owner] + np.floor(t).astype(np.int64)
    day = np.minimum(day, AS_OF_DAY - 1)

    # Sorted by client then date, as an export grouped by account would be.
    order = np.lexsort((day, owner))
    owner, day = owner[order], day[order]

    category = (rng.random(n)[:, None] > act.category_cum[owner][:, :-1]).sum(axis=1).astype(np.int64)
    segment = clients.segment[owner]
    quantity = 1 + rng.poisson(SEGMENT_QUANTITY[segment] * CATEGORY_QUANTITY[category])
    price = rng.lognormal(np.log(CATEGORY_PRICE_MEDIAN[category]), 0.5) * act.price_level[owner]
    cents = np.round(price * 100.0).astype(np.int64)
    cents[rng.random(n) < 0.002] = 0  # free items / gifts: a valid zero price

    discounted = rng.random(n) < act.deal_appetite[owner]
    discount = np.where(
        discounted,
        rng.choice(len(DISCOUNTS), n, p=DISCOUNT_P),
        np.where(rng.random(n) < 0.05, 0, MISSING),  # a few tills write an explicit 0
    ).astype(np.int64)

    channel_cum = np.cumsum(CHANNEL_SALES_MIX, axis=1)[clients.channel[owner]]
    channel = (rng.random(n)[:, None] > channel_cum[:, :-1]).sum(axis=1).astype(np.int64)
    channel[rng.random(n) < 0.01] = MISSING

    # Business hours mostly; only some systems export the time at all.
    second = np.clip(rng.normal(14.0 * 3600, 3.0 * 3600, n), 0, 86_399).astype(np.int64)
    second[rng.random(n) >= TIMESTAMP_SHARE] = MISSING

    return SaleRows(
        number=np.full(n, MISSING, dtype=np.int64),
        client=clients.number[owner],
        day=day,
        second=second,
        category=category,
        quantity=quantity.astype(np.int64),
        cents=cents,
        discount=discount,
        channel=channel,
    )


def pin_latest_sale(sales: SaleRows) -> SaleRows:
    """Move the latest sale to the day before AS_OF, so the dataset's as-of date is exactly AS_OF.

    The sale stays its client's latest (the rows are sorted by client then day), so the order holds.
    Raises RuntimeError when there is no sale at all.
    """
    if len(sales) == 0:  # pragma: no cover - ~5% of clients buy nothing: 10 all at once is ~2e-13
        raise RuntimeError("no sales generated in the first chunk")
    day = sales.day.copy()
    day[int(np.argmax(day))] = AS_OF_DAY - 1
    return replace(sales, day=day)
