"""``clientml pipeline`` end to end, as a user runs it: a subprocess, Airflow embedded."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clientml_de.warehouse import connect

pytestmark = pytest.mark.airflow
REPO_ROOT = Path(__file__).resolve().parents[3]
CLIENTML = Path(sys.executable).parent / "clientml"


def run_pipeline(
    tmp_path: Path, clients: Path, sales: Path, warehouse: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    # The suite's Airflow home (conftest): its metadata database is created once, not per test. The ETL alone:
    # the monitoring loop after it is tested at the root (tests/test_loop.py).
    command = [str(CLIENTML), "pipeline", "--clients", str(clients), "--sales", str(sales), "--warehouse", warehouse]
    command += ["--airflow-home", os.environ["AIRFLOW_HOME"], "--no-loop", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def _files(summary: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        f["table"]: (f["rows_read"], f["rows_loaded"], f["rows_rejected"], f["duplicates"]) for f in summary["files"]
    }


def _other_generator(folder: Path, seed: int = 5) -> dict[str, tuple[int, int, int, int]]:
    """A second, independent generator of contract data (plain ``random``), with known bad rows.

    Different id formats, column order, quoting and timestamps from ``clientml generate``.
    Returns the exact counts (read, loaded, rejected, duplicates) the pipeline must report.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clients = [
        {
            "label": rng.choice(["0", "1", ""]),
            "client_id": f"cust-{i:05d}",
            "signup_date": (date(2019, 1, 1) + timedelta(days=rng.randrange(1500))).isoformat(),
            "region": rng.choice(["Île-de-France", "Bretagne", "Provence, Alpes", ""]),
            "annual_income": f"{rng.uniform(0, 2e5):.2f}",
        }
        for i in range(300)
    ]
    bad_clients = [
        {"client_id": "cust-bad-1", "signup_date": "2021-02-29", "label": "", "region": "", "annual_income": ""},
        {"client_id": "", "signup_date": "2021-01-01", "label": "1", "region": "", "annual_income": ""},
        {"client_id": "cust-bad-2", "signup_date": "2021-01-01", "label": "", "region": "", "annual_income": "-1"},
    ]
    rows = clients + bad_clients + [clients[0], clients[1]]  # two exact duplicates
    with (folder / "clients.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["label", "client_id", "signup_date", "region", "annual_income"])
        writer.writeheader()
        writer.writerows(rows)

    sales = []
    for i in range(3000):
        stamp = date(2022, 1, 1) + timedelta(days=rng.randrange(700))
        sales.append(
            {
                "sale_id": f"T{i}",
                "client_id": rng.choice(clients)["client_id"],
                "sale_date": f"{stamp.isoformat()}T{rng.randrange(24):02d}:15:00Z",
                "product_category": rng.choice(["books", "music", "games"]),
                "quantity": str(rng.randint(1, 4)),
                "unit_price": f"{rng.uniform(1, 60):.2f}",
                "discount": rng.choice(["", "0.1", "0"]),
                "sales_channel": rng.choice(["app", "shop"]),
            }
        )
    bad_sales = [
        {**sales[0], "sale_id": "T-bad-1", "client_id": "cust-bad-1"},  # client was quarantined
        {**sales[0], "sale_id": "T-bad-2", "quantity": "0"},
        {**sales[0], "sale_id": "T-bad-3", "unit_price": "abc"},
        {**sales[0], "sale_id": "T-bad-4", "discount": "1.01"},
        {**sales[1], "sale_id": "T1", "quantity": "9"},  # duplicate sale_id, different content
    ]
    with (folder / "sales.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(sales[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(sales + bad_sales + [sales[5]])
    return {"clients": (305, 300, 3, 2), "sales": (3006, 3000, 5, 1)}


def test_pipeline_on_data_from_another_generator_counts_exactly(tmp_path: Path) -> None:
    expected = _other_generator(tmp_path / "data")
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    summary = _summary(run_pipeline(tmp_path, tmp_path / "data/clients.csv", tmp_path / "data/sales.csv", url))

    assert _files(summary) == expected
    assert summary["feature_store"]["rows"] == 300
    assert [run["state"] for run in summary["dag_runs"]] == ["success"] * 3
    assert 100 < summary["peak_rss_mb"] < 4096  # the process's high-water mark, Airflow and the tasks included


def _tables(url: str) -> dict[str, pd.DataFrame]:
    warehouse = connect(url)
    tables = {}
    for name in ("clients", "sales", "feature_store", "rejected_rows"):
        frame = warehouse.table(name).to_pandas().drop(columns=["loaded_at"], errors="ignore")
        tables[name] = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
    warehouse.close()
    return tables


def test_running_twice_leaves_the_same_tables(tmp_path: Path, generated_small: Path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    clients, sales = generated_small / "clients.csv", generated_small / "sales.csv"
    first = _summary(run_pipeline(tmp_path, clients, sales, url))
    before = _tables(url)
    second = _summary(run_pipeline(tmp_path, clients, sales, url))
    after = _tables(url)

    assert _files(first) == _files(second)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], obj=name)


def test_missing_column_fails_naming_file_and_column(tmp_path: Path, generated_small: Path) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    _summary(run_pipeline(tmp_path, generated_small / "clients.csv", generated_small / "sales.csv", url))
    before = _tables(url)
    broken = tmp_path / "sales_without_price.csv"
    pd.read_csv(generated_small / "sales.csv", dtype=str).drop(columns=["unit_price"]).to_csv(broken, index=False)

    result = run_pipeline(tmp_path, generated_small / "clients.csv", broken, url)

    assert result.returncode == 1
    assert f"{broken}: required column(s) missing: unit_price" in result.stderr.splitlines()[-1]
    after = _tables(url)
    for name in ("sales", "feature_store"):
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


@pytest.mark.realdata
@pytest.mark.parametrize("dataset", ["berka", "telco"])
def test_real_dataset_gives_one_feature_row_per_valid_client(tmp_path: Path, real_data: Path, dataset: str) -> None:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    config = REPO_ROOT / "configs" / "datasets" / f"{dataset}.yaml"
    source = real_data / dataset
    summary = _summary(
        run_pipeline(tmp_path, source / "clients.csv", source / "sales.csv", url, "--dataset-config", str(config))
    )
    files = _files(summary)
    n_clients = sum(1 for _ in (source / "clients.csv").open(encoding="utf-8")) - 1
    assert files["clients"][0] == n_clients
    assert all(read == loaded + rejected + dups for read, loaded, rejected, dups in files.values())
    assert summary["feature_store"]["rows"] == files["clients"][1]

    warehouse = connect(url)
    features = warehouse.table("feature_store").to_pandas()
    warehouse.close()
    assert features.client_id.is_unique
    if dataset == "berka":
        assert {"district", "loan_amount", "district_unemployment_96"} <= set(features.columns)
        assert features.n_sales_total.gt(0).all()  # every Berka client has pre-loan transactions
    else:
        assert {"tenure", "monthlyCharges", "paymentMethod"} <= set(features.columns)
        assert features.n_sales_total.eq(0).all()  # Telco has no activity rows
        assert features.label.mean() == pytest.approx(1869 / 7043)
        # The config's derived features: null where the tenure is 0 (a division by zero).
        per_month = features.totalCharges / features.tenure.where(features.tenure != 0)
        pd.testing.assert_series_equal(features.charges_per_tenure_month, per_month, check_names=False)
        assert features.charges_per_tenure_month.isna().sum() == features.tenure.eq(0).sum() > 0


def test_a_missing_local_file_fails_at_once_naming_it(tmp_path: Path, generated_small: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = run_pipeline(tmp_path, missing, generated_small / "sales.csv", f"duckdb:///{tmp_path / 'w.duckdb'}")

    assert result.returncode == 1
    assert result.stderr.strip() == f"error: clients file {missing}: file not found"
    assert not (tmp_path / "w.duckdb").exists()


# (case folder under tests/cases, sales file, (read, loaded, rejected, duplicates) per table)
ISSUE_CASES = [
    ("csv-unclosed-quote", "sales.csv", {"clients": (1, 1, 0, 0), "sales": (4, 3, 1, 0)}),
    ("csv-unclosed-quote", "sales_400.csv", {"clients": (1, 1, 0, 0), "sales": (399, 398, 1, 0)}),
    ("csv-huge-price", "sales.csv", {"clients": (1, 1, 0, 0), "sales": (1, 0, 1, 0)}),
    ("csv-utf8-bom", "sales.csv", {"clients": (1, 1, 0, 0), "sales": (1, 1, 0, 0)}),
]


@pytest.mark.parametrize(("case", "sales", "expected"), ISSUE_CASES, ids=[f"{c[0]}-{c[1]}" for c in ISSUE_CASES])
def test_issue_cases_run_through_the_pipeline(
    tmp_path: Path, case: str, sales: str, expected: dict[str, tuple[int, int, int, int]]
) -> None:
    folder = Path(__file__).parent / "cases" / case
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    summary = _summary(run_pipeline(tmp_path, folder / "clients.csv", folder / sales, url))

    assert _files(summary) == expected
    assert summary["feature_store"]["rows"] == 1
