"""A throwaway Spark standalone cluster on loopback: a master and a worker, each a JVM of its own.

Started and stopped with pyspark's own daemon script, ``$SPARK_HOME/sbin/spark-daemon.sh`` (``SPARK_HOME``
being the pyspark package's directory), with the arguments Spark's ``start-master.sh`` and
``start-worker.sh`` give it: the pyspark wheel ships the daemon script but not those two wrappers. Every
address is 127.0.0.1 (RPC ``--host``, web UIs through ``SPARK_LOCAL_IP``, which the worker's executors
inherit), and the logs, pid files and the worker's directory live in a temporary directory, deleted after.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from clientml_testkit.servers import LOOPBACK, free_port

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# The daemon script names pid and log files after this ($USER by default).
_IDENT = "clientml-test"


class SparkClusterUnavailableError(RuntimeError):
    """The machine has no pyspark or Java, or the cluster did not come up."""


def spark_home() -> Path:
    """The pyspark package's directory, which is a ``SPARK_HOME`` (``bin/``, ``sbin/``, ``jars/``)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkClusterUnavailableError("pyspark is not installed")
    home = Path(spec.origin).parent
    if not (home / "sbin" / "spark-daemon.sh").is_file():
        raise SparkClusterUnavailableError(f"{home}/sbin/spark-daemon.sh not found")
    return home


def _check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and shutil.which("java") is None:
        raise SparkClusterUnavailableError("no Java: neither $JAVA_HOME/bin/java nor java on PATH")


@dataclass(frozen=True)
class StandaloneCluster:
    """A running cluster: the URL a driver connects to, its master's web port and its own directory."""

    master_url: str
    web_port: int
    root: Path
    master_pid: int
    worker_pid: int

    def state(self) -> dict[str, Any]:
        """The master's view (``/json/``): ``workers``, ``activeapps``, ``completedapps``, with each app's
        ``name``, ``cores`` and ``memoryperslave`` (MB per executor)."""
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.web_port}/json/", timeout=5) as response:
            state: dict[str, Any] = json.load(response)
        return state

    def executor_logs(self) -> list[Path]:
        """The stderr of every executor the worker has run (``<work>/<app id>/<executor id>/stderr``)."""
        return sorted((self.root / "work").glob("app-*/*/stderr"))

    def processes(self) -> list[psutil.Process]:
        """The master, the worker and the worker's children (the executors), those still alive."""
        return [*_jvm_and_children(self.master_pid), *_jvm_and_children(self.worker_pid)]

    def logs(self) -> str:
        """The end of every daemon and executor log, for an error message."""
        files = [*sorted((self.root / "logs").glob("*.out")), *self.executor_logs()]
        return "\n".join(f"--- {path}\n{path.read_text(errors='replace')[-2000:]}" for path in files)


def _jvm_and_children(pid: int) -> list[psutil.Process]:
    """The JVM ``pid`` and its children (a worker's executors); none when it is gone or the pid is another
    program's now."""
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if pid > 0 and process.name() == "java":
            return [process, *process.children(recursive=True)]
    return []


def listening_addresses(processes: list[psutil.Process]) -> set[str]:
    """The IP addresses on which ``processes`` accept TCP connections (IPv4-mapped IPv6 as IPv4)."""
    addresses = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    addresses.add(conn.laddr.ip.removeprefix("::ffff:"))
    return addresses


def _daemon(home: Path, env: dict[str, str], *args: str) -> None:
    """``spark-daemon.sh args...``; it returns once the JVM has started (or failed to)."""
    command = ["bash", str(home / "sbin" / "spark-daemon.sh"), *args]
    # A session of its own: a Ctrl-C of the test run reaches the test (whose teardown stops the cluster), not the JVMs.
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60, start_new_session=True)


