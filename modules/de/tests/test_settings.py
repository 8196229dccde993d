"""The one settings object: defaults resolved when read, the warehouse flag, the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from clientml_de.settings import Settings, get_settings


def test_relative_defaults_resolve_against_the_working_directory_when_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLIENTML_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("CLIENTML_MODELS_DIR", raising=False)
    monkeypatch.delenv("CLIENTML_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.models_dir == tmp_path / "modules" / "ds" / "models"
    assert settings.warehouse_url == f"duckdb:///{tmp_path / '.clientml' / 'warehouse.duckdb'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / '.clientml' / 'mlflow.db'}"
    assert not settings.warehouse_url_is_set


def test_a_configured_warehouse_is_reported_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_WAREHOUSE_URL", "duckdb:///somewhere.duckdb")
    assert Settings().warehouse_url_is_set
    assert Settings().warehouse_url == "duckdb:///somewhere.duckdb"


def test_get_settings_reads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_SEED", "3")
    first = get_settings()
    monkeypatch.setenv("CLIENTML_SEED", "4")
    assert get_settings() is first and first.seed == 3
    get_settings.cache_clear()
    assert get_settings().seed == 4


def test_a_bad_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_TEST_SIZE", "1.5")
    with pytest.raises(ValueError, match="test_size"):
        Settings()


def test_variables_in_any_case_set_fields_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("clientml_seed", "5")
    monkeypatch.setenv("CLIENTML_NOT_A_SETTING", "x")
    assert Settings().seed == 5
    assert Settings(seed=3).seed == 3


@pytest.mark.parametrize("name", ["dataset_config", "clients_source", "sales_source", "mlflow_artifacts_dir"])
def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # docker-compose passes `VAR: ${VAR:-}` as an empty string; Path("") would silently mean ".".
    monkeypatch.setenv(f"CLIENTML_{name.upper()}", "")
    value = getattr(Settings(), name)
    assert value is None or (name == "mlflow_artifacts_dir" and value.name == "mlartifacts")
