"""The deployed service, emulated, with the deployment tests' harness (tools/testkit): Terraform applies the
stack to the AWS emulator (moto), the API image is built, the champion bundle published to the emulated S3, and
the API container runs as the task definition Terraform wrote says (:class:`clientml_testkit.ecs_standin.TaskRunner`),
as in tests/deployment/test_deployed_container.py. Needs Docker.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from clientml_deploy.bundles import BundleBucket, publish
from clientml_deploy.image import build
from clientml_deploy.settings import DeploySettings, child_environment
from clientml_deploy.terraform import Terraform, backend_config
from clientml_testkit.aws_emulator import REGION, STATE_BUCKET, plugin_dir, running_emulator
from clientml_testkit.compose import use_buildkit_cli
from clientml_testkit.ecs_standin import TaskRunner, bridge_gateway

ENVIRONMENT = "staging"
IMAGE_TAG = "screenshots"


@contextlib.contextmanager
def deployed_api(work: Path, models_dir: Path, docker: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """The champion of ``models_dir`` served by the emulated deployment: yields its URL and API key."""
    api_key = secrets.token_urlsafe(32)
    # A fresh folder: the emulator writes its certificate there, Terraform's copy goes there (no earlier state).
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        docker = dict(docker)
        # The API image's cache mount needs BuildKit, which this engine's own CLI has (as in the test).
        use_buildkit_cli(docker, Path(stack.enter_context(tempfile.TemporaryDirectory())) / "bin")
        emulator = stack.enter_context(running_emulator(work, bridge_gateway(docker)))
        environment = {**emulator.environment({**child_environment(), **docker}), "TF_VAR_api_key": api_key}
        terraform = Terraform(emulator.terraform_dir(work / "terraform"), environment, plugin_dir())
        runner = TaskRunner(emulator, docker, emulator.endpoint)
        stack.callback(runner.stop)
        terraform.init(backend_config(STATE_BUCKET, DeploySettings(environment=ENVIRONMENT).state_key(), REGION))
        terraform.apply({"environment": ENVIRONMENT, "image_tag": IMAGE_TAG})
        outputs = terraform.outputs()
        build(f"{outputs['repository_url']}:{IMAGE_TAG}", docker.get("BASE_IMAGE"), environment)
        publish("champion", models_dir, BundleBucket.at(emulator.client("s3"), str(outputs["bundle_s3_uri"])))
        runner.run(str(outputs["task_definition_arn"]))
        runner.wait("healthy")
        yield runner.url, api_key
