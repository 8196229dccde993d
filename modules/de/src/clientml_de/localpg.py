"""A throwaway PostgreSQL server from the machine's own binaries (``initdb``, ``pg_ctl``).

Tests and benchmarks use it so that nothing depends on a server someone started by hand. PostgreSQL
refuses to run as root, so under root the server runs as an unprivileged system user created for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SERVICE_USER = "clientml-pg"


class PostgresUnavailableError(RuntimeError):
    """The machine has no PostgreSQL binaries, or the server did not start."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise PostgresUnavailableError(f"{name} not found on PATH or under /usr/lib/postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_service_user() -> list[str]:
    """The command prefix that drops root privileges (empty when not root)."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", _SERVICE_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", _SERVICE_USER, "--"]


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a fresh server on a free loopback port; yield its URL; stop and delete it afterwards."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    prefix = _as_service_user()
    root = Path(tempfile.mkdtemp(prefix="clientml-pg-"))
    data, port = root / "data", _free_port()
    try:
        if prefix:
            shutil.chown(root, user=_SERVICE_USER)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            for command in (
                [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            ):
                subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailableError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
