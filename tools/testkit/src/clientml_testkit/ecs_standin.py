"""A stand-in for ECS on this machine: the task definition an (emulated) ECS service names, run as one Docker
container the way Fargate runs it, and replaced when the service's task definition changes.

Everything the container gets comes from the task definition read back from the emulator, not retyped:
image, command, user, read-only root filesystem, one fresh volume per mount point, the init process, the
stop timeout, the port, the environment, the secrets (values read from Secrets Manager, as ECS's agent
does), the health check (Docker runs it, as ECS's agent has Docker do) and the task's CPU and memory. A
field it does not know how to run stops it (:class:`UnsupportedTaskDefinitionError`), so a new one in the
Terraform cannot be silently left out.

What it adds, because Fargate provides it and an emulator does not: the AWS endpoint as the container
reaches it with the emulator's CA, test credentials (on Fargate: the task role's credentials endpoint),
and the task's port published on 127.0.0.1 (on Fargate: the task's own address in the VPC). What it
leaves out: the awslogs driver (the logs stay in Docker), placement in subnets and security groups, and
the load balancer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from clientml_testkit.aws_emulator import CREDENTIALS, Emulator
from clientml_testkit.servers import LOOPBACK, free_port

# Container definition fields this stand-in runs, and those it may ignore (no effect on one machine).
_RUN = frozenset({
    "name", "image", "essential", "command", "user", "readonlyRootFilesystem", "privileged", "portMappings",
    "environment", "secrets", "mountPoints", "linuxParameters", "stopTimeout", "healthCheck",
})  # fmt: skip
_IGNORED = frozenset({"logConfiguration"})  # awslogs: the container's output stays in `docker logs`
_CA_IN_CONTAINER = "/etc/ssl/certs/clientml-emulator-ca.pem"
# How an unset field reads back (moto fills some with empty values).
_UNSET: tuple[object, ...] = (None, [], {}, 0, False)


class UnsupportedTaskDefinitionError(ValueError):
    """The task definition has a field the stand-in cannot run as Fargate would; the message names it."""


def bridge_gateway(docker_env: Mapping[str, str]) -> str:
    """The IPv4 address of this host on Docker's default bridge: where a container reaches a server of the host.

    A fresh engine's ``bridge`` network may list only its subnet, without a gateway (dockerd 20.10 on an empty
    data root does); the gateway is then the subnet's first host address, the address Docker's default IPAM
    driver gives the bridge (Docker docs, "Bridge network driver": ``--bip``/``--fixed-cidr``; libnetwork's
    ``ipams/default``). Raises RuntimeError naming the network when it has no IPv4 subnet at all.
    """
    result = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        env=dict(docker_env),
        capture_output=True,
        text=True,
        check=True,
    )
    return gateway_of(json.loads(result.stdout) or [])


def gateway_of(ipam_config: list[dict[str, str]]) -> str:
    """The IPv4 gateway of a Docker network from its ``IPAM.Config`` entries (see :func:`bridge_gateway`)."""
    for entry in ipam_config:
        subnet = ipaddress.ip_network(entry.get("Subnet") or "::/128", strict=False)
        if subnet.version == 4:
            return entry.get("Gateway") or str(next(subnet.hosts()))
    raise RuntimeError(f"Docker's bridge network has no IPv4 subnet (IPAM.Config: {ipam_config})")


@dataclass
class TaskRunner:
    """One task of an emulated ECS service, as a container named ``name``, its port on 127.0.0.1:``port``."""

    emulator: Emulator
    docker_env: Mapping[str, str]
    # The emulator's URL as seen from inside a container (it listens on the bridge's gateway address).
    container_endpoint: str
    name: str = "clientml-ecs-standin"
    port: int = field(default_factory=free_port)
    task_definition: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def run(self, task_definition_arn: str) -> None:
        """Replace the running task (if any) by a new one of ``task_definition_arn``."""
        definition = self.emulator.client("ecs").describe_task_definition(taskDefinition=task_definition_arn)
        arguments, secrets = self._arguments(definition["taskDefinition"])
        self.stop()
        self._docker("run", "--detach", "--name", self.name, *arguments, env=secrets)
        self.task_definition = task_definition_arn

    def stop(self) -> None:
        """Remove the task's container and its volumes (a stopped Fargate task keeps nothing)."""
        self._docker("rm", "--force", "--volumes", self.name, check=False)

    def state(self) -> dict[str, Any]:
        """``docker inspect``'s ``State`` of the task's container (Status, ExitCode, Health...)."""
        state: dict[str, Any] = json.loads(self._docker("inspect", "--format", "{{json .State}}", self.name).stdout)
        return state

    def inspect(self) -> dict[str, Any]:
        """``docker inspect`` of the task's container."""
        [container] = json.loads(self._docker("inspect", self.name).stdout)
        return dict(container)

    def logs(self) -> str:
        result = self._docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait(self, until: str, timeout_s: float = 300) -> dict[str, Any]:
        """Wait until the container is ``healthy`` (its health check passed) or ``exited``; its state.
        RuntimeError with its logs when it reaches the other one, or neither in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.state()
            reached = "exited" if state["Status"] == "exited" else state.get("Health", {}).get("Status")
            if reached in ("healthy", "exited"):
                if reached != until:
                    raise RuntimeError(f"task {reached}, not {until}: {state}\n{self.logs()[-3000:]}")
                return state
            time.sleep(1)
        raise RuntimeError(f"task not {until} within {timeout_s:.0f} s: {self.state()}\n{self.logs()[-3000:]}")

    @contextlib.contextmanager
    def following(self, cluster: str, service: str, poll_s: float = 1.0) -> Iterator[None]:
        """While the block runs, start a new task whenever the service names another task definition
        (ECS replaces its tasks; here the old one stops first). Errors are kept in ``errors``."""
        stop = threading.Event()

        def follow() -> None:
            ecs = self.emulator.client("ecs")
            while not stop.wait(poll_s):
                try:
                    services = ecs.describe_services(cluster=cluster, services=[service])["services"]
                    wanted = services[0]["taskDefinition"] if services and services[0]["status"] == "ACTIVE" else None
                    if wanted is not None and wanted != self.task_definition:
                        self.run(wanted)
                except Exception as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=follow, name="ecs-standin", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=60)

    def _arguments(self, definition: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """``docker run`` arguments for the task definition's one container, and the secrets' values (given
        to ``docker run`` through its environment, so that no value is on a command line)."""
        [container] = definition["containerDefinitions"]
        unknown = sorted(k for k, v in container.items() if k not in _RUN | _IGNORED and v not in _UNSET)
        if unknown or container.get("privileged"):
            raise UnsupportedTaskDefinitionError(f"container definition fields not run by the stand-in: {unknown}")
        secretsmanager = self.emulator.client("secretsmanager")
        secrets = {
            item["name"]: secretsmanager.get_secret_value(SecretId=item["valueFrom"])["SecretString"]
            for item in container.get("secrets", [])
        }
        arguments = [
            f"--cpus={int(definition['cpu']) / 1024}",
            f"--memory={definition['memory']}m",
            f"--stop-timeout={container.get('stopTimeout', 30)}",
            *(["--user", container["user"]] if "user" in container else []),
            *(["--read-only"] if container.get("readonlyRootFilesystem") else []),
            *(["--init"] if container.get("linuxParameters", {}).get("initProcessEnabled") else []),
            *(f"--mount=type=volume,dst={mount['containerPath']}" for mount in container.get("mountPoints", [])),
            *(f"--publish={LOOPBACK}:{self.port}:{p['containerPort']}" for p in container.get("portMappings", [])),
            *(f"--env={item['name']}={item['value']}" for item in container.get("environment", [])),
            *(f"--env={name}" for name in secrets),
            *_health_check(container.get("healthCheck")),
            # What Fargate gives a task and the emulator cannot: the AWS endpoint (and its CA), and credentials.
            f"--env=AWS_ENDPOINT_URL={self.container_endpoint}",
            f"--mount=type=bind,src={self.emulator.ca_bundle},dst={_CA_IN_CONTAINER},readonly",
            f"--env=AWS_CA_BUNDLE={_CA_IN_CONTAINER}",
            *(f"--env={name}={value}" for name, value in CREDENTIALS.items()),
            container["image"],
            *container.get("command", []),
        ]
        return arguments, secrets

    def _docker(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env={**self.docker_env, **(env or {})}, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {args[0]} failed (exit {result.returncode}): {result.stderr.strip()}")
        return result


def _health_check(check: dict[str, Any] | None) -> list[str]:
    """Docker's health check options for an ECS ``healthCheck`` (``["CMD", ...]`` or ``["CMD-SHELL", "..."]``)."""
    if not check:
        return []
    kind, *command = check["command"]
    shell = command[0] if kind == "CMD-SHELL" else shlex.join(command)
    return [
        f"--health-cmd={shell}",
        f"--health-interval={check.get('interval', 30)}s",
        f"--health-timeout={check.get('timeout', 5)}s",
        f"--health-retries={check.get('retries', 3)}",
        f"--health-start-period={check.get('startPeriod', 0)}s",
    ]
