"""Sources given as http(s):// and s3:// URIs are fetched through fsspec and loaded like local files."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from clientml_de.config import DatasetConfig
from clientml_de.load import load_source
from clientml_de.validate import SourceError
from clientml_de.warehouse import Warehouse
from moto.server import ThreadedMotoServer

CONFIG = DatasetConfig()


@pytest.fixture
def http_root(tmp_path: Path, sources: tuple[Path, Path]) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sources[0].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_sources_load(http_root: str, duckdb_warehouse: Warehouse) -> None:
    clients = load_source(f"{http_root}/clients.csv", CONFIG.clients_spec(), duckdb_warehouse)
    sales = load_source(f"{http_root}/sales.csv", CONFIG.sales_spec(), duckdb_warehouse)
    assert (clients.rows_loaded, sales.rows_loaded) == (3, 5)
    assert sales.source_file == f"{http_root}/sales.csv"


def test_http_not_found_names_the_uri(http_root: str, duckdb_warehouse: Warehouse) -> None:
    with pytest.raises(SourceError, match=f"{http_root}/absent.csv: cannot fetch"):
        load_source(f"{http_root}/absent.csv", CONFIG.clients_spec(), duckdb_warehouse)


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,  # boto3 and s3fs both honour it
    }.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    server.stop()


def test_s3_sources_load(s3_endpoint: str, sources: tuple[Path, Path], duckdb_warehouse: Warehouse) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="client-data")
    for path in sources:
        s3.upload_file(str(path), "client-data", f"incoming/{path.name}")

    clients = load_source("s3://client-data/incoming/clients.csv", CONFIG.clients_spec(), duckdb_warehouse)
    sales = load_source("s3://client-data/incoming/sales.csv", CONFIG.sales_spec(), duckdb_warehouse)
    assert (clients.rows_loaded, sales.rows_loaded, sales.rows_rejected) == (3, 5, 0)