def _java_pid(pid_file: Path) -> int:
    """The JVM a pid file names (the daemon script writes it once the process started)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise SparkClusterUnavailableError(f"{pid_file} not written: the JVM did not start") from exc
    if not psutil.pid_exists(pid):
        raise SparkClusterUnavailableError(f"{pid_file}: process {pid} exited at once")
    return pid


def _wait_for_worker(cluster: StandaloneCluster, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not all(psutil.pid_exists(pid) for pid in (cluster.master_pid, cluster.worker_pid)):
            break
        with contextlib.suppress(OSError, ValueError):
            if any(worker["state"] == "ALIVE" for worker in cluster.state()["workers"]):
                return
        time.sleep(0.5)
    raise SparkClusterUnavailableError(
        f"no worker registered with the master within {timeout_s:.0f} s\n{cluster.logs()}"
    )


def _stop(home: Path, env: dict[str, str]) -> None:
    """The daemon script's ``stop`` (SIGTERM; the worker kills its executors), then SIGKILL to what is left.

    The processes are the JVMs the pid files name and their children, found before the stop, since the script
    deletes the pid files.
    """
    processes = []
    for daemon_class in (WORKER_CLASS, MASTER_CLASS):
        with contextlib.suppress(OSError, ValueError):
            processes += _jvm_and_children(int(_pid_file(env, daemon_class).read_text().strip()))
    for daemon_class in (WORKER_CLASS, MASTER_CLASS):
        with contextlib.suppress(subprocess.SubprocessError):
            _daemon(home, env, "stop", daemon_class, "1")
    _, alive = psutil.wait_procs(processes, timeout=20)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=10)


@contextlib.contextmanager
def standalone_cluster(
    worker_memory: str = "1g", worker_cores: int = 1, timeout_s: float = 90.0
) -> Iterator[StandaloneCluster]:
    """Start a master and one worker (``worker_memory`` and ``worker_cores`` for executors) on free loopback
    ports; yield once the worker has registered; stop both, and any executor left, afterwards.

    Raises:
        SparkClusterUnavailableError: no pyspark or Java, or the cluster did not come up (with its logs).
    """
    home = spark_home()
    _check_java()
    root = Path(tempfile.mkdtemp(prefix="clientml-spark-cluster-"))
    (root / "conf").mkdir()  # empty: no spark-env.sh or spark-defaults.conf from elsewhere on the machine
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_CONF_DIR": str(root / "conf"),
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_PID_DIR": str(root / "pids"),
        "SPARK_IDENT_STRING": _IDENT,
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_DAEMON_MEMORY": "256m",  # the master's and the worker's own heap (1g by default)
    }
    env.pop("SPARK_NO_DAEMONIZE", None)  # it would run the daemon in the foreground
    master_port, web_port, worker_port, worker_web_port = (str(free_port()) for _ in range(4))
    worker_options = ["--port", worker_port, "--webui-port", worker_web_port, "--cores", str(worker_cores)]
    worker_options += ["--memory", worker_memory, "--work-dir", str(root / "work")]
    try:
        cluster = StandaloneCluster(f"spark://{LOOPBACK}:{master_port}", int(web_port), root, 0, 0)
        cluster = _start(home, env, cluster, worker_options)
        _wait_for_worker(cluster, timeout_s)
        yield cluster
    finally:
        _stop(home, env)
        shutil.rmtree(root, ignore_errors=True)


def _start(home: Path, env: dict[str, str], cluster: StandaloneCluster, worker_options: list[str]) -> StandaloneCluster:
    """Start the master, then the worker (with ``worker_options``): ``cluster`` with their pids."""
    master_port = cluster.master_url.rsplit(":", 1)[1]
    try:
        _daemon(home, env, "start", MASTER_CLASS, "1", "--host", LOOPBACK, "--port", master_port,
                "--webui-port", str(cluster.web_port))  # fmt: skip
        master_pid = _java_pid(_pid_file(env, MASTER_CLASS))
        _daemon(home, env, "start", WORKER_CLASS, "1", "--host", LOOPBACK, *worker_options, cluster.master_url)
    except subprocess.SubprocessError as exc:
        raise SparkClusterUnavailableError(f"spark-daemon.sh failed: {exc}\n{cluster.logs()}") from exc
    return replace(cluster, master_pid=master_pid, worker_pid=_java_pid(_pid_file(env, WORKER_CLASS)))


def _pid_file(env: dict[str, str], daemon_class: str) -> Path:
    """Where the daemon script writes the pid of ``daemon_class``'s instance 1."""
    return Path(env["SPARK_PID_DIR"]) / f"spark-{env['SPARK_IDENT_STRING']}-{daemon_class}-1.pid"
