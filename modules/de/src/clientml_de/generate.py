"""Synthetic source data for clientml: ``clients.csv``, ``sales.csv`` and ``ground_truth.csv``.

The files follow the source data contract (``CONTRACT.md`` section 1), so everything downstream (load,
quarantine, feature_store, training, scoring) can be exercised end to end with data whose true label
mechanism is known.

Generative story
----------------
The as-of date is fixed (:data:`AS_OF`, never the wall clock). Every client gets a profile: a signup
date up to ~12 years back (most within the last few years), a birth date (adult at signup), gender,
region, segment (consumer / small_business / corporate), acquisition channel and an annual income
(lognormal around a segment median). A few optional values are left empty, as in real exports.

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
client's appetite for deals) and a sales channel (driven by the acquisition channel). About 5% of sale
dates are written as ISO 8601 timestamps instead of plain dates. The latest sale is always the day before
:data:`AS_OF`, so the dataset's default as-of date (the day after the latest ``sale_date``) is ``AS_OF``.

Label model
-----------
The label (1 = churn) is drawn *after* the activity, from quantities observable in the two CSVs as written
(profile columns, sales strictly before the as-of date, sale dates truncated to the day), with the exact
names the feature_store uses. See :func:`label_logit` for the formula;
``p_true = sigmoid(logit)``, ``label ~ Bernoulli(p_true)``, and ~15% of clients keep an empty label
(to be scored). ``ground_truth.csv`` holds ``p_true`` for every genuine client.

Bad rows
--------
With ``bad_rows > 0`` extra rows are injected into both files after the clean data and the ground truth
are fixed, one kind per contract rule (see :data:`CLIENT_CORRUPTIONS`, :data:`SALES_CORRUPTIONS`),
plus exact duplicates of valid rows. Injected rows are always *extra* rows, so every genuine client and
sale still loads and the ground truth stays exact; a row that duplicates an id always comes after the
genuine row it copies.

Everything is deterministic for a seed: the clients are processed in fixed-size chunks, each with its own
random streams derived from ``(seed, chunk)``, and the corruption streams are separate from the clean-data
streams, so ``ground_truth.csv`` does not depend on ``bad_rows``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, Generic, Self, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from clientml_de.contract import CLIENTS, SALES

__all__ = [
    "AS_OF",
    "CLIENT_COLUMNS",
    "CLIENT_CORRUPTIONS",
    "GROUND_TRUTH_COLUMNS",
    "SALES_COLUMNS",
    "SALES_CORRUPTIONS",
    "GenerationSummary",
    "LabelFeatures",
    "generate",
    "label_logit",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ByteMatrix = npt.NDArray[np.uint8]

# --------------------------------------------------------------------------------------------------
# Constants of the generative story
# --------------------------------------------------------------------------------------------------

AS_OF = dt.date(2025, 1, 1)
_EPOCH = dt.date(1970, 1, 1)
_AS_OF_DAY = (AS_OF - _EPOCH).days
HISTORY_DAYS = 3 * 365
DAYS_PER_YEAR = 365.25

MIN_CLIENTS = 1_000
MAX_CLIENTS = 1_000_000
MAX_BAD_ROWS = 0.5
PROGRESS_THRESHOLD = 100_000
# Fixed chunk size (never derived from the machine) so that the output only depends on the seed.
CHUNK_CLIENTS = 50_000

CLIENT_COLUMNS = tuple(column.name for column in CLIENTS.columns)
SALES_COLUMNS = tuple(column.name for column in SALES.columns)
GROUND_TRUTH_COLUMNS = ("client_id", "p_true")

GENDERS = ("F", "M")
GENDER_P = (0.49, 0.48)  # the remaining 3% are left empty
REGIONS = ("north", "south", "east", "west", "central", "capital")
REGION_P = (0.16, 0.18, 0.14, 0.15, 0.17, 0.20)
SEGMENTS = ("consumer", "small_business", "corporate")
SEGMENT_P = (0.70, 0.20, 0.10)
CHANNELS = ("web", "store", "partner", "referral")
CHANNEL_P = (0.40, 0.30, 0.15, 0.15)
CATEGORIES = ("electronics", "home", "grocery", "fashion", "sports", "premium_services")
PREMIUM = CATEGORIES.index("premium_services")
SALES_CHANNELS = ("online", "store", "phone")
# Discounts are a handful of round promotion rates, as on a real till.
DISCOUNTS = ("0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.4", "0.5")
DISCOUNT_VALUES = np.array([float(d) for d in DISCOUNTS])
DISCOUNT_P = np.array([0.0, 0.16, 0.24, 0.14, 0.16, 0.08, 0.10, 0.07, 0.05])

SEGMENT_INCOME_MEDIAN = np.array([42_000.0, 85_000.0, 240_000.0])
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
UNLABELED_SHARE = 0.15

# --------------------------------------------------------------------------------------------------
# Label model coefficients (see label_logit)
# --------------------------------------------------------------------------------------------------

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

# --------------------------------------------------------------------------------------------------
# Corruptions (one kind per contract rule); every kind gets an equal share of the injected rows
# --------------------------------------------------------------------------------------------------

EXACT_DUPLICATE = "exact_duplicate"
CLIENT_CORRUPTIONS = (
    "empty_client_id",
    "duplicate_client_id",
    "bad_signup_date",
    "missing_signup_date",
    "bad_birth_date",
    "negative_income",
    "non_numeric_income",
    "bad_label",
    "bad_observation_date",
    EXACT_DUPLICATE,
)
SALES_CORRUPTIONS = (
    "empty_sale_id",
    "duplicate_sale_id",
    "unknown_client_id",
    "bad_sale_date",
    "missing_product_category",
    "bad_quantity",
    "negative_unit_price",
    "bad_discount",
    EXACT_DUPLICATE,
)
BAD_DATES = ("2023-02-30", "not-a-date", "2023/01/05", "31.12.2022", "2023-13-01", "2021-04-31")
BAD_BIRTH_DATES = ("1985-02-29", "unknown", "31/12/1980", "1990-00-10")
BAD_INCOMES = ("12k", "forty thousand", "50 000", "abc")
BAD_LABELS = ("2", "yes", "-1", "0.5", "no")
BAD_SALE_DATES = ("2024-02-30", "not-a-date", "2024/03/05", "2024-13-01T10:00:00", "yesterday")
BAD_QUANTITIES = ("0", "-1", "-5", "1.5", "two")
BAD_DISCOUNTS = ("1.5", "-0.1", "2", "-0.25", "15", "1.01")
# Unknown client ids are drawn above any id this generator ever gives a client.
UNKNOWN_CLIENT_RANGE = (2_000_000, 10_000_000)

NO_DATE = np.iinfo(np.int64).min
MISSING = -1


# ==================================================================================================
# Public API
# ==================================================================================================


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` wrote. Row counts are data rows (header excluded)."""

    clients_path: Path
    sales_path: Path
    ground_truth_path: Path
    n_clients: int
    n_sales: int
    n_bad_client_rows: int
    n_bad_sales_rows: int
    n_duplicate_client_rows: int
    n_duplicate_sales_rows: int
    n_client_rows: int
    n_sales_rows: int
    n_labeled: int
    n_positive: int
    as_of_date: dt.date
    seed: int
    bad_rows: float
    corruption_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths and dates as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out


