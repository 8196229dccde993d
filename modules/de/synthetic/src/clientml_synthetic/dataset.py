"""The whole dataset: clients in fixed-size chunks, each through every stage, streamed to the three files.

Everything is deterministic for a seed: the clients are processed in chunks of :data:`CHUNK_CLIENTS`
(never derived from the machine), each with its own random streams derived from ``(seed, chunk)``, and
the corruption streams are separate from the clean-data streams, so ``ground_truth.csv`` does not depend
on ``bad_rows``. A shifted drop (``shift``, :mod:`~clientml_synthetic.shift`) draws the same clients
from the same streams, its segment moves from a stream of its own, so that what it does not shift stays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from clientml_de.files import atomic_file
from tqdm import tqdm

from clientml_synthetic.clients import draw_clients
from clientml_synthetic.corrupt import (
    CLIENT_CORRUPTIONS,
    EXACT_DUPLICATE,
    SALES_CORRUPTIONS,
    inject_clients,
    inject_sales,
)
from clientml_synthetic.frame import MISSING
from clientml_synthetic.labels import draw_labels
from clientml_synthetic.render import (
    CLIENT_COLUMNS,
    GROUND_TRUTH_COLUMNS,
    SALES_COLUMNS,
    client_ids,
    fixed_decimals,
    render_clients,
    render_sales,
)
from clientml_synthetic.sales import draw_activity, draw_sales, pin_latest_sale
from clientml_synthetic.shift import ACTIVITY, SEGMENT_MIX, check_shifts, shift_activity, shift_segments
from clientml_synthetic.story import AS_OF
from clientml_synthetic.write import CsvSink

MIN_CLIENTS = 10
MAX_CLIENTS = 5_000_000  # C + 7 digits leaves room for the broken clients numbered after them (MAX_BAD_ROWS)
MAX_BAD_ROWS = 0.5
PROGRESS_THRESHOLD = 100_000
# Fixed chunk size (never derived from the machine) so that the output only depends on the seed.
CHUNK_CLIENTS = 50_000
FILES = {"clients": CLIENT_COLUMNS, "sales": SALES_COLUMNS, "ground_truth": GROUND_TRUTH_COLUMNS}


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
    shift: list[str] = field(default_factory=list)  # the shifts applied (clientml_synthetic.shift), sorted

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths and dates as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, dict | list):
                value = value.copy()
            out[f.name] = value
        return out


@dataclass
class _Injections:
    """Rows injected into one file so far."""

    bad: int = 0
    duplicates: int = 0

    @property
    def total(self) -> int:
        return self.bad + self.duplicates

    def add(self, kind_counts: dict[str, int], corruptions: dict[str, int]) -> None:
        for kind, n in kind_counts.items():
            if kind == EXACT_DUPLICATE:
                self.duplicates += n
            else:
                self.bad += n
                corruptions[kind] += n


@dataclass
class _Counts:
    corruptions: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CLIENT_CORRUPTIONS[:-1] + SALES_CORRUPTIONS[:-1], 0)
    )
    injected_clients: _Injections = field(default_factory=_Injections)
    injected_sales: _Injections = field(default_factory=_Injections)
    sales: int = 0
    labeled: int = 0
    positive: int = 0


def generate(
    out_dir: Path,
    n_clients: int = 10_000,
    seed: int = 0,
    bad_rows: float = 0.0,
    progress: bool | None = None,
    *,
    shift: Collection[str] = (),
) -> GenerationSummary:
    """Write ``clients.csv``, ``sales.csv`` and ``ground_truth.csv`` into ``out_dir`` (created).

    ``n_clients`` genuine clients (:data:`MIN_CLIENTS` to :data:`MAX_CLIENTS`), some 25 sales each on average.
    ``bad_rows`` (0 to :data:`MAX_BAD_ROWS`) is the fraction of extra, rule-breaking (or exactly
    duplicated) rows injected into each file, rounded per chunk (so a tiny file may get none, or not
    every kind of bad row). ``progress=None`` shows a progress bar on stderr from
    :data:`PROGRESS_THRESHOLD` clients on. Each file is written to a temporary name and moved into place
    only when all three are complete; a failed run leaves ``out_dir``'s previous files as they were.
    ``shift`` names the ways the drop's behaviour moves (:data:`clientml_synthetic.shift.SHIFTS`:
    ``activity``, ``segments``; none by default, and then the files are those of the same seed without
    the option, byte for byte).

    Raises ValueError (naming the argument, before anything is written) for an argument out of range or
    of the wrong type, OSError when ``out_dir`` cannot be created or written, and RuntimeError in the
    vanishing case (~2e-13 at 10 clients, less with more) that the first chunk's clients buy nothing.
    """
    _validate(n_clients, seed, bad_rows)
    shifts = check_shifts(shift)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    show = n_clients >= PROGRESS_THRESHOLD if progress is None else progress
    paths = {name: out_dir / f"{name}.csv" for name in FILES}
    counts = _Counts()

    with contextlib.ExitStack() as stack:
        writers = {name: CsvSink(stack.enter_context(atomic_file(paths[name])), FILES[name]) for name in FILES}
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
                shifts=shifts,
            )
            bar.update(size)

    return GenerationSummary(
        clients_path=paths["clients"],
        sales_path=paths["sales"],
        ground_truth_path=paths["ground_truth"],
        n_clients=n_clients,
        n_sales=counts.sales,
        n_bad_client_rows=counts.injected_clients.bad,
        n_bad_sales_rows=counts.injected_sales.bad,
        n_duplicate_client_rows=counts.injected_clients.duplicates,
        n_duplicate_sales_rows=counts.injected_sales.duplicates,
        n_client_rows=n_clients + counts.injected_clients.total,
        n_sales_rows=counts.sales + counts.injected_sales.total,
        n_labeled=counts.labeled,
        n_positive=counts.positive,
        as_of_date=AS_OF,
        seed=seed,
        bad_rows=bad_rows,
        corruption_counts=counts.corruptions,
        shift=sorted(shifts),
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


def _rngs(seed: int, chunk: int) -> tuple[np.random.Generator, ...]:
    """Independent streams for clean data, labels, corruptions and the segment shift, so that one does not
    move the others (SeedSequence children are numbered: the first three are those of ``spawn(3)``)."""
    return tuple(np.random.default_rng(child) for child in np.random.SeedSequence([seed, chunk]).spawn(4))


def _generate_chunk(
    *,
    start: int,
    size: int,
    n_clients: int,
    seed: int,
    bad_rows: float,
    writers: dict[str, CsvSink],
    counts: _Counts,
    shifts: frozenset[str],
) -> None:
    """Clients ``start + 1`` to ``start + size``: clients -> sales -> (shifts) -> labels -> bad rows -> text."""
    chunk = start // CHUNK_CLIENTS
    sale_rows_before = counts.sales + counts.injected_sales.total
    data_rng, label_rng, bad_rng, shift_rng = _rngs(seed, chunk)
    clients = draw_clients(data_rng, start, size)
    activity = draw_activity(data_rng, clients)
    if ACTIVITY in shifts:
        activity = shift_activity(activity)
    sales = draw_sales(data_rng, clients, activity)
    if chunk == 0:
        sales = pin_latest_sale(sales)
    if SEGMENT_MIX in shifts:  # after the income and the sales were drawn, before the label
        clients = shift_segments(shift_rng, clients)

    label, p_true = draw_labels(label_rng, clients, sales)
    clients = replace(clients, label=label)
    counts.labeled += int((label != MISSING).sum())
    counts.positive += int((label == 1).sum())
    counts.sales += len(sales)
    writers["ground_truth"].write({"client_id": client_ids(clients.number), "p_true": fixed_decimals(p_true, 6)})

    # Broken clients are numbered after the genuine ones and those of the chunks before.
    first_number = n_clients + counts.injected_clients.bad + 1
    client_rows = inject_clients(
        bad_rng, clients, n=round(bad_rows * size), first_number=first_number, kind_offset=chunk
    )
    counts.injected_clients.add(client_rows.kind_counts(), counts.corruptions)
    writers["clients"].write(client_rows.apply(render_clients))
    sale_rows = inject_sales(bad_rng, sales, n=round(bad_rows * len(sales)), kind_offset=counts.injected_sales.total)
    counts.injected_sales.add(sale_rows.kind_counts(), counts.corruptions)
    writers["sales"].write(sale_rows.apply(lambda s: render_sales(s, sale_rows_before)))
