"""The deployed container in action, against the AWS emulator: the API image run as the task definition that
Terraform created says (read back from the emulator, :class:`clientml_testkit.ecs_standin.TaskRunner`),
fetching the champion bundle from the emulated S3 and the API key from the emulated Secrets Manager,
healthy by its own health check, answering a prediction; a tampered bundle never serving; then
``make deploy`` twice and ``make rollback`` end to end, the stand-in replacing the task whenever the
service's task definition changes, and ``make destroy``.

The tests run in file order on one stack (module fixtures). Needs Docker (or root to start the private
engine), terraform and the AWS provider under TF_PLUGIN_DIR; the base image is the debootstrap stand-in in
CI (``CLIENTML_COMPOSE_STANDINS=1`` elsewhere). The emulator listens on the Docker bridge's gateway
address, which the containers reach and nothing outside this host does.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from clientml_deploy.bundles import BundleBucket, publish
from clientml_deploy.history import History
from clientml_deploy.image import build
from clientml_deploy.settings import DeploySettings, child_environment
from clientml_deploy.terraform import Terraform, backend_config
from clientml_mle.estimators import default_estimator
from clientml_mle.features import training_frame
from clientml_mle.pointers import CHAMPION_FILE, set_pointer
from clientml_mle.schema import FeatureSpec
from clientml_mle.train import train
from clientml_testkit.aws_emulator import REGION, STATE_BUCKET, Emulator, plugin_dir, running_emulator
from clientml_testkit.compose import ROOT, Phases, docker_engine, use_buildkit_cli, use_standins
from clientml_testkit.ecs_standin import TaskRunner, bridge_gateway
from clientml_testkit.fixtures import IN_CI
from sklearn.pipeline import Pipeline

pytestmark = [pytest.mark.terraform, pytest.mark.docker, pytest.mark.slow]

PHASES = Phases(label="deployed-container")
API_KEY = secrets.token_urlsafe(32)
NAME = "clientml-staging"
SERVICE = f"{NAME}-api"


def _estimator(specs: list[FeatureSpec]) -> Pipeline:
    return default_estimator(specs, n_jobs=1)


@dataclass
class World:
    """The emulator, the Terraform copy, the local bundles, the stand-in task and the environment of make."""

    emulator: Emulator
    terraform: Terraform
    runner: TaskRunner
    models: Path
    versions: list[str]
    environment: dict[str, str]
    base_image: str | None

    def outputs(self) -> dict[str, Any]:
        return self.terraform.outputs()

    def bucket(self) -> BundleBucket:
        return BundleBucket.at(self.emulator.client("s3"), str(self.outputs()["bundle_s3_uri"]))

    def make(self, target: str, **settings: str) -> str:
        """``make <target>`` as a person runs it, the emulator's settings in its environment; its output."""
        environment = {**self.environment, **settings}
        with PHASES.phase(f"make {target} {' '.join(f'{k}={v}' for k, v in settings.items())}".strip()):
            result = subprocess.run(
                ["make", target], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1800, check=False
            )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"make {target} failed:\n{output[-6000:]}\n{self.runner.logs()[-3000:]}"
        return output

    def api(self, path: str, key: str | None = API_KEY) -> httpx.Response:
        return httpx.get(f"{self.runner.url}{path}", headers={"X-API-Key": key} if key else {}, timeout=15)

    def served(self) -> str:
        response = self.api("/v1/model")
        assert response.status_code == 200, response.text
        return str(response.json()["version"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, warehouse_url: str) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("deployed")
    models = tmp / "models"
    with PHASES.phase("two bundles trained"):
        frame = training_frame(warehouse_url)
        versions = [train(_estimator, frame, seed=seed, models_dir=models).bundle_path.name for seed in (1, 2)]
    set_pointer(models, versions[0], CHAMPION_FILE)
    directory = plugin_dir()
    with contextlib.ExitStack() as stack:
        with PHASES.phase("engine"):
            docker = stack.enter_context(docker_engine())
        with PHASES.phase("base images"):
            if IN_CI or docker.get("CLIENTML_COMPOSE_STANDINS") == "1":
                use_standins(docker)
        use_buildkit_cli(docker, tmp / "bin")
        emulator = stack.enter_context(running_emulator(tmp, bridge_gateway(docker)))
        environment = {**emulator.environment({**child_environment(), **docker}), "TF_VAR_api_key": API_KEY}
        terraform = Terraform(emulator.terraform_dir(tmp / "terraform"), environment, directory)
        runner = TaskRunner(emulator, docker, emulator.endpoint)
        stack.callback(runner.stop)
        make_settings = {
            "ENVIRONMENT": "staging",
            "TF_STATE_BUCKET": STATE_BUCKET,
            "TF_DIR": str(terraform.directory),
            "TF_PLUGIN_DIR": str(directory),
            "MODELS_DIR": str(models),
            "IMAGE_PUSH": "false",
            "SMOKE_URL": runner.url,
            "SMOKE_TIMEOUT_S": "300",
        }
        yield World(
            emulator, terraform, runner, models, versions, {**environment, **make_settings}, docker.get("BASE_IMAGE")
        )


@pytest.fixture(scope="module")
def hand_applied(world: World) -> str:
    """The stack applied by hand with the defaults (bundle "champion"), its image built, the local champion
    published: the task definition's ARN."""
    state_key = DeploySettings(environment="staging").state_key()
    with PHASES.phase("terraform init"):
        world.terraform.init(backend_config(STATE_BUCKET, state_key, REGION))
    with PHASES.phase("terraform apply"):
        world.terraform.apply({"environment": "staging", "image_tag": "t0"})
    outputs = world.outputs()
    with PHASES.phase("image build"):
        build(f"{outputs['repository_url']}:t0", world.base_image, world.environment)
    assert publish("champion", world.models, world.bucket()) == world.versions[0]
    return str(outputs["task_definition_arn"])


def test_the_task_serves_the_champion_as_its_definition_says(world: World, hand_applied: str) -> None:
    with PHASES.phase("task start to healthy"):
        world.runner.run(hand_applied)
        world.runner.wait("healthy")
    definition = world.emulator.client("ecs").describe_task_definition(taskDefinition=hand_applied)["taskDefinition"]
    [container] = definition["containerDefinitions"]
    config = world.runner.inspect()["Config"]
    assert config["Image"] == container["image"] == f"{world.outputs()['repository_url']}:t0"
    assert config["Cmd"] == container["command"] == ["serve"] and config["User"] == "10001"
    assert {f"{item['name']}={item['value']}" for item in container["environment"]} <= set(config["Env"])
    assert config["Healthcheck"]["Test"] == ["CMD-SHELL", shlex.join(container["healthCheck"]["command"][1:])]
    assert world.runner.inspect()["HostConfig"]["ReadonlyRootfs"] is True
    assert "CLIENTML_BUNDLE=champion" in config["Env"]
    assert f"fetched bundle {world.versions[0]}" in world.runner.logs()
    assert world.served() == world.versions[0]
    assert world.api("/v1/model", key=None).status_code == 401  # the key from Secrets Manager is in force
    features = world.api("/v1/model").json()["features"]
    record = {f["name"]: None for f in features if f["nullable"]}
    response = httpx.post(
        f"{world.runner.url}/v1/predict", json={"records": [record]}, headers={"X-API-Key": API_KEY}, timeout=15
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"]["version"] == world.versions[0]


def test_a_tampered_bundle_never_serves(world: World, hand_applied: str) -> None:
    bucket = world.bucket()
    key = f"{world.versions[0]}/model.skops"
    original = bucket.read(key)
    assert original is not None
    bucket.write(key, original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        world.runner.run(hand_applied)
        state = world.runner.wait("exited", timeout_s=180)
    finally:
        bucket.write(key, original)
    assert state["ExitCode"] == 1  # and never healthy: wait() refuses a task that got healthy first
    assert "model.skops: changed since the bundle was written" in world.runner.logs()


@pytest.fixture(scope="module")
def following(world: World, hand_applied: str) -> Iterator[TaskRunner]:
    """The stand-in replacing the task whenever the service's task definition changes (as ECS does)."""
    with world.runner.following(NAME, SERVICE):
        yield world.runner
    assert world.runner.errors == []


def _history(world: World) -> list[tuple[str, str]]:
    state_key = DeploySettings(environment="staging").state_key()
    history = History.beside(world.emulator.client("s3"), STATE_BUCKET, state_key)
    return [(release.image_tag, release.bundle) for release in history.releases()]


def _running(world: World) -> tuple[str, str]:
    """The running task's image tag and CLIENTML_BUNDLE."""
    config = world.runner.inspect()["Config"]
    environment = dict(item.split("=", 1) for item in config["Env"])
    return config["Image"].rsplit(":", 1)[1], environment["CLIENTML_BUNDLE"]


def test_make_deploy_serves_the_version_it_pins(world: World, following: TaskRunner) -> None:
    output = world.make("deploy", IMAGE_TAG="t1", BUNDLE=world.versions[0])
    assert f"smoke test of {world.runner.url}: ready, serving {world.versions[0]}" in output
    assert _running(world) == ("t1", world.versions[0])
    assert _history(world) == [("t1", world.versions[0])]


def test_make_deploy_of_a_new_champion(world: World, following: TaskRunner) -> None:
    set_pointer(world.models, world.versions[1], CHAMPION_FILE)  # a retrained model passed the gate
    world.make("deploy", IMAGE_TAG="t2", BUNDLE="champion")
    assert world.served() == world.versions[1] and _running(world) == ("t2", world.versions[1])
    assert world.bucket().champion() == world.versions[1]
    assert _history(world) == [("t1", world.versions[0]), ("t2", world.versions[1])]


def test_make_rollback_returns_to_the_previous_release(world: World, following: TaskRunner) -> None:
    world.make("rollback")
    assert world.served() == world.versions[0] and _running(world) == ("t1", world.versions[0])
    assert _history(world) == [("t1", world.versions[0])]


def test_make_destroy_leaves_nothing(world: World, following: TaskRunner) -> None:
    world.make("destroy")
    ecs = world.emulator.client("ecs")
    assert [c for c in ecs.describe_clusters(clusters=[NAME])["clusters"] if c["status"] != "INACTIVE"] == []
    assert _history(world) == []
    print(f"[deployed-container] timings: {json.dumps(PHASES.seconds)}", flush=True)
