"""Shifted drops (``clientml generate --shift``): data whose behaviour has moved, to show drift.

Each shift moves one part of the story and leaves every other column's distribution as it was (for the
same seed, the other columns are the very same values):

* ``activity`` - clients buy less often: every client's purchase rate is multiplied by
  :data:`ACTIVITY_RATE_FACTOR` (0.5), so the expected number of sales per client halves. The
  sales-derived features move (counts, spend, recency, the trend); the profile columns are drawn before
  the sales and do not. Baskets (category, quantity, price, discount, channel) are drawn as before.
* ``segments`` - a different mix of the ``segment`` profile field: :data:`MOVED_CONSUMER_SHARE` (3 in 7)
  of the consumers are written as ``small_business`` or ``corporate`` (half each), so the mix goes from
  0.70 / 0.20 / 0.10 to 0.40 / 0.35 / 0.25. The move happens after the income and the sales were drawn
  from each client's original segment, so their distributions (and every other column's) are unchanged.

The label mechanism is kept: the label is still drawn from the true probability
(:func:`clientml_synthetic.labels.label_logit`) of the files as written, i.e. of the moved activity or
the written segment, so the labels and ``ground_truth.csv`` move with the data (more churn with less
activity). Clients who were consumers keep their consumer income and buying habits: the relation between
segment and those features changes, which is what a segment mix that moved without the clients changing
looks like.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import numpy as np

from clientml_synthetic.clients import ClientRows
from clientml_synthetic.sales import Activity
from clientml_synthetic.story import SEGMENTS

ACTIVITY = "activity"
SEGMENT_MIX = "segments"
SHIFTS = (ACTIVITY, SEGMENT_MIX)

ACTIVITY_RATE_FACTOR = 0.5
MOVED_CONSUMER_SHARE = 3 / 7
CONSUMER = SEGMENTS.index("consumer")
MOVED_TO = np.array([SEGMENTS.index("small_business"), SEGMENTS.index("corporate")])


def check_shifts(shift: Collection[str]) -> frozenset[str]:
    """The shifts asked for, as a set; ValueError naming ``shift`` for anything not in :data:`SHIFTS`."""
    if isinstance(shift, str) or not all(isinstance(s, str) for s in shift):
        raise ValueError(f"shift must be a collection of names among {list(SHIFTS)}, got {shift!r}")
    unknown = sorted(set(shift) - set(SHIFTS))
    if unknown:
        raise ValueError(f"shift {unknown} unknown: choose among {list(SHIFTS)}")
    return frozenset(shift)


def shift_activity(activity: Activity) -> Activity:
    """``activity`` with every client's purchase rate multiplied by :data:`ACTIVITY_RATE_FACTOR`."""
    return replace(activity, rate=activity.rate * ACTIVITY_RATE_FACTOR)


def shift_segments(rng: np.random.Generator, clients: ClientRows) -> ClientRows:
    """``clients`` with :data:`MOVED_CONSUMER_SHARE` of the consumers moved to small_business or corporate
    (half each), drawn from ``rng`` (a stream of its own, so nothing else moves)."""
    moved = (clients.segment == CONSUMER) & (rng.random(len(clients)) < MOVED_CONSUMER_SHARE)
    segment = clients.segment.copy()
    segment[moved] = MOVED_TO[rng.integers(0, len(MOVED_TO), int(moved.sum()))]
    return replace(clients, segment=segment)
