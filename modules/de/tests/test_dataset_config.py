"""The dataset config: defaults, the repository's examples, and errors that name the file, the line and the
field (windows and periods, derived features' names and expressions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clientml_de.config import DatasetConfig, FeatureConfig

REPO_ROOT = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        DatasetConfig.load(path)
    message = str(caught.value)
    assert message.startswith(f"dataset config {path}: "), message
    return message.removeprefix(f"dataset config {path}: ")


def test_defaults_are_valid_and_sorted() -> None:
    knobs = FeatureConfig()
    assert knobs.windows_days == (30, 60, 90, 180, 365, 730)
    assert knobs.periods_days == (90, 365) and knobs.mix_window_days == 365
    assert DatasetConfig().derived_features == ()


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "datasets").glob("*.yaml")), ids=lambda p: p.name)
def test_the_example_configs_load(path: Path) -> None:
    DatasetConfig.load(path)


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ("windows_days: [30, 0]", "line 3, features.windows_days.1: Input should be greater than or equal to 1"),
        ("windows_days: [-7]", "line 3, features.windows_days.0: Input should be greater than or equal to 1"),
        (
            "windows_days: [90, 30]",
            "line 3, features.windows_days: windows_days must be in ascending order, got [90, 30]",
        ),
        ("windows_days: [30, 30, 90]", "line 3, features.windows_days: windows_days lists 30 more than once"),
        ("windows_days: []", "line 3, features.windows_days: windows_days must list at least one day count"),
        ("windows_days: [30, '90']", "line 3, features.windows_days.1: Input should be a valid integer"),
        ("windows_days: [true]", "line 3, features.windows_days.0: Input should be a valid integer"),
        ("windows_days: [7.5]", "line 3, features.windows_days.0: Input should be a valid integer"),
        ("windows_days: [40000]", "line 3, features.windows_days.0: Input should be less than or equal to 36525"),
        (
            "periods_days: [365, 90]",
            "line 3, features.periods_days: periods_days must be in ascending order, got [365, 90]",
        ),
        ("periods_days: [20000]", "line 3, features.periods_days: periods_days: 20000 looks back 40000 days"),
        ("mix_window_days: 0", "line 3, features.mix_window_days: Input should be greater than or equal to 1"),
        ("window_days: [30]", "line 3, features.window_days: Extra inputs are not permitted"),
    ],
)
def test_a_bad_window_or_period_names_the_line_and_field(tmp_path: Path, features: str, expected: str) -> None:
    assert _error(tmp_path, f"name: x\nfeatures:\n  {features}\n").startswith(expected)


def test_every_problem_is_reported_each_with_its_line(tmp_path: Path) -> None:
    text = "name: x\nfeatures:\n  windows_days:\n    - 30\n    - 0\n  periods_days: [90, 90]\nas_of_date: soon\n"
    problems = _error(tmp_path, text).split("; ")
    assert [p.split(":")[0] for p in problems] == [
        "line 7, as_of_date",
        "line 5, features.windows_days.1",
        "line 6, features.periods_days",
    ]


@pytest.mark.parametrize(
    ("derived", "expected"),
    [
        ("{name: r, expression: 'a ** 2'}", "'a ** 2' (column 1) is not allowed: only column names, numbers, + - * /"),
        ("{name: r, expression: 'a +'}", "not a valid expression"),
        ("{name: r, expression: 'a / b.c'}", "'b.c' (column 5) is not allowed"),
        ("{name: r, expression: 'exp(a)'}", "'exp' (column 1) is not allowed as a function"),
        ("{name: r, expression: 'log1p(a, b)'}", "(log1p takes exactly one argument)"),
        ("{name: r, expression: 'a if b else c'}", "'a if b else c' (column 1) is not allowed"),
        ("{name: r, expression: '__import__(\"os\")'}", "'__import__' (column 1) is not allowed as a function"),
        ("{name: r, expression: 'a * \"2\"'}", "(a constant must be a number)"),
        ("{name: r, expression: 'a < b'}", "'a < b' (column 1) is not allowed"),
        ("{name: r, expression: '2 * 3'}", "uses no column"),
    ],
)
def test_a_bad_expression_names_the_line_and_the_derived_feature(tmp_path: Path, derived: str, expected: str) -> None:
    text = f"name: x\nderived_features:\n  - {{name: fine, expression: a / b}}\n  - {derived}\n"
    message = _error(tmp_path, text)
    assert message.startswith("line 4, derived_features.1: derived feature 'r': "), message
    assert expected in message


@pytest.mark.parametrize(
    ("derived", "expected"),
    [
        ("- {name: 2x, expression: a}", "line 3, derived_features.0.name: name '2x' is not a plain identifier"),
        ("- {name: r}", "line 3, derived_features.0.expression: Field required"),
        ("- {name: r, expression: a, note: x}", "line 3, derived_features.0.note: Extra inputs are not permitted"),
        (
            "- {name: r, expression: a}\n  - {name: R, expression: b}",
            "line 2, derived_features: derived feature names must be unique, case ignored: 'R' (item 2) repeats 'r' (item 1)",
        ),
    ],
)
def test_a_bad_derived_feature_entry_names_the_line(tmp_path: Path, derived: str, expected: str) -> None:
    message = _error(tmp_path, f"name: x\nderived_features:\n  {derived}\n")
    assert message.startswith(expected), message


def test_extra_columns_clashing_with_the_contract_or_each_other(tmp_path: Path) -> None:
    text = "name: x\nextra_columns:\n  - {name: tier, type: category}\n  - {name: Tier, type: number}\n"
    assert _error(tmp_path, text) == (
        "line 2, extra_columns: extra column names must be unique, case ignored: 'Tier' (item 2) repeats 'tier' (item 1)"
    )
    text = "name: x\nextra_columns:\n  - {name: Region, type: category}\n"
    assert _error(tmp_path, text) == "line 2, extra_columns: extra columns redefine contract columns: ['Region']"


def test_where_names_the_file_and_line_of_a_place_in_the_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\n\nderived_features:\n  - name: r\n    expression: a / b\n")
    config = DatasetConfig.load(path)
    assert config.where("derived_features", 0) == f"dataset config {path}, line 4"
    assert config.where("derived_features", 0, "expression") == f"dataset config {path}, line 5"
    assert config.where("not_there") == f"dataset config {path}"
    assert DatasetConfig().where("derived_features", 0) == "dataset config"