def generate(
    out_dir: Path,
    n_clients: int = 10_000,
    seed: int = 0,
    bad_rows: float = 0.0,
    progress: bool | None = None,
) -> GenerationSummary:
    """Write ``clients.csv``, ``sales.csv`` and ``ground_truth.csv`` into ``out_dir`` (created).

    ``bad_rows`` is the fraction of extra, rule-breaking (or exactly duplicated) rows injected into each
    file. ``progress=None`` shows a progress bar on stderr from :data:`PROGRESS_THRESHOLD` clients on.
    Each file is written to a temporary name and moved into place only when all three are complete.
    """
    _validate(n_clients, seed, bad_rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    show = n_clients >= PROGRESS_THRESHOLD if progress is None else progress
    paths = {name: out_dir / f"{name}.csv" for name in ("clients", "sales", "ground_truth")}
    counts = _Counts(corruptions=dict.fromkeys(CLIENT_CORRUPTIONS[:-1] + SALES_CORRUPTIONS[:-1], 0))

    with contextlib.ExitStack() as stack:
        sinks = {name: stack.enter_context(_atomic_csv(path)) for name, path in paths.items()}
        writers = {
            "clients": _CsvSink(sinks["clients"], CLIENT_COLUMNS),
            "sales": _CsvSink(sinks["sales"], SALES_COLUMNS),
            "ground_truth": _CsvSink(sinks["ground_truth"], GROUND_TRUTH_COLUMNS),
        }
        for writer in writers.values():
            stack.callback(writer.close)  # runs before the files are moved into place
        bar = stack.enter_context(
            tqdm(total=n_clients, unit="clients", file=sys.stderr, disable=not show, desc="generate")
        )
        for start in range(0, n_clients, CHUNK_CLIENTS):
            size = min(CHUNK_CLIENTS, n_clients - start)
            _generate_chunk(
                start=start,
                size=size,
                n_clients=n_clients,
                seed=seed,
                bad_rows=bad_rows,
                writers=writers,
                counts=counts,
            )
            bar.update(size)

    return GenerationSummary(
        clients_path=paths["clients"],
        sales_path=paths["sales"],
        ground_truth_path=paths["ground_truth"],
        n_clients=n_clients,
        n_sales=counts.sales,
        n_bad_client_rows=counts.bad_clients,
        n_bad_sales_rows=counts.bad_sales,
        n_duplicate_client_rows=counts.duplicate_clients,
        n_duplicate_sales_rows=counts.duplicate_sales,
        n_client_rows=n_clients + counts.bad_clients + counts.duplicate_clients,
        n_sales_rows=counts.sales + counts.bad_sales + counts.duplicate_sales,
        n_labeled=counts.labeled,
        n_positive=counts.positive,
        as_of_date=AS_OF,
        seed=seed,
        bad_rows=bad_rows,
        corruption_counts=counts.corruptions,
    )


def _validate(n_clients: int, seed: int, bad_rows: float) -> None:
    if isinstance(n_clients, bool) or not isinstance(n_clients, int | np.integer):
        raise ValueError(f"n_clients must be an integer, got {n_clients!r}")
    if not MIN_CLIENTS <= n_clients <= MAX_CLIENTS:
        raise ValueError(f"n_clients must be between {MIN_CLIENTS:,} and {MAX_CLIENTS:,}, got {n_clients:,}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(bad_rows, bool) or not isinstance(bad_rows, int | float) or not 0 <= bad_rows <= MAX_BAD_ROWS:
        # `not 0 <= x <= y` is also True for NaN, which is what we want.
        raise ValueError(f"bad_rows must be a fraction between 0 and {MAX_BAD_ROWS}, got {bad_rows!r}")


# ==================================================================================================
# Row frames: columnar numpy data for one chunk, before it is rendered as text
# ==================================================================================================


class _Frame:
    """Columnar rows as numpy arrays of equal length (subclasses are dataclasses)."""

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        return {f.name: getattr(self, f.name) for f in fields(cast(Any, self))}

    def take(self, idx: IntArray) -> Self:
        return replace(cast(Any, self), **{k: v[idx] for k, v in self.columns().items()})

    def concat(self, other: Self) -> Self:
        theirs = other.columns()
        return replace(cast(Any, self), **{k: np.concatenate([v, theirs[k]]) for k, v in self.columns().items()})

    def __len__(self) -> int:
        return len(next(iter(self.columns().values())))


@dataclass(frozen=True)
class _Clients(_Frame):
    number: IntArray  # client_id is C + 7 digits; MISSING -> empty
    signup: IntArray  # epoch days; NO_DATE -> empty
    birth: IntArray  # epoch days; NO_DATE -> empty
    gender: IntArray  # codes into the tuples above; MISSING -> empty
    region: IntArray
    segment: IntArray
    channel: IntArray
    income: IntArray  # MISSING -> empty
    label: IntArray  # MISSING -> empty (unlabeled)


@dataclass(frozen=True)
class _Sales(_Frame):
    number: IntArray  # sale_id is S + 9 digits (file row number); MISSING -> empty
    client: IntArray  # client number
    day: IntArray  # epoch day
    second: IntArray  # second of the day; MISSING -> written as a plain date
    category: IntArray  # MISSING -> empty
    quantity: IntArray
    cents: IntArray
    discount: IntArray  # index into DISCOUNTS; MISSING -> empty
    channel: IntArray  # MISSING -> empty


@dataclass
class _Counts:
    corruptions: dict[str, int]
    sales: int = 0
    bad_clients: int = 0
    bad_sales: int = 0
    duplicate_clients: int = 0
    duplicate_sales: int = 0
    labeled: int = 0
    positive: int = 0


@dataclass(frozen=True)
class _Activity:
    """Per-client latent activity parameters of a chunk."""

    start: IntArray  # first possible sale day
    change: FloatArray  # days after start where the pattern kicks in
    length: FloatArray  # days of the window in which sales can happen
    decay: FloatArray  # per-day exponential rate after the change point (negative = growth)
    rate: FloatArray  # sales per day before the change point
    category_cum: FloatArray  # (n, categories) cumulative category mix
    price_level: FloatArray
    deal_appetite: FloatArray


# ==================================================================================================
# One chunk: clients -> sales -> label -> corruptions -> text
# ==================================================================================================


def _rngs(seed: int, chunk: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent streams for clean data, labels and corruptions, so that one does not shift the others."""
    children = np.random.SeedSequence([seed, chunk]).spawn(3)
    return (
        np.random.default_rng(children[0]),
        np.random.default_rng(children[1]),
        np.random.default_rng(children[2]),
    )


def _generate_chunk(
    *,
    start: int,
    size: int,
    n_clients: int,
    seed: int,
    bad_rows: float,
    writers: dict[str, _CsvSink],
    counts: _Counts,
) -> None:
    chunk = start // CHUNK_CLIENTS
    sale_rows_before = counts.sales + counts.bad_sales + counts.duplicate_sales
    data_rng, label_rng, bad_rng = _rngs(seed, chunk)
    clients = _draw_clients(data_rng, start, size)
    activity = _draw_activity(data_rng, clients)
    sales = _draw_sales(data_rng, clients, activity)
    if chunk == 0:
        sales = _pin_latest_sale(sales)

    features = _compute_features(clients, sales)
    p_true = 1.0 / (1.0 + np.exp(-label_logit(features, clients.segment, clients.channel)))
    label = (label_rng.random(size) < p_true).astype(np.int64)
    label[label_rng.random(size) < UNLABELED_SHARE] = MISSING
    clients = replace(clients, label=label)
    counts.labeled += int((label != MISSING).sum())
    counts.positive += int((label == 1).sum())
    counts.sales += len(sales)

    writers["ground_truth"].write({"client_id": _client_ids(clients.number), "p_true": _fixed_decimals(p_true, 6)})
    client_extra = _inject_clients(
        bad_rng, clients, n_clients=n_clients, n=round(bad_rows * size), chunk=chunk, counts=counts
    )
    writers["clients"].write(client_extra.apply(_render_clients))
    sales_extra = _inject_sales(bad_rng, sales, round(bad_rows * len(sales)), counts)
    writers["sales"].write(sales_extra.apply(lambda s: _render_sales(s, sale_rows_before)))


def _draw_clients(rng: np.random.Generator, start: int, size: int) -> _Clients:
    segment = rng.choice(len(SEGMENTS), size, p=SEGMENT_P)
    # Tenure: most clients joined in the last few years, a long tail of old ones; at least two weeks.
    tenure = 14 + np.minimum(rng.gamma(1.3, 900.0, size), 12 * 365).astype(np.int64)
    age_days = (np.clip(rng.normal(44.0, 14.0, size), 18.0, 90.0) * DAYS_PER_YEAR).astype(np.int64)
    # Adults only: at least 18 at signup.
    age_days = np.maximum(age_days, tenure + int(np.ceil(18 * DAYS_PER_YEAR)))
    birth = _AS_OF_DAY - age_days
    birth[rng.random(size) < 0.05] = NO_DATE
    gender = _choice_with_missing(rng, size, GENDER_P)
    income = rng.lognormal(np.log(SEGMENT_INCOME_MEDIAN[segment]), 0.55)
    income = (np.round(income / 10.0) * 10).astype(np.int64)
    income[rng.random(size) < 0.01] = 0  # no declared income: still valid (>= 0)
    income[rng.random(size) < 0.08] = MISSING
    return _Clients(
        number=np.arange(start + 1, start + size + 1, dtype=np.int64),
        signup=_AS_OF_DAY - tenure,
        birth=birth,
        gender=gender,
        region=rng.choice(len(REGIONS), size, p=REGION_P),
        segment=segment,
        channel=rng.choice(len(CHANNELS), size, p=CHANNEL_P),
        income=income,
        label=np.full(size, MISSING, dtype=np.int64),
    )


def _choice_with_missing(rng: np.random.Generator, size: int, p: Sequence[float]) -> IntArray:
    """Category codes where the probability mass not in ``p`` becomes MISSING."""
    cum = np.cumsum(p)
    codes = np.searchsorted(cum, rng.random(size), side="right").astype(np.int64)
    codes[codes >= len(p)] = MISSING
    return codes


def _draw_activity(rng: np.random.Generator, clients: _Clients) -> _Activity:
    size = len(clients)
    pattern = rng.choice(len(PATTERNS), size, p=PATTERN_P)
    start = np.maximum(clients.signup, _AS_OF_DAY - HISTORY_DAYS)
    window = (_AS_OF_DAY - start).astype(np.float64)
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
    return _Activity(
        start=start,
        change=change,
        length=length,
        decay=decay,
        rate=rate,
        category_cum=np.cumsum(mix, axis=1),
        price_level=rng.lognormal(0.0, 0.25, size),
        deal_appetite=rng.beta(1.2, 3.5, size),
    )


def _draw_sales(rng: np.random.Generator, clients: _Clients, act: _Activity) -> _Sales:
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
    day = np.minimum(day, _AS_OF_DAY - 1)

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

    return _Sales(
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


def _pin_latest_sale(sales: _Sales) -> _Sales:
    """Move the chunk's latest sale to the day before AS_OF, so the dataset's as-of date is exactly AS_OF.

    The sale stays its client's latest (the data are sorted by client then day), so the order holds.
    """
    if len(sales) == 0:  # pragma: no cover - impossible with >= 1,000 clients
        raise RuntimeError("no sales generated in the first chunk")
    day = sales.day.copy()
    day[int(np.argmax(day))] = _AS_OF_DAY - 1
    return replace(sales, day=day)


# ==================================================================================================
# Features and the label model
# ==================================================================================================


@dataclass(frozen=True)
class LabelFeatures:
    """The observable quantities the label depends on, named as in the feature_store (one per client)."""

    age_years: FloatArray  # NaN when birth_date is empty
    tenure_days: FloatArray
    annual_income: FloatArray  # NaN when empty
    days_since_last_sale: FloatArray  # NaN when the client has no sale
    n_sales_30d: FloatArray
    n_sales_90d: FloatArray
    n_sales_365d: FloatArray
    spend_365d: FloatArray
    premium_share_365d: FloatArray  # 0 without sales in the window
    discount_share_365d: FloatArray  # 0 without sales in the window


def _compute_features(clients: _Clients, sales: _Sales) -> LabelFeatures:
    """Features at AS_OF from the chunk's clean, client-sorted sales; windows are [AS_OF - N, AS_OF)."""
    n = len(clients)
    local = sales.client - clients.number[0]

    def count(mask: BoolArray, weights: FloatArray | None = None) -> FloatArray:
        w = None if weights is None else weights[mask]
        return np.bincount(local[mask], weights=w, minlength=n).astype(np.float64)

    age = np.where(clients.birth == NO_DATE, np.nan, (_AS_OF_DAY - clients.birth) / DAYS_PER_YEAR)
    income = np.where(clients.income == MISSING, np.nan, clients.income.astype(np.float64))
    last = np.full(n, np.nan)
    if len(sales):
        # Client-sorted and day-sorted within a client: each client's last row is its latest sale.
        is_last = np.append(local[1:] != local[:-1], True)
        last[local[is_last]] = sales.day[is_last]
    in_365 = sales.day >= _AS_OF_DAY - 365
    discount = np.where(sales.discount == MISSING, 0.0, DISCOUNT_VALUES[np.maximum(sales.discount, 0)])
    amount = sales.quantity * (sales.cents / 100.0) * (1.0 - discount)
    n365 = count(in_365)
    with np.errstate(invalid="ignore", divide="ignore"):
        premium_share = np.nan_to_num(count(in_365 & (sales.category == PREMIUM)) / n365)
        discount_share = np.nan_to_num(count(in_365 & (discount > 0)) / n365)
    return LabelFeatures(
        age_years=age,
        tenure_days=(_AS_OF_DAY - clients.signup).astype(np.float64),
        annual_income=income,
        days_since_last_sale=_AS_OF_DAY - last,
        n_sales_30d=count(sales.day >= _AS_OF_DAY - 30),
        n_sales_90d=count(sales.day >= _AS_OF_DAY - 90),
        n_sales_365d=n365,
        spend_365d=count(in_365, amount),
        premium_share_365d=premium_share,
        discount_share_365d=discount_share,
    )


def label_logit(features: LabelFeatures, segment: IntArray, channel: IntArray) -> FloatArray:
    """The churn log-odds; ``p_true = sigmoid(label_logit(...))``. Missing profile values are neutral (0).

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


# ==================================================================================================
# Bad rows
# ==================================================================================================


F = TypeVar("F", bound=_Frame)


@dataclass(frozen=True)
class _Injected(Generic[F]):
    """Clean rows merged with injected rows, plus text overrides applied after rendering."""

    rows: F  # merged, in file order
    overrides: dict[str, tuple[IntArray, pa.Array]]  # column -> (positions, text values)

    def apply(self, render: Callable[[F], dict[str, pa.Array]]) -> dict[str, pa.Array]:
        columns = render(self.rows)
        for column, (positions, values) in self.overrides.items():
            order = np.argsort(positions, kind="stable")
            mask = np.zeros(len(self.rows), dtype=bool)
            mask[positions] = True
            columns[column] = pc.replace_with_mask(columns[column], pa.array(mask), values.take(order))
        return columns


def _assign_kinds(rng: np.random.Generator, n: int, kinds: Sequence[str], offset: int) -> npt.NDArray[Any]:
    """Equal share per kind; ``offset`` rotates the first kind across chunks so that small chunks together
    still cover every kind."""
    codes = (np.arange(n) + offset) % len(kinds)
    return np.asarray(kinds, dtype=object)[rng.permutation(codes)]


def _merge(
    rng: np.random.Generator, clean: F, extra: F, source: IntArray, after_source: BoolArray
) -> tuple[F, IntArray]:
    """Interleave extra rows at random places; those flagged ``after_source`` land after their source row.

    Returns the merged frame and the file position of every extra row.
    """
    m = len(clean)
    anchor = rng.integers(-1, m, len(extra))
    anchor[after_source] = rng.integers(source[after_source], m)
    keys = np.concatenate([np.arange(m, dtype=np.float64), anchor + 0.5])
    order = np.argsort(keys, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return clean.concat(extra).take(order), position[m:]


def _sources(rng: np.random.Generator, n_clean: int, n: int) -> IntArray:
    """Distinct source rows (n <= n_clean / 2): two copies of one row could be identical to each other,
    and would then be exact duplicates instead of the bad rows they are meant to be."""
    return rng.choice(n_clean, n, replace=False).astype(np.int64)


def _pool(rng: np.random.Generator, values: Sequence[str], n: int) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(rng.integers(0, len(values), n)))


def _inject_clients(
    rng: np.random.Generator, clean: _Clients, *, n_clients: int, n: int, chunk: int, counts: _Counts
) -> _Injected[_Clients]:
    kinds = _assign_kinds(rng, n, CLIENT_CORRUPTIONS, chunk)
    source = _sources(rng, len(clean), n)
    extra = clean.take(source)
    number = extra.number.copy()
    # Broken clients get fresh ids after the genuine ones; their content is a copy of a real client.
    fresh = (kinds != EXACT_DUPLICATE) & (kinds != "duplicate_client_id")
    number[fresh] = n_clients + counts.bad_clients + 1 + np.arange(int(fresh.sum()))
    number[kinds == "empty_client_id"] = MISSING
    signup = extra.signup.copy()
    signup[kinds == "missing_signup_date"] = NO_DATE
    # Same id, different content: another region and another income (both still valid).
    dup = kinds == "duplicate_client_id"
    region = extra.region.copy()
    region[dup] = (region[dup] + 1) % len(REGIONS)
    income = extra.income.copy()
    income[dup] = np.maximum(income[dup], 0) + 1_000
    extra = replace(extra, number=number, signup=signup, region=region, income=income)

    same_id = (kinds == EXACT_DUPLICATE) | dup
    merged, position = _merge(rng, clean, extra, source, same_id)

    def text(kind: str, values: Sequence[str]) -> tuple[IntArray, pa.Array]:
        sel = kinds == kind
        return position[sel], _pool(rng, values, int(sel.sum()))

    negative = kinds == "negative_income"
    overrides = {
        "signup_date": text("bad_signup_date", BAD_DATES),
        "birth_date": text("bad_birth_date", BAD_BIRTH_DATES),
        "label": text("bad_label", BAD_LABELS),
        "observation_date": text("bad_observation_date", BAD_DATES),
        "annual_income": _concat_overrides(
            (
                position[negative],
                _prefixed("-", pc.cast(pa.array(rng.integers(1, 100_000, int(negative.sum()))), pa.string())),
            ),
            text("non_numeric_income", BAD_INCOMES),
        ),
    }
    _count_kinds(kinds, counts)
    counts.duplicate_clients += int((kinds == EXACT_DUPLICATE).sum())
    counts.bad_clients += int((kinds != EXACT_DUPLICATE).sum())
    return _Injected(merged, overrides)


def _inject_sales(rng: np.random.Generator, clean: _Sales, n: int, counts: _Counts) -> _Injected[_Sales]:
    kinds = _assign_kinds(rng, n, SALES_CORRUPTIONS, counts.bad_sales + counts.duplicate_sales)
    source = _sources(rng, len(clean), n)
    extra = clean.take(source)
    client = extra.client.copy()
    unknown = kinds == "unknown_client_id"
    client[unknown] = rng.integers(*UNKNOWN_CLIENT_RANGE, int(unknown.sum()))
    category = extra.category.copy()
    category[kinds == "missing_product_category"] = MISSING
    # Same sale id, different content: one more item.
    quantity = extra.quantity.copy()
    quantity[kinds == "duplicate_sale_id"] += 1
    extra = replace(extra, client=client, category=category, quantity=quantity)

    same_id = (kinds == EXACT_DUPLICATE) | (kinds == "duplicate_sale_id")
    merged, position = _merge(rng, clean, extra, source, same_id)
    # Sale ids number the file's rows; a copy of a sale reuses the id of the row it copies.
    number = np.arange(1, len(merged) + 1, dtype=np.int64)
    is_extra = np.zeros(len(merged), dtype=bool)
    is_extra[position] = True
    clean_position = np.flatnonzero(~is_extra)
    number[position[same_id]] = number[clean_position[source[same_id]]]
    number[position[kinds == "empty_sale_id"]] = MISSING
    merged = replace(merged, number=number)

    def text(kind: str, values: Sequence[str]) -> tuple[IntArray, pa.Array]:
        sel = kinds == kind
        return position[sel], _pool(rng, values, int(sel.sum()))

    negative = kinds == "negative_unit_price"
    overrides = {
        "sale_date": text("bad_sale_date", BAD_SALE_DATES),
        "quantity": text("bad_quantity", BAD_QUANTITIES),
        "discount": text("bad_discount", BAD_DISCOUNTS),
        "unit_price": (
            position[negative],
            _prefixed("-", _price_strings(rng.integers(1, 50_000, int(negative.sum())))),
        ),
    }
    _count_kinds(kinds, counts)
    counts.duplicate_sales += int((kinds == EXACT_DUPLICATE).sum())
    counts.bad_sales += int((kinds != EXACT_DUPLICATE).sum())
    return _Injected(merged, overrides)


def _count_kinds(kinds: npt.NDArray[Any], counts: _Counts) -> None:
    names, n = np.unique(kinds.astype(str), return_counts=True)
    for name, k in zip(names.tolist(), n.tolist(), strict=True):
        if name != EXACT_DUPLICATE:
            counts.corruptions[name] += k


def _concat_overrides(*parts: tuple[IntArray, pa.Array]) -> tuple[IntArray, pa.Array]:
    return np.concatenate([p for p, _ in parts]), pa.concat_arrays([v for _, v in parts])


def _prefixed(prefix: str, values: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.array([prefix] * len(values), pa.string()), values, "")


# ==================================================================================================
# Rendering: numpy -> Arrow string columns, built straight from byte buffers (no Python per row)
# ==================================================================================================


def _digits(values: IntArray, width: int) -> ByteMatrix:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def _literal(n: int, text: str) -> ByteMatrix:
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (n, len(text)))


def _strings(matrix: ByteMatrix, valid: BoolArray | None = None, widths: IntArray | None = None) -> pa.Array:
    """Rows of a byte matrix as an Arrow string array; ``widths`` keeps only each row's first bytes."""
    n, w = matrix.shape
    if widths is None:
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)[: n + 1]
        data = np.ascontiguousarray(matrix).reshape(-1)
    else:
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
        data = matrix[np.arange(w)[None, :] < widths[:, None]]
    bitmap = None
    null_count = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int(n - valid.sum())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count)


def _date_matrix(days: IntArray) -> ByteMatrix:
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]")
    month = d.astype("datetime64[M]")
    month_no = (month - year.astype("datetime64[M]")).astype(np.int64) + 1
    day_no = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    n = len(days)
    return np.hstack(
        [
            _digits(year.astype(np.int64) + 1970, 4),
            _literal(n, "-"),
            _digits(month_no, 2),
            _literal(n, "-"),
            _digits(day_no, 2),
        ]
    )


