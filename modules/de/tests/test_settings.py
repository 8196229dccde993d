"""The settings read ``CLIENTML_*`` variables themselves, cheaply enough for a DAG file's parse."""

from __future__ import annotations

import subprocess
import sys

import pytest
from clientml_de.settings import Settings, get_settings
from pydantic import ValidationError


def test_variables_set_fields_in_any_case_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_TASK_RETRIES", "0")
    monkeypatch.setenv("clientml_seed", "5")
    monkeypatch.setenv("CLIENTML_WAREHOUSE_URL", "duckdb:///w.duckdb")
    monkeypatch.setenv("CLIENTML_NOT_A_SETTING", "x")

    settings = get_settings()
    assert (settings.task_retries, settings.seed, settings.warehouse_url) == (0, 5, "duckdb:///w.duckdb")
    assert settings.warehouse_url_is_set
    assert Settings(task_retries=3).task_retries == 3


def test_unset_variables_keep_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIENTML_TASK_RETRIES", raising=False)
    monkeypatch.delenv("CLIENTML_WAREHOUSE_URL", raising=False)
    settings = Settings()
    assert settings.task_retries == 2
    assert settings.warehouse_url == f"duckdb:///{settings.state_dir / 'warehouse.duckdb'}"


def test_a_wrong_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_TASK_RETRIES", "-1")
    with pytest.raises(ValidationError, match="task_retries"):
        get_settings()


def test_importing_the_settings_does_not_import_pydantic_settings() -> None:
    check = "import sys, clientml_de.settings; print('pydantic_settings' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
