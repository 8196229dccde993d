"""The worlds of the quality benchmark (``clientml_worlds``): deterministic, in their stated ranges, files whole.

Each world is written once per module at 2,000 clients; the loader's view of them is in
``test_worlds_loaded.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_worlds import WORLDS, WorldSummary, best_achievable_auc, labeled_truth, world
from clientml_worlds.drop import WORLD as DROP

N_CLIENTS = 2000
SEED = 0
FILES = ("clients_path", "sales_path", "ground_truth_path")
UNLABELED_SHARE = {"drop": 0.30, "interaction": 0.25, "seasonal": 0.20}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, WorldSummary]:
    return {
        name: generate(tmp_path_factory.mktemp(name), n_clients=N_CLIENTS, seed=SEED)
        for name, generate in WORLDS.items()
    }


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_the_registry_names_three_worlds() -> None:
    assert list(WORLDS) == ["drop", "interaction", "seasonal"]


@pytest.mark.parametrize("name", list(WORLDS))
def test_same_seed_gives_byte_identical_files(name: str, written: dict[str, WorldSummary], tmp_path: Path) -> None:
    again = WORLDS[name](tmp_path, n_clients=N_CLIENTS, seed=SEED)
    first = written[name]
    for attr in FILES:
        assert getattr(again, attr).read_bytes() == getattr(first, attr).read_bytes(), attr
    assert dataclasses.replace(again, **{a: getattr(first, a) for a in FILES}) == first


@pytest.mark.parametrize("name", list(WORLDS))
def test_another_seed_gives_other_files(name: str, written: dict[str, WorldSummary], tmp_path: Path) -> None:
    other = WORLDS[name](tmp_path, n_clients=N_CLIENTS, seed=SEED + 1)
    for attr in FILES:
        assert getattr(other, attr).read_bytes() != getattr(written[name], attr).read_bytes(), attr


def test_worlds_differ_from_each_other(written: dict[str, WorldSummary]) -> None:
    """Other ids, vocabularies and as-of dates: no world is another with its names changed."""
    clients = {name: read_raw(s.clients_path) for name, s in written.items()}
    sales = {name: read_raw(s.sales_path) for name, s in written.items()}
    assert len({c.client_id.str[0].iloc[0] for c in clients.values()}) == 3
    assert len({frozenset(s.product_category) for s in sales.values()}) == 3
    assert len({frozenset(c.region) for c in clients.values()}) == 3
    assert len({s.as_of_dates for s in written.values()}) == 3


@pytest.mark.parametrize("name", list(WORLDS))
def test_positive_rate_sales_and_unlabeled_share_are_in_range(name: str, written: dict[str, WorldSummary]) -> None:
    summary = written[name]
    clients, sales = read_raw(summary.clients_path), read_raw(summary.sales_path)
    assert (len(clients), len(sales)) == (summary.n_clients, summary.n_sales)
    assert 0.15 <= summary.positive_rate <= 0.50
    assert 20 <= summary.sales_per_client <= 30
    labeled = clients.label != ""
    assert (labeled.sum(), (clients.label == "1").sum()) == (summary.n_labeled, summary.n_positive)
    assert abs((~labeled).mean() - UNLABELED_SHARE[name]) < 0.04


@pytest.mark.parametrize("name", list(WORLDS))
def test_labels_are_drawn_from_p_true(name: str, written: dict[str, WorldSummary]) -> None:
    """The best achievable AUC is in (0.7, 0.98), and the labels agree with p_true in every decile of it."""
    truth = labeled_truth(written[name].clients_path.parent)
    assert len(truth) == written[name].n_labeled
    assert truth.p_true.notna().all()
    assert 0.7 < best_achievable_auc(truth.label, truth.p_true) < 0.98
    decile = pd.qcut(truth.p_true.rank(method="first"), 10, labels=False)  # p_true has ties
    by_decile = truth.groupby(decile).agg(rate=("label", "mean"), p=("p_true", "mean"), n=("label", "size"))
    se = np.sqrt(by_decile.p * (1 - by_decile.p) / by_decile.n)
    assert ((by_decile.rate - by_decile.p).abs() < 4 * se + 0.01).all(), by_decile


@pytest.mark.parametrize("name", list(WORLDS))
def test_ground_truth_covers_every_client_with_twelve_decimals(name: str, written: dict[str, WorldSummary]) -> None:
    clients, truth = read_raw(written[name].clients_path), read_raw(written[name].ground_truth_path)
    assert list(truth.columns) == ["client_id", "p_true"]
    assert truth.client_id.tolist() == clients.client_id.tolist()
    assert truth.p_true.str.fullmatch(r"0\.\d{12}").all()


def test_a_world_of_several_chunks_numbers_ids_across_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(world, "CHUNK_CLIENTS", 300)
    summary = WORLDS["seasonal"](tmp_path, n_clients=1000, seed=SEED)
    clients, sales = read_raw(summary.clients_path), read_raw(summary.sales_path)
    assert clients.client_id.tolist() == [f"S{i:07d}" for i in range(1, 1001)]
    assert sales.sale_id.tolist() == [f"SS{i:09d}" for i in range(1, len(sales) + 1)]
    assert set(sales.client_id) <= set(clients.client_id)
    # Each chunk draws from its own stream: the second chunk's clients are not the first's again.
    assert clients.signup_date[:300].tolist() != clients.signup_date[300:600].tolist()


def test_best_achievable_auc_is_roc_auc_of_p_true() -> None:
    assert best_achievable_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    with pytest.raises(ValueError, match="both 0 and 1"):
        best_achievable_auc([1, 1], [0.2, 0.3])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_clients": 99}, "n_clients"), ({"n_clients": 2_000_001}, "n_clients"), ({"n_clients": True}, "n_clients"),
     ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed")],
)  # fmt: skip
def test_invalid_arguments_name_the_argument(kwargs: dict[str, object], name: str, tmp_path: Path) -> None:
    arguments: dict[str, object] = {"n_clients": 100, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        WORLDS["drop"](tmp_path, **arguments)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_a_failed_run_leaves_the_previous_files_and_no_temporary_file(tmp_path: Path) -> None:
    before = WORLDS["drop"](tmp_path, n_clients=100, seed=SEED)
    contents = {attr: getattr(before, attr).read_bytes() for attr in FILES}

    def fail(rng: np.random.Generator, numbers: np.ndarray) -> world.Chunk:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        world.write_world(dataclasses.replace(DROP, draw=fail), tmp_path, n_clients=100, seed=SEED)
    assert {attr: getattr(before, attr).read_bytes() for attr in FILES} == contents
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clients.csv", "ground_truth.csv", "sales.csv"]
