"""``deploy``, ``rollback`` and ``destroy``: the same steps against AWS and against an emulator.

deploy
    1. checks: the variables, terraform and docker, working AWS credentials, the state bucket;
    2. ``terraform apply`` of the registry and the bucket alone (a first deploy has nowhere to push yet);
    3. the image built and pushed as ``<repository>:<IMAGE_TAG>``;
    4. the bundle resolved to a version, checked and uploaded (:func:`clientml_deploy.bundles.publish`);
    5. ``terraform apply`` of everything with that image tag and bundle version, recorded in the history;
    6. the smoke test of the API URL (``/health/ready``, ``/v1/model`` on that version, one prediction).
rollback
    ``terraform apply`` with the previous release's image tag and bundle version, then the smoke test.
destroy
    ``terraform destroy``, then the history is removed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clientml_deploy import aws, image
from clientml_deploy.bundles import BundleBucket, publish
from clientml_deploy.errors import DeployError
from clientml_deploy.history import History, Release
from clientml_deploy.settings import ROOT, DeploySettings, child_environment
from clientml_deploy.smoke import smoke_test
from clientml_deploy.terraform import Terraform, backend_config

# What the first, targeted apply creates: where the image and the bundle go before the service exists.
STORAGE_TARGETS = ("module.registry", "module.storage")


@dataclass(frozen=True)
class _Run:
    """One command's checked inputs and its tools."""

    settings: DeploySettings
    environment: dict[str, str]
    terraform: Terraform
    s3: Any
    history: History
    api_key: str

    def variables(self, image_tag: str, bundle: str) -> dict[str, str]:
        return {
            "environment": self.settings.required_environment(),
            "region": self.settings.aws_region,
            "image_tag": image_tag,
            "bundle": bundle,
        }

    def apply(self, image_tag: str, bundle: str) -> Release:
        self.terraform.apply(self.variables(image_tag, bundle))
        task_definition = str(self.terraform.outputs()["task_definition_arn"])
        return Release(image_tag, bundle, task_definition, datetime.now(UTC).isoformat(timespec="seconds"))

    def smoke_test(self, release: Release, outputs: Mapping[str, Any]) -> None:
        url = self.settings.smoke_url or str(outputs["api_url"])
        smoke_test(url, self.api_key, release.bundle, self.settings.smoke_timeout_s)


def _start(settings: DeploySettings, *, build: bool) -> _Run:
    """The checks every command starts with, in the order a newcomer meets them; then ``terraform init``."""
    environment, bucket = settings.required_environment(), settings.required_state_bucket()
    api_key = settings.required_api_key()
    children = child_environment()
    terraform = Terraform(settings.tf_dir, children, settings.tf_plugin_dir, settings.tfvars_file)
    if build:
        image.check_docker(children)
    account = aws.account(settings.aws_region)
    s3 = aws.client("s3", settings.aws_region)
    aws.call(f"TF_STATE_BUCKET={bucket} (account {account})", lambda: s3.head_bucket(Bucket=bucket))
    state = f"s3://{bucket}/{settings.state_key()}"
    print(f"{environment}: account {account}, region {settings.aws_region}, state {state}", flush=True)
    terraform.init(backend_config(bucket, settings.state_key(), settings.aws_region))
    return _Run(settings, children, terraform, s3, History.beside(s3, bucket, settings.state_key()), api_key)


def deploy(settings: DeploySettings) -> Release:
    """Build, push, upload, apply, smoke-test (module docstring); the release now in effect."""
    run = _start(settings, build=True)
    image_tag = settings.image_tag or _git_commit()
    run.terraform.apply(run.variables(image_tag, settings.bundle), targets=STORAGE_TARGETS)
    storage = run.terraform.outputs()
    reference = f"{storage['repository_url']}:{image_tag}"
    image.build(reference, settings.base_image, run.environment)
    if settings.image_push:
        image.push(reference, aws.client("ecr", settings.aws_region), run.environment)
    bundle = publish(settings.bundle, settings.models_dir, BundleBucket.at(run.s3, str(storage["bundle_s3_uri"])))
    release = run.apply(image_tag, bundle)
    run.history.save([*run.history.releases(), release])
    run.smoke_test(release, run.terraform.outputs())
    return release


def rollback(settings: DeploySettings) -> Release:
    """Apply the release before the newest one again, drop the newest, smoke-test; the release now in effect."""
    run = _start(settings, build=False)
    releases = run.history.releases()
    if len(releases) < 2:
        raise DeployError(f"nothing to roll back to: {run.history.uri} holds {len(releases)} release(s)")
    previous = releases[-2]
    newest = releases[-1]
    print(f"rolling back from {newest.image_tag} {newest.bundle} to {previous.image_tag} {previous.bundle}", flush=True)
    release = run.apply(previous.image_tag, previous.bundle)
    run.history.save([*releases[:-2], release])
    run.smoke_test(release, run.terraform.outputs())
    return release


def destroy(settings: DeploySettings) -> None:
    """``terraform destroy`` of the environment, then its history."""
    run = _start(settings, build=False)
    releases = run.history.releases()
    # destroy evaluates the configuration, so the required image_tag needs a value; which one does not matter.
    current = releases[-1] if releases else Release("none", "champion", "", "")
    run.terraform.destroy(run.variables(current.image_tag, current.bundle))
    run.history.delete()


def _git_commit() -> str:
    """The checked-out commit: the default image tag (one tag, one commit, as ECR's immutable tags want)."""
    result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeployError(f"IMAGE_TAG is not set and git cannot name the commit: {result.stderr.strip()}")
    return result.stdout.strip()
