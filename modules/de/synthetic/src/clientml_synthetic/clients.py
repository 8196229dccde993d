"""Stage 1: client profiles.

Every client gets a signup date up to ~12 years before :data:`~clientml_synthetic.story.AS_OF` (most
within the last few years, at least two weeks back), a birth date (adult at signup), gender, region,
segment (consumer / small_business / corporate), acquisition channel and an annual income (lognormal
around a segment median, rounded to tens). A few optional values are left empty, as in real exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clientml_synthetic.frame import MISSING, NO_DATE, Frame, IntArray
from clientml_synthetic.story import AS_OF_DAY, CHANNELS, DAYS_PER_YEAR, REGIONS, SEGMENTS

GENDER_P = (0.49, 0.48)  # the remaining 3% are left empty
REGION_P = (0.16, 0.18, 0.14, 0.15, 0.17, 0.20)
SEGMENT_P = (0.70, 0.20, 0.10)
CHANNEL_P = (0.40, 0.30, 0.15, 0.15)
SEGMENT_INCOME_MEDIAN = np.array([42_000.0, 85_000.0, 240_000.0])


@dataclass(frozen=True)
class ClientRows(Frame):
    """Client rows; codes index the tuples of :mod:`clientml_synthetic.story`."""

    number: IntArray  # client_id is C + 7 digits; MISSING -> empty
    signup: IntArray  # days since 1970-01-01; NO_DATE -> empty
    birth: IntArray  # days since 1970-01-01; NO_DATE -> empty
    gender: IntArray  # MISSING -> empty
    region: IntArray
    segment: IntArray
    channel: IntArray  # acquisition channel
    income: IntArray  # whole currency units; MISSING -> empty
    label: IntArray  # 0 / 1; MISSING -> empty (unlabeled)


def draw_clients(rng: np.random.Generator, start: int, size: int) -> ClientRows:
    """``size`` clients numbered ``start + 1`` to ``start + size``, every one unlabeled (label MISSING).

    Draws from ``rng`` in a fixed order, so the same stream gives the same clients.
    """
    segment = rng.choice(len(SEGMENTS), size, p=SEGMENT_P)
    # Tenure: most clients joined in the last few years, a long tail of old ones; at least two weeks.
    tenure = 14 + np.minimum(rng.gamma(1.3, 900.0, size), 12 * 365).astype(np.int64)
    age_days = (np.clip(rng.normal(44.0, 14.0, size), 18.0, 90.0) * DAYS_PER_YEAR).astype(np.int64)
    # Adults only: at least 18 at signup.
    age_days = np.maximum(age_days, tenure + int(np.ceil(18 * DAYS_PER_YEAR)))
    birth = AS_OF_DAY - age_days
    birth[rng.random(size) < 0.05] = NO_DATE
    gender = _choice_with_missing(rng, size, GENDER_P)
    income = rng.lognormal(np.log(SEGMENT_INCOME_MEDIAN[segment]), 0.55)
    income = (np.round(income / 10.0) * 10).astype(np.int64)
    income[rng.random(size) < 0.01] = 0  # no declared income: still valid (>= 0)
    income[rng.random(size) < 0.08] = MISSING
    return ClientRows(
        number=np.arange(start + 1, start + size + 1, dtype=np.int64),
        signup=AS_OF_DAY - tenure,
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
