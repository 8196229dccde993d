"""What every world shares: the chunk loop, the label draw, the three files written atomically, the summary.

A world is a :class:`World`: a name, its id prefixes and a ``draw`` function turning a chunk of client
numbers into clients, sales and ``p_true`` (computed by the world from the chunk's realised rows only).
:func:`write_world` then draws ``label ~ Bernoulli(p_true)``, leaves a share of clients unlabeled, and
streams ``clients.csv``, ``sales.csv`` and ``ground_truth.csv``.

Deterministic for a seed: chunks have a fixed size (:data:`CHUNK_CLIENTS`, never derived from the
machine) and each chunk draws from its own streams, derived from ``(world name, seed, chunk)``; the label
stream is separate from the data stream.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from clientml_de.contract import CLIENTS, SALES
from clientml_de.files import atomic_file
from clientml_synthetic.write import CsvSink

from clientml_worlds.tables import (
    CLIENT_ID_DIGITS,
    EPOCH,
    MISSING,
    Clients,
    FloatArray,
    IntArray,
    Sales,
    decimals,
    ids,
    render_clients,
    render_sales,
)

CLIENT_COLUMNS = tuple(column.name for column in CLIENTS.columns)
SALES_COLUMNS = tuple(column.name for column in SALES.columns)
GROUND_TRUTH_COLUMNS = ("client_id", "p_true")
P_TRUE_DECIMALS = 12  # far below the 1e-9 at which a reader's recomputation is compared
MIN_CLIENTS = 100
MAX_CLIENTS = 2_000_000
CHUNK_CLIENTS = 50_000


@dataclass(frozen=True)
class Chunk:
    """One chunk as drawn by a world: ``p_true`` and ``as_of`` (the day it is computed at) per client."""

    clients: Clients
    sales: Sales  # in the order the world writes them
    p_true: FloatArray
    as_of: IntArray  # day: the client's observation_date, or the dataset's as-of date


@dataclass(frozen=True)
class World:
    """A generating process: ``draw(rng, client_numbers) -> Chunk`` drawing only from ``rng``."""

    name: str
    draw: Callable[[np.random.Generator, IntArray], Chunk]
    client_prefix: str
    sale_prefix: str
    unlabeled_share: float
    client_columns: tuple[str, ...] = CLIENT_COLUMNS  # the order of the columns in the file
    sales_columns: tuple[str, ...] = SALES_COLUMNS


@dataclass(frozen=True)
class WorldSummary:
    """What :func:`write_world` wrote; counts are data rows (header excluded)."""

    world: str
    seed: int
    clients_path: Path
    sales_path: Path
    ground_truth_path: Path
    n_clients: int
    n_sales: int
    n_labeled: int
    n_positive: int
    as_of_dates: tuple[dt.date, ...]  # the distinct days p_true is computed at, ascending

    @property
    def positive_rate(self) -> float:
        """Share of label 1 among the labeled clients."""
        return self.n_positive / self.n_labeled

    @property
    def sales_per_client(self) -> float:
        return self.n_sales / self.n_clients

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths and dates as strings), with the positive rate and sales per client."""
        out = asdict(self)
        for name in ("clients_path", "sales_path", "ground_truth_path"):
            out[name] = str(out[name])
        out["as_of_dates"] = [d.isoformat() for d in self.as_of_dates]
        return {**out, "positive_rate": self.positive_rate, "sales_per_client": self.sales_per_client}


class GenerateWorld(Protocol):
    """A world's ``generate``: writes the three files into ``out_dir`` and says what it wrote."""

    def __call__(self, out_dir: Path, *, n_clients: int, seed: int) -> WorldSummary: ...


def sigmoid(logit: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-logit))


def write_world(world: World, out_dir: Path, *, n_clients: int, seed: int) -> WorldSummary:
    """Write ``clients.csv``, ``sales.csv`` and ``ground_truth.csv`` of ``world`` into ``out_dir`` (created).

    ``n_clients`` from :data:`MIN_CLIENTS` to :data:`MAX_CLIENTS`. The three files are moved into place
    only once all are complete (a failed run leaves earlier files as they were). ``ground_truth.csv`` has
    ``p_true`` for every client, labeled or not, with :data:`P_TRUE_DECIMALS` decimals.

    Raises ValueError (naming the argument) for an argument out of range, OSError when writing fails.
    """
    if isinstance(n_clients, bool) or not isinstance(n_clients, int) or not MIN_CLIENTS <= n_clients <= MAX_CLIENTS:
        raise ValueError(f"n_clients must be an integer from {MIN_CLIENTS:,} to {MAX_CLIENTS:,}, got {n_clients!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    out_dir = Path(out_dir)
    columns = {"clients": world.client_columns, "sales": world.sales_columns, "ground_truth": GROUND_TRUTH_COLUMNS}
    paths = {name: out_dir / f"{name}.csv" for name in columns}
    n_sales = n_labeled = n_positive = 0
    as_of_days: set[int] = set()
    with contextlib.ExitStack() as stack:
        sinks = {name: CsvSink(stack.enter_context(atomic_file(paths[name])), columns[name]) for name in columns}
        for sink in sinks.values():
            stack.callback(sink.close)  # runs before the files are moved into place
        for start in range(0, n_clients, CHUNK_CLIENTS):
            # crc32, not hash(): a string's hash() changes from one process to the next.
            stream = np.random.SeedSequence([zlib.crc32(world.name.encode()), seed, start // CHUNK_CLIENTS])
            data_rng, label_rng = (np.random.default_rng(s) for s in stream.spawn(2))
            numbers = np.arange(start + 1, min(start + CHUNK_CLIENTS, n_clients) + 1, dtype=np.int64)
            chunk = world.draw(data_rng, numbers)
            label = draw_labels(label_rng, chunk.p_true, world.unlabeled_share)
            sinks["clients"].write(render_clients(chunk.clients, label, world.client_prefix))
            sinks["sales"].write(render_sales(chunk.sales, n_sales + 1, world.client_prefix, world.sale_prefix))
            p_scaled = np.round(chunk.p_true * 10**P_TRUE_DECIMALS).astype(np.int64)
            sinks["ground_truth"].write(
                {
                    "client_id": ids(world.client_prefix, numbers, CLIENT_ID_DIGITS),
                    "p_true": decimals(p_scaled, P_TRUE_DECIMALS),
                }
            )
            n_sales += len(chunk.sales)
            n_labeled += int((label != MISSING).sum())
            n_positive += int((label == 1).sum())
            as_of_days.update(np.unique(chunk.as_of).tolist())
    return WorldSummary(
        world=world.name,
        seed=seed,
        clients_path=paths["clients"],
        sales_path=paths["sales"],
        ground_truth_path=paths["ground_truth"],
        n_clients=n_clients,
        n_sales=n_sales,
        n_labeled=n_labeled,
        n_positive=n_positive,
        as_of_dates=tuple(EPOCH + dt.timedelta(days=d) for d in sorted(as_of_days)),
    )


def draw_labels(rng: np.random.Generator, p_true: FloatArray, unlabeled_share: float) -> IntArray:
    """``label ~ Bernoulli(p_true)`` per client, then MISSING for a random ``unlabeled_share`` of them."""
    label = (rng.random(len(p_true)) < p_true).astype(np.int64)
    label[rng.random(len(p_true)) < unlabeled_share] = MISSING
    return label
