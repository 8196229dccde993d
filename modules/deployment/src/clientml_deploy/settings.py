"""What ``make deploy | rollback | destroy`` read from the environment, in one place.

The names are those the workflows (``.github/workflows/deploy-environment.yml``) and ``make VAR=value``
give: ``ENVIRONMENT``, ``IMAGE_TAG``, ``BUNDLE``, ``TF_STATE_BUCKET``, ``AWS_REGION``, Terraform's own
``TF_VAR_api_key``, ... (:class:`DeploySettings`). This module is also the deploy tool's only access to the
process environment: the child processes (terraform, docker) get theirs from :func:`child_environment`.
Against an emulator nothing here changes but endpoints and credentials, which the AWS SDK and the
provider read themselves (``AWS_ENDPOINT_URL``, the harness's ``*_override.tf``), and the two settings
an emulator needs because it runs no registry and no load balancer (``IMAGE_PUSH``, ``SMOKE_URL``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from clientml_deploy.errors import DeployError
from clientml_mle.pointers import VERSION_PATTERN
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[4]
TERRAFORM_DIR = ROOT / "modules" / "deployment" / "terraform"
# Off in every child: Terraform's version check, and its hints meant for people at a prompt.
CHILD_ENVIRONMENT = {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}


class DeploySettings(BaseSettings):
    """The deploy tool's inputs. Empty variables count as unset (``make`` passes ``VAR=`` through)."""

    model_config = SettingsConfigDict(extra="ignore")

    # Which deployment: names, state and history are per environment.
    environment: Literal["staging", "production"] | None = None
    # Tag of the image to build and push (immutable in ECR); default: the checked-out git commit.
    image_tag: str | None = None
    # The bundle to deploy: "champion" (the local CHAMPION, else the bucket's) or a version. A deploy pins
    # the version it resolves, so every task and a later rollback serve the same one.
    bundle: str = "champion"
    # Where local bundles are (clientml train's models directory): a bundle found there is uploaded.
    models_dir: Path = ROOT / "modules" / "ds" / "models"
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # Terraform's remote state (and the deployment history beside it): made once per account.
    tf_state_bucket: str | None = None
    # Default: clientml/<environment>/terraform.tfstate.
    tf_state_key: str | None = None
    # The configuration to apply (a copy with an *_override.tf for an emulator).
    tf_dir: Path = TERRAFORM_DIR
    # Providers from this directory instead of the registry (machines without the registry).
    tf_plugin_dir: Path | None = None
    # More Terraform variables (sizes, domain, ...): a .tfvars file given to every plan, apply and destroy.
    tfvars_file: Path | None = None
    # The API key: Terraform's own variable (write-only into Secrets Manager); the smoke test sends it.
    api_key: SecretStr | None = Field(default=None, validation_alias="TF_VAR_api_key")
    # The API image's base (its Dockerfile's BASE_IMAGE build argument); default: the Dockerfile's.
    base_image: str | None = None
    # False where no registry exists (an emulator): the image stays in the local engine, nothing is pushed.
    image_push: bool = True
    # The URL smoke-tested instead of Terraform's api_url output (an emulator has no load balancer).
    smoke_url: str | None = None
    # How long the smoke test waits for the new version to answer (a rolling deployment on Fargate).
    smoke_timeout_s: float = Field(default=900.0, gt=0)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("bundle")
    @classmethod
    def _champion_or_version(cls, value: str) -> str:
        if value != "champion" and not VERSION_PATTERN.match(value):
            raise ValueError("neither 'champion' nor a bundle version (such as 20250101T120000.123456Z-3f2a9c1b7d4e)")
        return value

    def state_key(self) -> str:
        """The state object's key: TF_STATE_KEY, else ``clientml/<environment>/terraform.tfstate``."""
        return self.tf_state_key or f"clientml/{self.required_environment()}/terraform.tfstate"

    def required_environment(self) -> str:
        return _required(self.environment, "ENVIRONMENT", "staging or production")

    def required_state_bucket(self) -> str:
        return _required(self.tf_state_bucket, "TF_STATE_BUCKET", "the S3 bucket of the Terraform state")

    def required_api_key(self) -> str:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return _required(key, "TF_VAR_api_key", "the API key (X-API-Key), at least 32 characters")


def _required(value: str | None, name: str, meaning: str) -> str:
    if not value:
        raise DeployError(f"{name} is not set: {meaning}")
    return value


def load_settings() -> DeploySettings:
    """The settings of this run, read from the environment; DeployError naming a malformed variable."""
    from pydantic import ValidationError

    try:
        return DeploySettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise DeployError(f"invalid deploy settings: {problems}") from None


def child_environment() -> dict[str, str]:
    """The environment of a terraform or docker child: this process's, telemetry and prompts off."""
    return {**os.environ, **CHILD_ENVIRONMENT}
