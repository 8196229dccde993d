"""``clientml serve`` with ``CLIENTML_BUNDLE_S3_URI``: the bundle fetched from S3 (moto, in process), only
the files its manifest lists, ``CHAMPION`` pointed at it, then the usual checks before any worker starts:
a tampered object never serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from clientml_mle.manifest import verify_bundle
from clientml_mle.pointers import MANIFEST_FILE, BundleIntegrityError, read_pointer
from clientml_mle.serve import server
from clientml_mle.serve.fetch import BundleFetchError, fetch_bundle
from moto import mock_aws
from typer.testing import CliRunner

from clientml.cli import app

BUCKET, PREFIX = "bundles-test", "bundles"
URI = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _upload(s3: Any, bundle_dir: Path, *, champion: bool = True, tamper: str | None = None) -> str:
    """Every file of the bundle under <prefix>/<version>/ (``tamper``: that file with a byte changed) and
    an unlisted object beside them; CHAMPION naming it."""
    version = bundle_dir.name
    for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle_dir).as_posix()
        data = bytearray(path.read_bytes())
        if rel == tamper:
            data[len(data) // 2] ^= 0xFF
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{version}/{rel}", Body=bytes(data))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{version}/notes.txt", Body=b"not part of the bundle")
    if champion:
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/CHAMPION", Body=f"{version}\n".encode())
    return version


def test_the_champion_is_fetched_with_only_its_listed_files(
    s3: Any, bundle_versions: list[Path], tmp_path: Path
) -> None:
    version = _upload(s3, bundle_versions[0])
    models = tmp_path / "models"
    assert fetch_bundle(URI, "champion", models, region="us-east-1") == version
    listed = json.loads((bundle_versions[0] / MANIFEST_FILE).read_text())["files"]
    fetched = {p.relative_to(models / version).as_posix() for p in (models / version).rglob("*") if p.is_file()}
    assert fetched == {*listed, MANIFEST_FILE}
    assert read_pointer(models, "CHAMPION") == version
    assert verify_bundle(models / version).version == version
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == sorted(["CHAMPION", version])


def test_a_version_is_fetched_without_a_champion_and_replaces_an_earlier_copy(
    s3: Any, bundle_versions: list[Path], tmp_path: Path
) -> None:
    version = _upload(s3, bundle_versions[1], champion=False)
    models = tmp_path / "models"
    (models / version).mkdir(parents=True)
    (models / version / "left-over").write_text("from an earlier start")
    assert fetch_bundle(f"{URI}/", version, models) == version
    assert not (models / version / "left-over").exists()
    assert verify_bundle(models / version).version == version


def test_what_is_missing_or_malformed_is_named(s3: Any, bundle_versions: list[Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/{PREFIX}/CHAMPION: no such object"):
        fetch_bundle(URI, "champion", models)
    version = bundle_versions[2].name
    with pytest.raises(FileNotFoundError, match=f"{PREFIX}/{version}/{MANIFEST_FILE}: no such object"):
        fetch_bundle(URI, version, models)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/CHAMPION", Body=b"latest")
    with pytest.raises(BundleIntegrityError, match="'latest' is not a bundle version"):
        fetch_bundle(URI, "champion", models)
    with pytest.raises(BundleFetchError, match="CLIENTML_BUNDLE='v1'"):
        fetch_bundle(URI, "v1", models)
    with pytest.raises(BundleFetchError, match="not an s3://bucket/prefix URI"):
        fetch_bundle(f"{BUCKET}/{PREFIX}", "champion", models)
    with pytest.raises(BundleFetchError, match="s3://absent-bucket/CHAMPION: NoSuchBucket"):
        fetch_bundle("s3://absent-bucket", "champion", models)
    assert [p.name for p in models.iterdir() if p.is_dir()] == []  # no half-fetched bundle is left behind


def test_a_manifest_of_another_version_is_refused(s3: Any, bundle_versions: list[Path], tmp_path: Path) -> None:
    first, second = bundle_versions[0], bundle_versions[1]
    _upload(s3, first, champion=False)
    key = f"{PREFIX}/{second.name}/{MANIFEST_FILE}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=(first / MANIFEST_FILE).read_bytes())
    with pytest.raises(BundleIntegrityError, match=f"{key}: describes {first.name}"):
        fetch_bundle(URI, second.name, tmp_path / "models")


def _serve(runner: CliRunner, models: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Path]]:
    """``clientml serve`` as the task definition runs it (models directory not watched), with uvicorn
    replaced by a recorder: the result and the paths the workers would have been given."""
    started: list[Path] = []
    monkeypatch.setattr(server, "serve", lambda config, *args: started.append(config.models_dir))
    env = {"CLIENTML_BUNDLE_S3_URI": URI, "CLIENTML_BUNDLE": "champion", "CLIENTML_RELOAD_POLL_S": "0"}
    return runner.invoke(app, ["serve", "--models-dir", str(models), "--port", "0"], env=env), started


def test_serve_fetches_then_serves_the_verified_bundle(
    s3: Any, bundle_versions: list[Path], tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _upload(s3, bundle_versions[0])
    result, started = _serve(runner, tmp_path / "models", monkeypatch)
    assert result.exit_code == 0, result.output
    assert started == [(tmp_path / "models" / version).resolve()]


def test_a_tampered_object_never_serves(
    s3: Any, bundle_versions: list[Path], tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3, bundle_versions[0], tamper="model.skops")
    result, started = _serve(runner, tmp_path / "models", monkeypatch)
    assert result.exit_code == 1
    assert "model.skops: changed since the bundle was written" in result.output and "Traceback" not in result.output
    assert started == []
