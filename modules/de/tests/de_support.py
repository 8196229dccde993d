"""Hand-written sources shared by the de tests."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
from clientml_de.warehouse import Warehouse

CLIENT_HEADER = [
    "client_id", "signup_date", "birth_date", "gender", "region", "segment",
    "acquisition_channel", "annual_income", "label", "observation_date",
]  # fmt: skip
SALES_HEADER = [
    "sale_id", "client_id", "sale_date", "product_category", "quantity", "unit_price", "discount", "sales_channel",
]  # fmt: skip

GOOD_CLIENTS = [
    ["c1", "2020-01-15", "1980-05-01", "F", "north", "consumer", "web", "52000", "1", ""],
    ["c2", "2021-06-01", "", "M", "south", "corporate", "store", "", "0", "2023-06-01"],
    ["c3", "2022-01-01", "1990-01-01", "", "north", "consumer", "web", "1000.5", "", ""],
]
GOOD_SALES = [
    ["s1", "c1", "2023-12-01", "home", "2", "10.50", "0.1", "online"],
    ["s2", "c1", "2023-12-20T10:00:00", "grocery", "1", "3.33", "", "store"],
    ["s3", "c2", "2023-05-01", "home", "1", "100", "", "online"],
    ["s4", "c2", "2023-07-01", "home", "1", "100", "", "online"],  # after c2's observation date
    ["s5", "c1", "2023-02-01", "premium services", "3", "9.99", "0.5", "phone"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


CASES = Path(__file__).parent / "cases"
"""Inputs that failed before the loader checked structure, encodings and number ranges (one folder each)."""


def csv_bytes(header: list[str], rows: list[list[str]], newline: bytes = b"\n") -> bytes:
    """A CSV file's bytes: the header and the rows joined with commas (no quoting: the fields are plain)."""
    return b"".join(",".join(row).encode() + newline for row in [header, *rows])


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rejected_rows(warehouse: Warehouse, table: str) -> list[dict[str, Any]]:
    """The quarantined rows of ``table``'s latest load, by line."""
    frame = warehouse.table("rejected_rows").to_pandas()
    return list(frame[frame.source_table == table].sort_values("line_number").to_dict("records"))


def by_client(features: pd.DataFrame) -> pd.DataFrame:
    """``feature_store`` rows sorted by client, ``as_of_date`` as dates (engines return dates or timestamps)."""
    features = features.copy()
    features["as_of_date"] = pd.to_datetime(features["as_of_date"]).dt.date
    return features.sort_values("client_id").reset_index(drop=True)


def comparable(features: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``by_client`` as every engine gives them alike: no ``created_at``, every number a float64."""
    frame = features.drop(columns=["created_at"]).copy()
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) and column != "label":
            frame[column] = frame[column].astype("float64")
    frame["label"] = frame["label"].astype("float64")
    return frame