def _dates(days: IntArray) -> pa.Array:
    valid = days != NO_DATE
    return _strings(_date_matrix(np.where(valid, days, 0)), valid)


def _dates_or_timestamps(days: IntArray, seconds: IntArray) -> pa.Array:
    """``YYYY-MM-DD``, or ``YYYY-MM-DDTHH:MM:SS`` where a second of the day is known."""
    n = len(days)
    s = np.maximum(seconds, 0)
    matrix = np.hstack(
        [
            _date_matrix(days),
            _literal(n, "T"),
            _digits(s // 3600, 2),
            _literal(n, ":"),
            _digits(s // 60 % 60, 2),
            _literal(n, ":"),
            _digits(s % 60, 2),
        ]
    )
    return _strings(matrix, widths=np.where(seconds == MISSING, 10, 19))


def _client_ids(number: IntArray) -> pa.Array:
    return _strings(np.hstack([_literal(len(number), "C"), _digits(number, 7)]), number != MISSING)


def _categories(labels: Sequence[str], codes: IntArray) -> pa.Array:
    return pa.array(list(labels), pa.string()).take(pa.array(codes, mask=codes == MISSING))


def _integers(values: IntArray, valid: BoolArray | None = None) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64(), mask=None if valid is None else ~valid), pa.string())


