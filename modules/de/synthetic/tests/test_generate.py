"""Tests of the sample data generator against the source data contract (CONTRACT.md section 1).

The contract rules are re-implemented here with pandas, independently of the generator, so that the
generated files are checked as a loader would see them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.warehouse import connect
from clientml_synthetic import GenerationSummary, dataset, generate
from sklearn.metrics import roc_auc_score
from synthetic_files import number, read_raw, true_probability

DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
SALE_DATE_RE = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?$"


# --------------------------------------------------------------------------------------------------
# Contract rules, row by row
# --------------------------------------------------------------------------------------------------


def valid_date(s: pd.Series, pattern: str = DATE_RE) -> pd.Series:
    parsed = pd.to_datetime(s.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    return s.str.match(pattern) & parsed.notna()


def client_problems(df: pd.DataFrame) -> dict[str, pd.Series]:
    """One boolean mask per contract rule; exact duplicates are expected to be removed first."""
    income = number(df.annual_income)
    return {
        "empty_client_id": df.client_id == "",
        "duplicate_client_id": (df.client_id != "") & df.client_id.duplicated(keep="first"),
        "bad_signup_date": (df.signup_date != "") & ~valid_date(df.signup_date),
        "missing_signup_date": df.signup_date == "",
        "bad_birth_date": (df.birth_date != "") & ~valid_date(df.birth_date),
        "negative_income": income < 0,
        "non_numeric_income": (df.annual_income != "") & income.isna(),
        "bad_label": ~df.label.isin(["", "0", "1"]),
        "bad_observation_date": (df.observation_date != "") & ~valid_date(df.observation_date),
    }


def sales_problems(df: pd.DataFrame, client_ids: set[str]) -> dict[str, pd.Series]:
    quantity = number(df.quantity)
    discount = number(df.discount)
    return {
        "empty_sale_id": df.sale_id == "",
        "duplicate_sale_id": (df.sale_id != "") & df.sale_id.duplicated(keep="first"),
        "unknown_client_id": ~df.client_id.isin(client_ids),
        "bad_sale_date": ~valid_date(df.sale_date, SALE_DATE_RE),
        "missing_product_category": df.product_category == "",
        "bad_quantity": ~df.quantity.str.fullmatch(r"\d+") | (quantity < 1),
        "negative_unit_price": number(df.unit_price) < 0,
        "bad_discount": (df.discount != "") & ~discount.between(0, 1),
    }


def any_problem(problems: dict[str, pd.Series]) -> pd.Series:
    return pd.concat(problems, axis=1).any(axis=1)


# --------------------------------------------------------------------------------------------------
# Fixtures: a few datasets shared by the module (10k clients take well under a second)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("clean"), n_clients=10_000, seed=0)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("dirty"), n_clients=10_000, seed=0, bad_rows=0.05)


@pytest.fixture(scope="module")
def clean_frames(clean: GenerationSummary) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return read_raw(clean.clients_path), read_raw(clean.sales_path), read_raw(clean.ground_truth_path)


def file_bytes(summary: GenerationSummary) -> list[bytes]:
    return [p.read_bytes() for p in (summary.clients_path, summary.sales_path, summary.ground_truth_path)]


# --------------------------------------------------------------------------------------------------
# Determinism and files
# --------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", n_clients=1_000, seed=7, bad_rows=0.1)
    b = generate(tmp_path / "b", n_clients=1_000, seed=7, bad_rows=0.1)
    assert file_bytes(a) == file_bytes(b)
    assert a.to_dict() | {"clients_path": "", "sales_path": "", "ground_truth_path": ""} == b.to_dict() | {
        "clients_path": "",
        "sales_path": "",
        "ground_truth_path": "",
    }


def test_other_seed_gives_other_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", n_clients=1_000, seed=7)
    b = generate(tmp_path / "b", n_clients=1_000, seed=8)
    for x, y in zip(file_bytes(a), file_bytes(b), strict=True):
        assert x != y


def test_ground_truth_does_not_depend_on_bad_rows(clean: GenerationSummary, dirty: GenerationSummary) -> None:
    assert clean.ground_truth_path.read_bytes() == dirty.ground_truth_path.read_bytes()
    assert clean.n_sales == dirty.n_sales


def test_columns_match_the_contract(clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, sales, truth = clean_frames
    assert list(clients.columns) == [
        "client_id",
        "signup_date",
        "birth_date",
        "gender",
        "region",
        "segment",
        "acquisition_channel",
        "annual_income",
        "label",
        "observation_date",
    ]
    assert list(sales.columns) == [
        "sale_id",
        "client_id",
        "sale_date",
        "product_category",
        "quantity",
        "unit_price",
        "discount",
        "sales_channel",
    ]
    assert list(truth.columns) == ["client_id", "p_true"]


def test_output_dir_is_created_and_holds_only_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    summary = generate(out, n_clients=1_000, seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["clients.csv", "ground_truth.csv", "sales.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "sales.csv").stat().st_mode & 0o777 == 0o666 & ~umask  # like a plain open()
    assert summary.clients_path == out / "clients.csv"
    d = summary.to_dict()
    assert d["as_of_date"] == "2025-01-01"
    assert d["clients_path"] == str(out / "clients.csv")


def test_a_failed_run_leaves_previous_files_and_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "clients.csv").write_text("previous\n")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dataset, "render_sales", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(tmp_path, n_clients=1_000, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clients.csv"]
    assert (tmp_path / "clients.csv").read_text() == "previous\n"


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path / "quiet", n_clients=1_000, seed=0)
    assert capsys.readouterr().err == ""
    generate(tmp_path / "loud", n_clients=1_000, seed=0, progress=True)
    captured = capsys.readouterr()
    assert "clients" in captured.err
    assert captured.out == ""


# --------------------------------------------------------------------------------------------------
# Clean data: every row valid, realistic shape
# --------------------------------------------------------------------------------------------------


def test_clean_clients_are_all_valid(clean: GenerationSummary, clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, _, truth = clean_frames
    assert len(clients) == clean.n_clients == 10_000
    problems = client_problems(clients)
    assert not any_problem(problems).any(), {k: int(v.sum()) for k, v in problems.items()}
    assert clients.client_id.is_unique
    assert clients.duplicated().sum() == 0
    assert (clients.observation_date == "").all()
    assert set(clients.gender) == {"F", "M", ""}
    assert 4 <= clients.region.nunique() <= 8
    assert set(clients.segment) == {"consumer", "small_business", "corporate"}
    assert set(clients.acquisition_channel) == {"web", "store", "partner", "referral"}
    assert 0.01 < (clients.annual_income == "").mean() < 0.2
    # signup before as-of, adults at signup
    signup = pd.to_datetime(clients.signup_date)
    birth = pd.to_datetime(clients.birth_date.where(clients.birth_date != ""))
    assert (signup < pd.Timestamp(clean.as_of_date)).all()
    assert ((signup - birth).dropna() >= pd.Timedelta(days=18 * 365)).all()
    assert list(truth.client_id) == list(clients.client_id)


def test_clean_sales_are_all_valid(clean: GenerationSummary, clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, sales, _ = clean_frames
    assert len(sales) == clean.n_sales
    problems = sales_problems(sales, set(clients.client_id))
    assert not any_problem(problems).any(), {k: int(v.sum()) for k, v in problems.items()}
    assert sales.sale_id.is_unique
    assert sales.duplicated().sum() == 0
    assert (number(sales.quantity) >= 1).all()
    assert sales.unit_price.str.fullmatch(r"\d+\.\d{2}").all()
    assert set(sales.product_category) == {
        "electronics",
        "home",
        "grocery",
        "fashion",
        "sports",
        "premium_services",
    }
    assert set(sales.sales_channel) - {""} == {"online", "store", "phone"}


def test_clean_sales_have_a_realistic_shape(clean: GenerationSummary, clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, sales, _ = clean_frames
    assert 20 <= len(sales) / len(clients) <= 40
    per_client = sales.client_id.value_counts().reindex(clients.client_id, fill_value=0)
    assert 0.01 < (per_client == 0).mean() < 0.15  # some clients never bought anything
    timestamps = sales.sale_date.str.len() > 10
    assert 0.03 < timestamps.mean() < 0.07
    assert 0.4 < (sales.discount == "").mean() < 0.9
    day = pd.to_datetime(sales.sale_date.str.slice(0, 10))
    # The as-of date is the day after the latest sale, and activity spans about three years.
    assert (day.max() + pd.Timedelta(days=1)).date() == clean.as_of_date
    assert (day.max() - day.min()).days in range(3 * 365 - 10, 3 * 365 + 1)


# --------------------------------------------------------------------------------------------------
# The label
# --------------------------------------------------------------------------------------------------


def test_ground_truth_is_a_function_of_the_files_as_written(clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, sales, truth = clean_frames
    np.testing.assert_allclose(true_probability(clients, sales), truth.p_true.astype(float), atol=1e-6)
    assert truth.p_true.str.fullmatch(r"[01]\.\d{6}").all()


def test_label_shares_and_separability(clean: GenerationSummary, clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, _, truth = clean_frames
    unlabeled = (clients.label == "").mean()
    assert 0.12 < unlabeled < 0.18
    labeled = clients.label != ""
    y = clients.label[labeled].astype(int)
    assert 0.20 <= y.mean() <= 0.35
    assert clean.n_labeled == labeled.sum()
    assert clean.n_positive == y.sum()
    auc = roc_auc_score(y, truth.p_true[labeled].astype(float))
    assert 0.75 <= auc <= 0.92


def test_label_depends_on_activity_and_profile(clean_frames: tuple[pd.DataFrame, ...]) -> None:
    clients, sales, _ = clean_frames
    day = pd.to_datetime(sales.sale_date.str.slice(0, 10))
    as_of = day.max() + pd.Timedelta(days=1)
    recent = set(sales.client_id[day >= as_of - pd.Timedelta(days=90)])
    labeled = clients[clients.label != ""].assign(y=lambda d: d.label.astype(int))
    inactive = ~labeled.client_id.isin(recent)
    # Activity: no sale in the last 90 days is a strong churn signal.
    assert labeled.y[inactive].mean() > 2 * labeled.y[~inactive].mean()
    # Profile, among recently active clients only (so it is not activity in disguise).
    active = labeled[~inactive]
    tenure = (as_of - pd.to_datetime(active.signup_date)).dt.days
    assert active.y[tenure < tenure.quantile(0.25)].mean() > active.y[tenure > tenure.quantile(0.75)].mean() + 0.04
    by_channel = active.groupby("acquisition_channel").y.mean()
    assert by_channel["partner"] > by_channel["referral"] + 0.04


# --------------------------------------------------------------------------------------------------
# Bad rows
# --------------------------------------------------------------------------------------------------


def assert_bad_rows_are_counted_and_cover_every_rule(dirty: GenerationSummary) -> None:
    clients = read_raw(dirty.clients_path)
    sales = read_raw(dirty.sales_path)
    truth = read_raw(dirty.ground_truth_path)

    # Exact duplicates are counted apart from bad rows.
    assert clients.duplicated().sum() == dirty.n_duplicate_client_rows > 0
    assert sales.duplicated().sum() == dirty.n_duplicate_sales_rows > 0
    clients = clients.drop_duplicates()
    sales = sales.drop_duplicates()

    client_rules = client_problems(clients)
    bad_clients = any_problem(client_rules)
    assert bad_clients.sum() == dirty.n_bad_client_rows
    for rule, mask in client_rules.items():
        assert mask.any(), rule
        assert mask.sum() == dirty.corruption_counts[rule], rule
    # Every genuine client is still loadable, and only genuine clients are.
    good_ids = clients.client_id[~bad_clients]
    assert list(good_ids) == list(truth.client_id)

    sales_rules = sales_problems(sales, set(good_ids))
    bad_sales = any_problem(sales_rules)
    assert bad_sales.sum() == dirty.n_bad_sales_rows
    for rule, mask in sales_rules.items():
        assert mask.any(), rule
        assert mask.sum() == dirty.corruption_counts[rule], rule
    assert (~bad_sales).sum() == dirty.n_sales
    # Each injected row breaks exactly one rule.
    assert (pd.concat(client_rules, axis=1).sum(axis=1) <= 1).all()
    assert (pd.concat(sales_rules, axis=1).sum(axis=1) <= 1).all()

    assert dirty.n_client_rows == dirty.n_clients + dirty.n_bad_client_rows + dirty.n_duplicate_client_rows


def test_bad_rows_are_counted_and_cover_every_rule(dirty: GenerationSummary) -> None:
    assert_bad_rows_are_counted_and_cover_every_rule(dirty)
    # About the requested fraction of each file.
    assert 0.04 <= (dirty.n_bad_client_rows + dirty.n_duplicate_client_rows) / dirty.n_clients <= 0.06
    assert 0.04 <= (dirty.n_bad_sales_rows + dirty.n_duplicate_sales_rows) / dirty.n_sales <= 0.06


def test_bad_rows_stay_exact_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several chunks (small ones here): ids, fresh client numbers and kinds carry over from chunk to chunk."""
    monkeypatch.setattr(dataset, "CHUNK_CLIENTS", 400)
    summary = generate(tmp_path, n_clients=1_000, seed=3, bad_rows=0.1)
    assert_bad_rows_are_counted_and_cover_every_rule(summary)


