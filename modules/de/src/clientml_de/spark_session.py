"""The Spark session behind a ``spark:///dir`` warehouse: its properties, in one place.

Ours make the directory a self-contained warehouse: the Hive metastore (embedded Derby) and the tables live
under it. Table and staging locations are ``file:`` URIs, because a bare path means the cluster's default
Hadoop filesystem (``fs.defaultFS``, HDFS on many clusters), while the code writes the directory with local
file APIs (DuckDB's Parquet staging files, ``mkdir``). So on a cluster the directory must be a filesystem
mounted at the same path on the driver and on every executor (on one machine, any local path).

The ``CLIENTML_SPARK_CONF`` properties are applied after ours and win: what reaches a cluster (the driver's
address, executor memory, shuffle partitions, anything else Spark reads) is the deployment's to choose.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def session_config(directory: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The Spark properties of the session of warehouse ``directory``: ours, then ``extra`` over them."""
    metastore = f"jdbc:derby:;databaseName={directory / 'metastore_db'};create=true"
    ours = {
        "spark.app.name": "clientml",
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.warehouse.dir": (directory / "tables").as_uri(),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={directory}",
    }
    return {**ours, **extra}


def open_session(directory: Path, master: str, extra: Mapping[str, str]) -> Any:
    """The process's Spark session for warehouse ``directory`` (created on first use, then shared)."""
    from pyspark.sql import SparkSession

    directory.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(master)
    for key, value in session_config(directory, extra).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
