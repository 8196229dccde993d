"""The API image: built from ``modules/mle/Dockerfile`` with the Docker CLI, pushed to the ECR repository.

The ECR login takes its token from boto3 (``GetAuthorizationToken``), so no AWS CLI is needed. Where no
registry exists (an emulator, ``IMAGE_PUSH=false``) the image is only built: it stays in the local engine
under the repository's name, where a stand-in for ECS can run it.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from clientml_deploy.aws import call
from clientml_deploy.errors import DeployError
from clientml_deploy.settings import ROOT

DOCKERFILE = ROOT / "modules" / "mle" / "Dockerfile"


def check_docker(environment: Mapping[str, str]) -> None:
    """DeployError unless the Docker CLI is on PATH and reaches an engine."""
    if shutil.which("docker", path=environment.get("PATH")) is None:
        raise DeployError("docker is not on PATH: install Docker (the image is built with it)")
    info = subprocess.run(["docker", "info"], env=dict(environment), capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise DeployError(f"docker reaches no engine (start Docker, or set DOCKER_HOST): {info.stderr.strip()[-300:]}")


def build(reference: str, base_image: str | None, environment: Mapping[str, str]) -> None:
    """``docker build`` of the API image, tagged ``reference`` (``<repository>:<tag>``).

    With BuildKit, which the Dockerfile's cache mount needs: ``DOCKER_BUILDKIT=1`` makes a CLI that would
    fall back to the legacy builder use it, and one that lacks the buildx plugin say so.
    """
    arguments = ["--build-arg", f"BASE_IMAGE={base_image}"] if base_image else []
    command = ["build", "-f", str(DOCKERFILE), "-t", reference, *arguments, str(ROOT)]
    _docker(command, {**environment, "DOCKER_BUILDKIT": "1"})


def push(reference: str, ecr: Any, environment: Mapping[str, str]) -> None:
    """Log the Docker CLI in to the repository's registry with an ECR token, then push ``reference``."""
    registry = reference.split("/", 1)[0]
    token = call("getting an ECR login token", ecr.get_authorization_token)["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    _docker(["login", "--username", user, "--password-stdin", registry], environment, stdin=password)
    _docker(["push", reference], environment)


def _docker(args: list[str], environment: Mapping[str, str], stdin: str | None = None) -> None:
    code = subprocess.run(["docker", *args], env=dict(environment), input=stdin, text=True, check=False).returncode
    if code != 0:
        raise DeployError(f"docker {args[0]} failed (exit {code}): its output is above")