def test_corruptions_use_the_varied_bad_values(dirty: GenerationSummary) -> None:
    clients = read_raw(dirty.clients_path)
    sales = read_raw(dirty.sales_path)
    for value in ("2023-02-30", "not-a-date", "2023/01/05"):
        assert (clients.signup_date == value).any(), value
    for value in ("2", "yes"):
        assert (clients.label == value).any(), value
    for value in ("0", "-1", "1.5", "two"):
        assert (sales.quantity == value).any(), value
    assert (number(sales.discount) > 1).any()
    assert (number(sales.discount) < 0).any()


def test_genuine_rows_come_before_their_duplicates(
    dirty: GenerationSummary, clean_frames: tuple[pd.DataFrame, ...]
) -> None:
    """A loader keeping the first row of an id keeps the genuine one, identical to the clean run's."""
    clients = read_raw(dirty.clients_path)
    truth = read_raw(dirty.ground_truth_path)
    first = clients[clients.client_id != ""].drop_duplicates("client_id", keep="first")
    genuine = first[first.client_id.isin(set(truth.client_id))]
    clean_clients = clean_frames[0]
    assert len(genuine) == len(truth)
    pd.testing.assert_frame_equal(genuine.reset_index(drop=True), clean_clients.reset_index(drop=True))

    # Sales: what a first-wins loader keeps is the clean run's sales (ids aside: they number file rows).
    sales = read_raw(dirty.sales_path).drop_duplicates()
    kept = sales[~any_problem(sales_problems(sales, set(truth.client_id)))]
    clean_sales = clean_frames[1]
    pd.testing.assert_frame_equal(
        kept.drop(columns="sale_id").reset_index(drop=True),
        clean_sales.drop(columns="sale_id").reset_index(drop=True),
    )


