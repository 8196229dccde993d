"""feature_store built on a Spark standalone cluster (a master and a worker, JVMs of their own) equals DuckDB's.

The driver is a separate Python process configured only through the ``CLIENTML_*`` environment, as an Airflow
worker is: a fresh process also means a fresh JVM, where ``SparkSession.builder.getOrCreate()`` in this one
would hand back any local-mode session an earlier test left.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from clientml_de.contract import FEATURE_STORE
from clientml_de.spark_session import session_config
from clientml_de.warehouse import SparkWarehouse, connect
from clientml_testkit.data import Worlds
from clientml_testkit.servers import LOOPBACK, free_port
from clientml_testkit.sparkcluster import StandaloneCluster, listening_addresses
from de_support import by_client, comparable

# The driver: the three DAGs' work, then feature_store written to a Parquet file for this process to compare.
DRIVER = """
import sys
import pyarrow.parquet as pq
from clientml_de.contract import FEATURE_STORE
from clientml_de.tasks import run_all
from clientml_de.warehouse import connect

clients, sales, url, out = sys.argv[1:]
print(run_all(clients, sales, url), flush=True)
with connect(url, read_only=True) as warehouse:
    pq.write_table(warehouse.table(FEATURE_STORE).to_pyarrow(), out)
"""
DRIVER_TIMEOUT_S = 180


def test_the_spark_settings_reach_the_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIENTML_SPARK_MASTER", "spark://10.0.0.1:7077")
    monkeypatch.setenv(
        "CLIENTML_SPARK_CONF", '{"spark.driver.host": "10.0.0.5", "spark.sql.shuffle.partitions": "200"}'
    )
    warehouse = connect(f"spark:///{tmp_path / 'wh'}")
    assert isinstance(warehouse, SparkWarehouse) and warehouse.master == "spark://10.0.0.1:7077"
    config = session_config(warehouse.path, warehouse.conf)
    # The deployment's properties win over ours; the rest of ours stay.
    assert (config["spark.driver.host"], config["spark.sql.shuffle.partitions"]) == ("10.0.0.5", "200")
    assert config["spark.sql.catalogImplementation"] == "hive"
    # A local directory, whatever the cluster's default filesystem: the code writes it with local file APIs.
    assert config["spark.sql.warehouse.dir"] == f"file://{tmp_path / 'wh' / 'tables'}"
    assert connect(f"spark:///{tmp_path}", "local[2]").master == "local[2]"  # an explicit master wins


@pytest.mark.spark
@pytest.mark.slow
def test_feature_store_on_a_standalone_cluster_equals_duckdb(
    tmp_path: Path, spark_cluster: StandaloneCluster, worlds: Worlds, generated_small: Path
) -> None:
    started = time.perf_counter()
    assert listening_addresses(spark_cluster.processes()) == {LOOPBACK}
    out = tmp_path / "feature_store.parquet"
    conf = {
        # Executors connect back to the driver: on a real cluster this is the Airflow worker's address.
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.executor.memory": "512m",
        # Executors run a Python worker for the load_runs row, which must be the driver's Python version.
        "spark.pyspark.python": sys.executable,
        # A cluster whose Hadoop default filesystem is not the local one (HDFS here, with nothing listening):
        # the warehouse directory must still be the local path the URL names.
        "spark.hadoop.fs.defaultFS": f"hdfs://{LOOPBACK}:{free_port()}",
    }
    env = {
        **os.environ,
        "CLIENTML_SPARK_MASTER": spark_cluster.master_url,
        "CLIENTML_SPARK_CONF": json.dumps(conf),
    }
    url = f"spark:///{tmp_path / 'spark-warehouse'}"
    command = [sys.executable, "-c", DRIVER, str(generated_small / "clients.csv"), str(generated_small / "sales.csv")]
    driver = subprocess.Popen([*command, url, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # While the driver runs, every process of the cluster and of the driver listens on loopback only.
    seen: set[str] = set()
    deadline = time.monotonic() + DRIVER_TIMEOUT_S
    while driver.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):  # the driver may end meanwhile
            driver_tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
            seen |= listening_addresses([*spark_cluster.processes(), *driver_tree])
        time.sleep(0.5)
    if driver.poll() is None:  # too slow: stop the driver and its JVM
        for process in [*psutil.Process(driver.pid).children(recursive=True), psutil.Process(driver.pid)]:
            process.kill()
    output = driver.communicate()[0].decode(errors="replace")
    assert driver.returncode == 0, f"driver failed ({driver.returncode}):\n{output[-5000:]}\n{spark_cluster.logs()}"
    assert seen == {LOOPBACK}

    # The work ran in the worker's executors, sized by the driver's CLIENTML_SPARK_CONF.
    apps = [app for app in spark_cluster.state()["completedapps"] if app["name"] == "clientml"]
    assert len(apps) == 1 and apps[0]["memoryperslave"] == 512, spark_cluster.state()
    finished = sum(log.read_text(errors="replace").count("Finished task") for log in spark_cluster.executor_logs())
    assert finished > 20, spark_cluster.logs()
    assert (tmp_path / "spark-warehouse" / "tables").is_dir()

    with connect(worlds.warehouse(generated_small), read_only=True) as duckdb:
        reference = comparable(by_client(duckdb.table(FEATURE_STORE).to_pandas()))
    on_cluster = comparable(by_client(pd.read_parquet(out)))
    assert len(reference) > 1_900 and reference.n_sales_total.sum() > 10_000
    assert list(on_cluster.columns) == list(reference.columns)
    pd.testing.assert_frame_equal(on_cluster, reference, check_exact=False, rtol=1e-9, atol=1e-12)
    print(f"cluster build and comparison: {time.perf_counter() - started:.1f} s; {finished} executor tasks")
