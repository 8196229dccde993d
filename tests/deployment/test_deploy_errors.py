"""``make deploy | rollback | destroy`` stop at once, naming what is missing: a variable, a tool, credentials.
Nothing here reaches AWS: the credential chain finds nothing and the instance metadata lookup is off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clientml_deploy.__main__ import app
from clientml_testkit.fixtures import unavailable
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
