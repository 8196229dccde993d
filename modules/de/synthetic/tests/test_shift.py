"""Shifted drops (``generate(shift=...)``, ``clientml generate --shift``): deterministic, the intended
columns moved by the documented amount, every other column's distribution unchanged, the labels still
drawn from the true probability of the files as written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clientml_synthetic import GenerationSummary, generate
from clientml_synthetic.shift import ACTIVITY_RATE_FACTOR, SHIFTS
from scipy.stats import ks_2samp
from synthetic_files import number, read_raw, true_probability
from typer.testing import CliRunner

from clientml.cli import app

N = 10_000
SEED = 0
OTHER_SEED = 1
Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]  # clients, sales, ground truth


def frames(summary: GenerationSummary) -> Frames:
    return read_raw(summary.clients_path), read_raw(summary.sales_path), read_raw(summary.ground_truth_path)


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Frames]:
    """Drops of 10,000 clients: the default one, each shift of the same seed, and each of another seed."""
    out = {}
    for name, seed, shift in [
        ("base", SEED, ()),
        ("activity", SEED, ("activity",)),
        ("segments", SEED, ("segments",)),
        ("both", SEED, ("activity", "segments")),
        ("activity-other-seed", OTHER_SEED, ("activity",)),
        ("segments-other-seed", OTHER_SEED, ("segments",)),
    ]:
        out[name] = frames(generate(tmp_path_factory.mktemp(name), n_clients=N, seed=seed, shift=shift))
    return out


def sales_per_client(drop: Frames) -> pd.Series:
    clients, sales, _ = drop
    return sales.groupby("client_id").size().reindex(clients.client_id, fill_value=0)


def spend_per_client(drop: Frames) -> pd.Series:
    clients, sales, _ = drop
    amount = number(sales.quantity) * number(sales.unit_price) * (1 - number(sales.discount).fillna(0.0))
    return amount.groupby(sales.client_id).sum().reindex(clients.client_id, fill_value=0.0)


def age_years(clients: pd.DataFrame) -> pd.Series:
    birth = pd.to_datetime(clients.birth_date.where(clients.birth_date != ""))
    return ((pd.Timestamp("2025-01-01") - birth).dt.days / 365.25).dropna()


def same_distribution(a: pd.Series, b: pd.Series) -> bool:
    """Two samples of a number drawn from one distribution: the two-sample KS test does not reject it."""
    return bool(ks_2samp(a.to_numpy(dtype=float), b.to_numpy(dtype=float)).pvalue > 0.01)


def test_a_shifted_drop_is_deterministic_and_the_order_of_shifts_does_not_matter(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", n_clients=1_000, seed=7, bad_rows=0.1, shift=["activity", "segments"])
    b = generate(tmp_path / "b", n_clients=1_000, seed=7, bad_rows=0.1, shift=("segments", "activity", "segments"))
    paths = ("clients_path", "sales_path", "ground_truth_path")
    assert [getattr(a, p).read_bytes() for p in paths] == [getattr(b, p).read_bytes() for p in paths]
    assert a.shift == b.shift == ["activity", "segments"]
    plain = generate(tmp_path / "plain", n_clients=1_000, seed=7, bad_rows=0.1)
    assert plain.shift == [] and plain.sales_path.read_bytes() != a.sales_path.read_bytes()


def test_activity_shift_halves_the_purchases_and_moves_nothing_else(drops: dict[str, Frames]) -> None:
    base, shifted = drops["base"], drops["activity"]
    ratio = sales_per_client(shifted).mean() / sales_per_client(base).mean()
    assert ratio == pytest.approx(ACTIVITY_RATE_FACTOR, abs=0.03)
    assert spend_per_client(shifted).mean() / spend_per_client(base).mean() == pytest.approx(
        ACTIVITY_RATE_FACTOR, abs=0.05
    )
    assert not same_distribution(sales_per_client(base), sales_per_client(shifted))
    # Baskets are drawn as before: the mix of categories and the mean quantity per sale stay.
    assert number(shifted[1].quantity).mean() == pytest.approx(number(base[1].quantity).mean(), rel=0.03)
    base_mix = base[1].product_category.value_counts(normalize=True)
    assert (shifted[1].product_category.value_counts(normalize=True) - base_mix).abs().max() < 0.01
    # The profiles are drawn before the sales: the same seed gives the same clients, but for their labels.
    profile = [c for c in base[0].columns if c != "label"]
    pd.testing.assert_frame_equal(base[0][profile], shifted[0][profile])
    # Another seed: the same profile distributions, the purchases halved all the same.
    other = drops["activity-other-seed"]
    assert same_distribution(age_years(base[0]), age_years(other[0]))
    assert same_distribution(number(base[0].annual_income).dropna(), number(other[0].annual_income).dropna())
    assert sales_per_client(other).mean() / sales_per_client(base).mean() == pytest.approx(
        ACTIVITY_RATE_FACTOR, abs=0.03
    )


def test_segments_shift_moves_the_segment_mix_only(drops: dict[str, Frames]) -> None:
    base, shifted = drops["base"], drops["segments"]
    mix = shifted[0].segment.value_counts(normalize=True)
    assert mix.to_dict() == pytest.approx({"consumer": 0.40, "small_business": 0.35, "corporate": 0.25}, abs=0.02)
    assert base[0].segment.value_counts(normalize=True)["consumer"] == pytest.approx(0.70, abs=0.02)
    # Only consumers move; the income and the sales were drawn before, from the original segment.
    moved = base[0].segment != shifted[0].segment
    assert (base[0].segment[moved] == "consumer").all() and moved.mean() == pytest.approx(0.30, abs=0.02)
    assert base[1].equals(shifted[1])
    unchanged = [c for c in base[0].columns if c not in ("segment", "label")]
    pd.testing.assert_frame_equal(base[0][unchanged], shifted[0][unchanged])
    # Another seed: income, age and purchases keep their distributions, the mix moves all the same.
    other = drops["segments-other-seed"]
    assert same_distribution(number(base[0].annual_income).dropna(), number(other[0].annual_income).dropna())
    assert same_distribution(age_years(base[0]), age_years(other[0]))
    assert sales_per_client(other).mean() == pytest.approx(sales_per_client(base).mean(), rel=0.05)
    assert other[0].segment.value_counts(normalize=True)["consumer"] == pytest.approx(0.40, abs=0.02)


@pytest.mark.parametrize("name", ["activity", "segments", "both"])
def test_labels_still_follow_the_true_probability_of_the_files_as_written(drops: dict[str, Frames], name: str) -> None:
    clients, sales, truth = drops[name]
    p_true = truth.p_true.astype(float).to_numpy()
    np.testing.assert_allclose(true_probability(clients, sales), p_true, atol=1e-6)
    labeled = clients.label != ""
    # The drawn labels agree with p_true: their rate is the mean p_true of the labeled clients.
    assert clients.label[labeled].astype(int).mean() == pytest.approx(p_true[labeled].mean(), abs=0.015)


def test_less_activity_means_more_churn(drops: dict[str, Frames]) -> None:
    assert drops["activity"][2].p_true.astype(float).mean() > drops["base"][2].p_true.astype(float).mean() + 0.03


@pytest.mark.parametrize("shift", ["volume", "Activity", ""])
def test_an_unknown_shift_names_the_argument_and_writes_nothing(tmp_path: Path, shift: str) -> None:
    with pytest.raises(ValueError, match="shift"):
        generate(tmp_path / "out", n_clients=10, shift=[shift])
    with pytest.raises(ValueError, match="shift"):
        generate(tmp_path / "out", n_clients=10, shift="activity")  # a string, not a collection of names
    assert not (tmp_path / "out").exists()


def test_the_cli_option(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["generate", "--out", str(tmp_path / "d"), "--clients", "50", "--shift", "activity"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["shift"] == ["activity"]
    wrong = runner.invoke(app, ["generate", "--out", str(tmp_path / "e"), "--clients", "50", "--shift", "volume"])
    assert wrong.exit_code != 0 and "shift ['volume'] unknown" in wrong.output
    help_text = runner.invoke(app, ["generate", "--help"]).output
    assert all(name in help_text for name in SHIFTS)
