"""Local servers for tests and benchmarks: a free loopback port; a server started, awaited and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on at the moment (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 2.0) -> int:
    """The status of ``GET path`` on a new loopback connection; 0 when nothing answers."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode())
            return int(sock.recv(64).split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group, then SIGKILL to whatever of it is left (stray workers)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _logged(log: Path, ready_log: tuple[str, int] | None) -> bool:
    """Whether ``log`` holds ``ready_log``'s text as many times as it asks (always, without one)."""
    return ready_log is None or log.read_text(errors="replace").count(ready_log[0]) >= ready_log[1]


@contextlib.contextmanager
def serving(
    command: list[str],
    *,
    port: int,
    ready_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    name: str = "the server",
    timeout_s: float = 180.0,
    ready_streak: int = 20,
    ready_log: tuple[str, int] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` in a process group of its own (output to ``log``); yield once it is ready.

    Ready means ``ready_streak`` 200s in a row from ``ready_path``, each on a new connection, and, with
    ``ready_log=(text, n)``, ``text`` written ``n`` times to the log: with several worker processes a
    busy worker may leave every check to an idle one, so the workers' own "ready" lines are the proof
    that each of them is. Raises ``RuntimeError`` with the log's tail when the server exits or is not
    ready within ``timeout_s``. The whole process group is stopped afterwards.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        environment = None if env is None else dict(env)
        stderr = subprocess.STDOUT
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        streak = 0
        while streak < ready_streak:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
            ok = http_status(port, ready_path) == 200 and _logged(log, ready_log)
            streak = streak + 1 if ok else 0
            if not ok:
                time.sleep(0.2)
        yield process
    finally:
        stop_process_group(process)
