"""Feature-store access and the feature schema."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from clientml_mle.features import (
    feature_columns,
    latest_rows,
    table_signal,
    training_frame,
    unlabeled_rows,
    wait_for_table,
)
from clientml_mle.schema import FeatureSpec, coerce_frame, infer_feature_specs, records_frame
from clientml_testkit.data import load_sources
from clientml_testkit.servers import free_port


def _small_store(path: Path) -> str:
    """A hand-made feature_store: two as-of dates for c1 and c2, DECIMAL and boolean features."""
    con = duckdb.connect(str(path))
    con.execute(
        """
        CREATE TABLE feature_store AS SELECT * FROM (VALUES
            ('c1', DATE '2024-01-01', 1,    'a', CAST(3 AS DECIMAL(38,0)), 1.5,  TRUE,  'v1', TIMESTAMP '2024-06-01'),
            ('c1', DATE '2024-06-01', NULL, 'b', CAST(4 AS DECIMAL(38,0)), NULL, NULL,  'v1', TIMESTAMP '2024-06-01'),
            ('c2', DATE '2024-06-01', 0,    NULL, CAST(5 AS DECIMAL(38,0)), 2.5, FALSE, 'v1', TIMESTAMP '2024-06-01'),
            ('c2', DATE '2024-01-01', NULL, 'a', CAST(1 AS DECIMAL(38,0)), 0.5,  TRUE,  'v1', TIMESTAMP '2024-06-01'),
            ('c3', DATE '2024-06-01', NULL, 'a', NULL,                      NULL, TRUE,  'v1', TIMESTAMP '2024-06-01')
        ) AS t(client_id, as_of_date, label, segment, n_sales, spend, active, feature_set_version, created_at)
        """
    )
    con.close()
    return f"duckdb:///{path}"


def test_training_frame_is_labeled_sorted_and_typed(session_frame: pd.DataFrame) -> None:
    df = session_frame
    assert df["label"].notna().all()
    assert set(df["label"].unique()) == {0.0, 1.0}
    assert list(df["client_id"]) == sorted(df["client_id"])
    types = df.attrs["feature_types"]
    assert set(types) == set(feature_columns(df))
    assert types["segment"] == "category"
    assert types["n_sales_30d"] == "integer"  # a DECIMAL(38, 0) in DuckDB
    assert types["spend_total"] == "number"
    for name, kind in types.items():
        expected = object if kind == "category" else np.float64
        assert df[name].dtype == expected, name
    assert "client_id" not in feature_columns(df) and "created_at" not in feature_columns(df)


def test_training_frame_as_of_filter(warehouse_url: str, session_frame: pd.DataFrame) -> None:
    assert len(training_frame(warehouse_url, as_of=date(2000, 1, 1))) == 0
    assert len(training_frame(warehouse_url, as_of=date(2100, 1, 1))) == len(session_frame)


def test_latest_and_unlabeled_rows(tmp_path: Path) -> None:
    url = _small_store(tmp_path / "small.duckdb")
    latest = latest_rows(url, ["c1", "c2", "unknown"])
    assert list(latest["client_id"]) == ["c1", "c2"]
    assert [str(d)[:10] for d in latest["as_of_date"]] == ["2024-06-01", "2024-06-01"]
    assert latest["n_sales"].tolist() == [4.0, 5.0]
    assert np.isnan(latest["active"].iloc[0]) and latest["active"].iloc[1] == 0.0  # a null boolean stays null
    assert latest_rows(url, []).empty
    # Ids are data, not SQL: quotes, a NUL, control characters and non-ASCII are looked up as themselves.
    hostile = ["c1' OR '1'='1", "c1'); DROP TABLE feature_store; --", "\x00", "c1\x00", "\x1b[31m", "é😀", "c1 "]
    assert latest_rows(url, hostile).empty
    assert list(latest_rows(url, [*hostile, "c2"])["client_id"]) == ["c2"]
    assert list(latest_rows(url, ["c3"])["client_id"]) == ["c3"]

    training = training_frame(url)
    assert list(training["client_id"]) == ["c1", "c2"]
    assert training.attrs["feature_types"] == {
        "segment": "category",
        "n_sales": "integer",
        "spend": "number",
        "active": "boolean",
    }

    # c1's newest row is unlabeled (its older labeled row does not matter); c2's newest is labeled.
    unlabeled = unlabeled_rows(url)
    assert list(unlabeled["client_id"]) == ["c1", "c3"]
    assert unlabeled["label"].isna().all()
    assert unlabeled["segment"].tolist() == ["b", "a"]
    assert np.isnan(unlabeled["spend"].iloc[0])


def test_wait_for_table_times_out_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "absent.duckdb"
    url = f"duckdb:///{path}"
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        wait_for_table(url, timeout_s=0.3, poll_s=0.1)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "'feature_store'" in message and url in message and "0.3 s" in message
    assert not path.exists(), "waiting must not create an empty DuckDB file"


def test_wait_for_table_times_out_when_the_table_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE clients (x INT)").close()
    with pytest.raises(TimeoutError, match="'feature_store' did not appear"):
        wait_for_table(f"duckdb:///{path}", timeout_s=0.2, poll_s=0.05)


def test_wait_for_table_returns_when_the_table_appears(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "late.duckdb"

    def create_later() -> None:
        time.sleep(0.5)
        _small_store(path)

    thread = threading.Thread(target=create_later)
    caplog.set_level(logging.INFO, logger="clientml_mle.features")
    thread.start()
    try:
        started = time.monotonic()
        wait_for_table(f"duckdb:///{path}", timeout_s=20, poll_s=0.1)
        assert time.monotonic() - started < 15
    finally:
        thread.join()
    assert "waiting for table 'feature_store'" in caplog.text
    assert "is now available" in caplog.text


def test_wait_for_table_rejects_a_bad_url() -> None:
    from clientml_de.warehouse import WarehouseError

    with pytest.raises(WarehouseError, match="unknown scheme"):
        wait_for_table("mysql://nowhere/db", timeout_s=1, poll_s=0.1)


def test_infer_feature_specs_from_pandas_dtypes() -> None:
    df = pd.DataFrame(
        {
            "cat": ["b", None, "a", "b"],
            "n": [1, 2, 3, 4],
            "x": [0.5, np.nan, 1.0, 2.0],
            "flag": [True, False, True, True],
        }
    )
    specs = {s.name: s for s in infer_feature_specs(df, ["cat", "n", "x", "flag"])}
    assert specs["cat"] == FeatureSpec(name="cat", type="category", categories=["a", "b"], nullable=True)
    assert specs["n"].type == "integer" and not specs["n"].nullable and specs["n"].categories is None
    assert specs["x"].type == "number" and specs["x"].nullable
    assert specs["flag"].type == "boolean"
    with pytest.raises(KeyError, match="nope"):
        infer_feature_specs(df, ["nope"])
    # True/False with nulls (an object column in pandas) is still a boolean, not a category.
    flags = pd.DataFrame({"vip": [True, None, False], "word": ["yes", None, "no"]})
    assert [s.type for s in infer_feature_specs(flags, ["vip", "word"])] == ["boolean", "category"]


def test_a_boolean_feature_takes_true_false_and_nothing_else() -> None:
    specs = [FeatureSpec(name="vip", type="boolean")]
    frame = records_frame([{"vip": True}, {"vip": 0}, {"vip": "false"}, {"vip": None}, {"vip": 1.0}], specs)
    assert frame["vip"].tolist()[:3] == [1.0, 0.0, 0.0] and np.isnan(frame["vip"].iloc[3])
    for wrong in (2, -1, 0.5, "maybe"):
        with pytest.raises(ValueError, match="'vip'"):
            records_frame([{"vip": wrong}], specs)


def test_records_frame_accepts_nulls_and_coerces() -> None:
    specs = [
        FeatureSpec(name="cat", type="category", categories=["a"], nullable=True),
        FeatureSpec(name="n", type="integer", nullable=False),
        FeatureSpec(name="flag", type="boolean", nullable=False),
    ]
    frame = records_frame(
        [{"cat": "a", "n": 3, "flag": True}, {"cat": None, "n": None, "flag": None}, {"extra": 1}, {"n": "7"}],
        specs,
    )
    assert list(frame.columns) == ["cat", "n", "flag"]
    assert frame["cat"].tolist() == ["a", None, None, None]
    assert frame["n"].dtype == np.float64 and frame["flag"].dtype == np.float64
    assert frame["n"].iloc[0] == 3.0 and np.isnan(frame["n"].iloc[1]) and frame["n"].iloc[3] == 7.0
    assert frame["flag"].iloc[0] == 1.0 and np.isnan(frame["flag"].iloc[1])
    with pytest.raises(ValueError, match="'n'"):
        records_frame([{"n": "seven"}], specs)
    assert coerce_frame(pd.DataFrame({"cat": [1]}), specs)["cat"].tolist() == ["1"]


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["created_at"]).copy()
    out["as_of_date"] = pd.to_datetime(out["as_of_date"]).dt.date
    return out.reset_index(drop=True)


def _same_reads(url: str, reference_url: str) -> None:
    for read in (training_frame, unlabeled_rows):
        got, expected = read(url), read(reference_url)
        assert got.attrs["feature_types"] == expected.attrs["feature_types"]
        pd.testing.assert_frame_equal(_comparable(got), _comparable(expected), check_exact=False, rtol=1e-9)
    # The watching trainer's signal: the same counts and versions (created_at is each build's own time).
    signal, reference = table_signal(url), table_signal(reference_url)
    assert signal is not None and reference is not None and signal.max_created_at is not None
    assert replace(signal, max_created_at=None) == replace(reference, max_created_at=None)
    ids = ["C0000003", "C0000016", "nobody", "C0000003' OR 'a'='a", "C0000016\u00e9", "C0000016\\"]
    pd.testing.assert_frame_equal(
        _comparable(latest_rows(url, ids)), _comparable(latest_rows(reference_url, ids)), rtol=1e-9
    )


def test_reads_are_the_same_on_postgres(source_dir: Path, warehouse_url: str, postgres_url: str) -> None:
    load_sources(postgres_url, source_dir)
    wait_for_table(postgres_url, timeout_s=5, poll_s=0.5)
    _same_reads(postgres_url, warehouse_url)


@pytest.mark.spark
@pytest.mark.slow
def test_reads_are_the_same_on_spark(source_dir: Path, warehouse_url: str, tmp_path: Path) -> None:
    url = f"spark:///{tmp_path / 'spark'}"
    load_sources(url, source_dir)
    _same_reads(url, warehouse_url)


def test_wait_for_table_treats_an_unreachable_server_as_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://user:hunter2@127.0.0.1:{free_port()}/db"  # a port nobody listens on
    caplog.set_level(logging.INFO, logger="clientml_mle.features")
    with pytest.raises(TimeoutError, match="not reachable yet") as info:
        wait_for_table(url, timeout_s=0.5, poll_s=0.2)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    assert "hunter2" not in caplog.text
