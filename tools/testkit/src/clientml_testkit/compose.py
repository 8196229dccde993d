"""The compose stack under test: a Docker engine, `docker compose` on the project's file, and the REST APIs
of Airflow, MLflow and the model API, as the compose test (``tests/compose``) uses them.

Where no Docker engine answers, :func:`docker_engine` starts the project's private one
(``tools/docker/engine.sh``) and stops it afterwards, putting the host's network back as it was; where
no image registry is reachable (``CLIENTML_COMPOSE_STANDINS``, on by default in CI), the two public base
images are replaced by local stand-ins (``tools/docker/standins.sh``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from clientml_testkit.servers import free_port

ROOT = Path(__file__).resolve().parents[4]
ENGINE_SCRIPT = ROOT / "tools" / "docker" / "engine.sh"
STANDINS_SCRIPT = ROOT / "tools" / "docker" / "standins.sh"
ENGINE_CLI = Path("/usr/bin/docker")  # the CLI of Debian's docker.io, which engine.sh installs
STANDIN_IMAGES = {
    "BASE_IMAGE": "clientml-ci/python:3.11-slim-bookworm",
    "POSTGRES_IMAGE": "clientml-ci/postgres:15",
}
T = TypeVar("T")


def _docker_answers(env: Mapping[str, str]) -> bool:
    try:
        return subprocess.run(["docker", "info"], check=False, env=env, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _with_exports(env: dict[str, str], script_output: str) -> dict[str, str]:
    """``env`` updated with the ``export A=1 B=2`` line the engine script prints."""
    for line in script_output.splitlines():
        if line.startswith("export "):
            for pair in shlex.split(line.removeprefix("export ")):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def stack_settings(directory: Path, sample_clients: int) -> dict[str, str]:
    """A stack's .env: fresh secrets, its own sources, models and reports folders under ``directory`` (made
    here), the first drop's sample size, free ports (Airflow on 8082, the README's)."""
    settings = {
        name: secrets.token_hex(12)
        for name in (
            "POSTGRES_PASSWORD",
            "WAREHOUSE_DB_PASSWORD",
            "AIRFLOW_DB_PASSWORD",
            "MLFLOW_DB_PASSWORD",
            "AIRFLOW_ADMIN_PASSWORD",
            "AIRFLOW_JWT_SECRET",
        )
    }
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    for folder in ("sources", "models", "reports"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    return {
        **settings,
        "AIRFLOW_FERNET_KEY": example["AIRFLOW_FERNET_KEY"],
        "CLIENTML_SOURCES_DIR": str(directory / "sources"),
        "CLIENTML_MODELS_DIR": str(directory / "models"),
        "CLIENTML_REPORTS_DIR": str(directory / "reports"),
        "CLIENTML_SAMPLE_CLIENTS": str(sample_clients),
        "AIRFLOW_PORT": "8082",
        "MLFLOW_PORT": str(free_port()),
        "API_PORT": str(free_port()),
    }


@contextlib.contextmanager
def docker_engine() -> Iterator[dict[str, str]]:
    """The environment of a working Docker engine and Compose v2: the current one if ``docker info``
    answers, else the private engine of ``tools/docker/engine.sh`` (installed and started now, stopped
    on exit). Raises subprocess.CalledProcessError when the engine cannot be started."""
    env = dict(os.environ)
    if _docker_answers(env):
        yield env
        return
    started = subprocess.run([str(ENGINE_SCRIPT), "start"], env=env, check=True, capture_output=True, text=True)
    try:
        yield _with_exports(env, started.stdout)
    finally:
        subprocess.run([str(ENGINE_SCRIPT), "stop"], env=env, check=False)


def use_buildkit_cli(env: dict[str, str], directory: Path) -> None:
    """Make ``docker build`` in ``env`` build with BuildKit (the API image's cache mount needs it): where
    the CLI on PATH has no buildx plugin (this machine's Docker CLI 28), the engine package's own CLI
    (``/usr/bin/docker`` of Debian's docker.io, the engine :func:`docker_engine` starts, whose builder
    is BuildKit with ``DOCKER_BUILDKIT=1``) is put first on ``env``'s PATH, from ``directory``."""
    buildx = subprocess.run(["docker", "buildx", "version"], env=env, capture_output=True, check=False)
    if buildx.returncode == 0 or not ENGINE_CLI.is_file():
        return
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docker").symlink_to(ENGINE_CLI)
    env["PATH"] = f"{directory}:{env.get('PATH', '')}"


def use_standins(env: dict[str, str]) -> None:
    """Build the stand-in base images (kept when present) and point the compose file at them."""
    subprocess.run([str(STANDINS_SCRIPT)], env=env, check=True)
    env.update(STANDIN_IMAGES)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, poll_s: float = 2.0) -> T:
    """``probe()`` until it returns something else than None or False; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (httpx.HTTPError, subprocess.CalledProcessError, KeyError, ValueError) as exc:
            last_error, result = exc, None
        if result is not None and result is not False:
            return result
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s (last error: {last_error})")


_UNITS = {
    "B": 1 / 2**20,
    "KiB": 1 / 2**10,
    "MiB": 1.0,
    "GiB": 2**10,
    "kB": 1e3 / 2**20,
    "MB": 1e6 / 2**20,
    "GB": 1e9 / 2**20,
}


def _mib(usage: str) -> float:
    """MiB of the used part of a `docker stats` MemUsage cell such as ``"465.7MiB / 1.5GiB"``."""
    match = re.match(r"\s*([0-9.]+)\s*([A-Za-z]+)", usage)
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"unexpected docker stats memory {usage!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def memory_now(env: Mapping[str, str]) -> dict[str, float]:
    """MiB of memory each running container uses now (``docker stats --no-stream``), by container name."""
    lines = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {name: _mib(usage) for name, usage in (line.split("\t", 1) for line in lines if "\t" in line)}


@contextlib.contextmanager
def memory_peaks(env: Mapping[str, str], every_s: float = 3.0) -> Iterator[dict[str, float]]:
    """The highest :func:`memory_now` of each container seen while the ``with`` block runs (sampled in a
    thread every ``every_s`` seconds; the dict is updated in place)."""
    peaks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(subprocess.CalledProcessError, ValueError):
                for name, mib in memory_now(env).items():
                    peaks[name] = max(mib, peaks.get(name, 0.0))

    thread = threading.Thread(target=sample, name="memory-peaks", daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join(timeout=30)


@dataclass
class Phases:
    """Wall-clock duration of each named phase of a test, printed (``[<label>] <phase>: <s> s``) and kept in order."""

    seconds: dict[str, float] = field(default_factory=dict)
    label: str = "compose-test"

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as phase ``name`` (printed when it ends, even on failure)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 1)
            print(f"[{self.label}] {name}: {self.seconds[name]:.1f} s", flush=True)


@dataclass
class Stack:
    """One compose project of the repository's ``docker-compose.yml`` with its ``.env`` file."""

    env: dict[str, str]
    env_file: Path
    project: str = "clientml-test"
    settings: dict[str, str] = field(default_factory=dict)
    _token: str | None = None

    @classmethod
    def create(cls, env: dict[str, str], env_file: Path, settings: Mapping[str, str]) -> Stack:
        """Write ``settings`` as the ``.env`` file of a new stack (nothing runs yet)."""
        env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
        return cls(env=env, env_file=env_file, settings=dict(settings))

    def compose(self, *args: str, timeout_s: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker compose <args>`` on this project; CalledProcessError (with its output) on failure."""
        command = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file), *args]
        result = subprocess.run(
            command, check=False, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)
        return result

    def exec(self, service: str, *command: str, timeout_s: float = 300) -> str:
        """The output of ``command`` run in the running ``service`` container."""
        return self.compose("exec", "-T", service, *command, timeout_s=timeout_s).stdout

    def config(self) -> dict[str, Any]:
        """The resolved compose configuration (``docker compose config --format json``)."""
        config: dict[str, Any] = json.loads(self.compose("config", "--format", "json").stdout)
        return config

    def logs(self, *services: str, tail: int = 60) -> str:
        """The last lines of the services' logs (for failure messages)."""
        return self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False).stdout

    def container_started_at(self, service: str) -> str:
        """When the service's container (its main process) last started."""
        container = self.compose("ps", "-q", service).stdout.strip()
        result = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.StartedAt}}", container],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def url(self, port_setting: str, path: str) -> str:
        """``http://127.0.0.1:<published port>/path`` for the port named in the settings."""
        return f"http://127.0.0.1:{self.settings[port_setting]}{path}"

    # --- Airflow's REST API -------------------------------------------------------------------------

    def airflow(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call Airflow's REST API (``/api/v2`` + path) as the admin user; HTTPStatusError on failure."""
        if self._token is None:
            login = {"username": "admin", "password": self.settings["AIRFLOW_ADMIN_PASSWORD"]}
            response = httpx.post(self.url("AIRFLOW_PORT", "/auth/token"), json=login, timeout=30)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        headers = {"Authorization": f"Bearer {self._token}"}
        response = httpx.request(
            method, self.url("AIRFLOW_PORT", f"/api/v2{path}"), json=body, headers=headers, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        runs: list[dict[str, Any]] = self.airflow("GET", f"/dags/{dag_id}/dagRuns?order_by=run_after")["dag_runs"]
        return runs

    def trigger(self, dag_id: str) -> str:
        """Trigger a manual run of the DAG now; its run id."""
        run = self.airflow("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
        return str(run["dag_run_id"])

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The ``return_value`` XCom of one task instance."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.airflow("GET", path)["value"]

    def task_states(self, dag_id: str, run_id: str) -> list[str]:
        """The states of the run's task instances."""
        instances = self.airflow("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return [str(instance["state"]) for instance in instances]
