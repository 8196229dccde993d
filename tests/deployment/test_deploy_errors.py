"""``make deploy | rollback | destroy`` stop at once, naming what is missing: a variable, a tool, credentials,
a bundle. Nothing here reaches AWS: the credential chain finds nothing and the instance metadata lookup is
off, or S3 is moto's in-process mock."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from clientml_deploy.__main__ import app
from clientml_deploy.bundles import BundleBucket, publish
from clientml_deploy.errors import DeployError
from clientml_testkit.fixtures import unavailable
from moto import mock_aws
from typer.testing import CliRunner

KEY = "k" * 32
# No profile, no keys, no instance metadata: boto3 finds no credentials without a network call.
NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
}
VARIABLES: dict[str, str | None] = {"ENVIRONMENT": "staging", "TF_STATE_BUCKET": "state-bucket", "TF_VAR_api_key": KEY}


def _fails(command: str, env: dict[str, str | None], message: str) -> None:
    result = CliRunner().invoke(app, [command], env={**NO_CREDENTIALS, **env})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.startswith("error: ") and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENVIRONMENT": None}, "ENVIRONMENT is not set: staging or production"),
        ({"ENVIRONMENT": "prod"}, "ENVIRONMENT: Input should be 'staging' or 'production'"),
        ({"TF_STATE_BUCKET": ""}, "TF_STATE_BUCKET is not set: the S3 bucket of the Terraform state"),
        ({"TF_VAR_api_key": None}, "TF_VAR_api_key is not set: the API key"),
        ({"SMOKE_TIMEOUT_S": "soon"}, "SMOKE_TIMEOUT_S: Input should be a valid number"),
        ({"BUNDLE": "latest"}, "BUNDLE: Value error, neither 'champion' nor a bundle version"),
    ],
)
def test_a_missing_or_malformed_variable_is_named(env: dict[str, str | None], message: str) -> None:
    for command in ("deploy", "rollback", "destroy"):
        _fails(command, {**VARIABLES, **env}, message)


@pytest.mark.terraform
def test_missing_tools_are_named(tmp_path: Path) -> None:
    _fails("deploy", {**VARIABLES, "PATH": str(tmp_path)}, "terraform is not on PATH")
    terraform = shutil.which("terraform")
    if terraform is None:
        unavailable("terraform on PATH")
        return
    (tmp_path / "terraform").symlink_to(terraform)
    _fails("deploy", {**VARIABLES, "PATH": str(tmp_path)}, "docker is not on PATH")


@pytest.mark.terraform
def test_missing_credentials_are_named() -> None:
    for command in ("rollback", "destroy"):
        _fails(command, VARIABLES, "checking the AWS credentials: no AWS credentials (set AWS_PROFILE")


@pytest.fixture
def bundle_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[BundleBucket]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bundles-test")
        yield BundleBucket.at(s3, "s3://bundles-test/bundles")


def test_a_bundle_found_nowhere_is_named(bundle_bucket: BundleBucket, tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(
        DeployError,
        match=r"BUNDLE=champion: no CHAMPION pointer in .*models \(MODELS_DIR\) nor at s3://bundles-test/bundles/CHAMPION",
    ):
        publish("champion", models, bundle_bucket)
    version = "20250101T120000.123456Z-3f2a9c1b7d4e"
    with pytest.raises(
        DeployError,
        match=f"BUNDLE={version}: neither in .*models \\(MODELS_DIR\\) nor at s3://bundles-test/bundles/{version}/",
    ):
        publish(version, models, bundle_bucket)
    bundle_bucket.write("CHAMPION", f"{version}\n".encode())
    assert publish("champion", models, bundle_bucket) == version  # the bucket's champion, nothing to upload


def test_a_local_bundle_that_fails_its_checks_is_not_uploaded(bundle_bucket: BundleBucket, tmp_path: Path) -> None:
    version = "20250101T120000.123456Z-3f2a9c1b7d4e"
    (tmp_path / version).mkdir()
    (tmp_path / version / "manifest.json").write_text("{}")
    with pytest.raises(DeployError, match=f"bundle .*{version} fails its checks, not uploaded"):
        publish(version, tmp_path, bundle_bucket)
    assert bundle_bucket.read(f"{version}/manifest.json") is None