# --------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_clients": 9}, "n_clients"),
        ({"n_clients": dataset.MAX_CLIENTS + 1}, "n_clients"),
        ({"n_clients": 5000.0}, "n_clients"),
        ({"n_clients": True}, "n_clients"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"bad_rows": -0.01}, "bad_rows"),
        ({"bad_rows": 0.51}, "bad_rows"),
        ({"bad_rows": float("nan")}, "bad_rows"),
        ({"bad_rows": "0.1"}, "bad_rows"),
    ],
)
def test_invalid_arguments_name_the_argument(tmp_path: Path, kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_bounds_are_inclusive(tmp_path: Path) -> None:
    summary = generate(tmp_path, n_clients=10, seed=0, bad_rows=0.5)
    assert summary.n_clients == 10
    assert summary.n_bad_client_rows + summary.n_duplicate_client_rows == 5
    assert summary.as_of_date == dt.date(2025, 1, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ten_clients_give_valid_files_the_loader_accepts(tmp_path: Path, seed: int) -> None:
    summary = generate(tmp_path / "data", n_clients=10, seed=seed)
    clients, sales, truth = (read_raw(p) for p in (summary.clients_path, summary.sales_path, summary.ground_truth_path))
    assert len(clients) == len(truth) == 10
    assert len(sales) == summary.n_sales > 0
    assert not any_problem(client_problems(clients)).any()
    assert not any_problem(sales_problems(sales, set(clients.client_id))).any()
    # The as-of date (the day after the latest sale) is still the fixed one.
    assert (pd.to_datetime(sales.sale_date.str.slice(0, 10)).max() + pd.Timedelta(days=1)).date() == summary.as_of_date

    config = DatasetConfig()
    warehouse = connect(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    try:
        loaded_clients = load_source(str(summary.clients_path), config.clients_spec(), warehouse)
        loaded_sales = load_source(str(summary.sales_path), config.sales_spec(), warehouse)
    finally:
        warehouse.close()
    assert (loaded_clients.rows_loaded, loaded_clients.rows_rejected, loaded_clients.duplicates) == (10, 0, 0)
    assert (loaded_sales.rows_loaded, loaded_sales.rows_rejected, loaded_sales.duplicates) == (summary.n_sales, 0, 0)