def _price_strings(cents: IntArray) -> pa.Array:
    """Non-negative cents as ``units.cc``."""
    units = pc.cast(pa.array(cents // 100), pa.string())
    return pc.binary_join_element_wise(units, _strings(_digits(cents % 100, 2)), ".")


def _fixed_decimals(x: FloatArray, places: int) -> pa.Array:
    """Values in [0, 1] with exactly ``places`` decimals (never scientific notation)."""
    scaled = np.round(x * 10**places).astype(np.int64)
    n = len(x)
    return _strings(
        np.hstack([_digits(scaled // 10**places, 1), _literal(n, "."), _digits(scaled % 10**places, places)])
    )


def _render_clients(c: _Clients) -> dict[str, pa.Array]:
    n = len(c)
    return {
        "client_id": _client_ids(c.number),
        "signup_date": _dates(c.signup),
        "birth_date": _dates(c.birth),
        "gender": _categories(GENDERS, c.gender),
        "region": _categories(REGIONS, c.region),
        "segment": _categories(SEGMENTS, c.segment),
        "acquisition_channel": _categories(CHANNELS, c.channel),
        "annual_income": _integers(c.income, c.income != MISSING),
        "label": _integers(c.label, c.label != MISSING),
        "observation_date": pa.nulls(n, pa.string()),
    }


def _render_sales(s: _Sales, id_offset: int) -> dict[str, pa.Array]:
    n = len(s)
    valid_id = s.number != MISSING
    return {
        "sale_id": _strings(np.hstack([_literal(n, "S"), _digits(s.number + id_offset, 9)]), valid_id),
        "client_id": _client_ids(s.client),
        "sale_date": _dates_or_timestamps(s.day, s.second),
        "product_category": _categories(CATEGORIES, s.category),
        "quantity": _integers(s.quantity),
        "unit_price": _price_strings(s.cents),
        "discount": _categories(DISCOUNTS, s.discount),
        "sales_channel": _categories(SALES_CHANNELS, s.channel),
    }


# ==================================================================================================
# Output
# ==================================================================================================


@contextlib.contextmanager
def _atomic_csv(path: Path) -> Iterator[BinaryIO]:
    """A binary file at a temporary name next to ``path``, moved onto ``path`` only on success."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Not mkstemp: its 0600 mode would stick to the final file; this way the umask decides, as for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _CsvSink:
    """Streams all-string record batches as unquoted CSV (no value we write needs quoting)."""

    def __init__(self, handle: BinaryIO, columns: Sequence[str]) -> None:
        self._columns = tuple(columns)
        self._schema = pa.schema([(c, pa.string()) for c in columns])
        handle.write((",".join(columns) + "\n").encode("utf-8"))
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        self._writer = pacsv.CSVWriter(handle, self._schema, write_options=options)

    def write(self, columns: dict[str, pa.Array]) -> None:
        self._writer.write_table(pa.table([columns[c] for c in self._columns], schema=self._schema))

    def close(self) -> None:
        self._writer.close()
