"""A throwaway PostgreSQL server from the machine's own binaries (``initdb``, ``pg_ctl``).

Tests and benchmarks use it so that nothing depends on a server someone started by hand. PostgreSQL
refuses to run as root, so under root the server runs as an unprivileged system user created for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clientml_testkit.servers import LOOPBACK, free_port

_SERVICE_USER = "clientml-pg"


class PostgresUnavailableError(RuntimeError):
    """The machine has no PostgreSQL binaries, or the server did not start."""


def find_binary(name: str) -> str:
    """A PostgreSQL program (``initdb``, ``postgres`` ...): on ``PATH``, else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise PostgresUnavailableError(f"{name} not found on PATH or under /usr/lib/postgresql")


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


@dataclass(frozen=True)
class LocalPostgres:
    """A running throwaway server: its URL, and :meth:`stop` / :meth:`start` on the same data and port
    (an outage and a recovery, for tests of what its clients do meanwhile)."""

    url: str
    _pg_ctl: list[str] = field(repr=False)  # pg_ctl -D <data> (as the service user under root)
    _start_options: list[str] = field(repr=False)

    def start(self) -> None:
        """Start the server and wait until it accepts connections. Raises PostgresUnavailableError."""
        try:
            subprocess.run(
                [*self._pg_ctl, *self._start_options, "-w", "start"], check=True, capture_output=True, text=True
            )
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailableError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: its connections are closed; ``immediate``: no shutdown checkpoint)."""
        subprocess.run([*self._pg_ctl, "-m", mode, "-w", "stop"], capture_output=True, check=False)


@contextlib.contextmanager
def throwaway_server() -> Iterator[LocalPostgres]:
    """Start a fresh server on a free loopback port; yield it; stop and delete it afterwards.

    Raises PostgresUnavailableError when the machine has no PostgreSQL or the server does not start.
    """
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    prefix = _as_service_user()
    root = Path(tempfile.mkdtemp(prefix="clientml-pg-"))
    data, port = root / "data", free_port()
    try:
        if prefix:
            shutil.chown(root, user=_SERVICE_USER)
        options = f"-p {port} -k {root} -c listen_addresses={LOOPBACK} -c fsync=off"
        server = LocalPostgres(
            f"postgresql://postgres@{LOOPBACK}:{port}/postgres",
            [*prefix, pg_ctl, "-D", str(data)],
            ["-o", options, "-l", str(root / "log")],
        )
        try:
            command = [*prefix, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
            subprocess.run(command, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailableError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a fresh server on a free loopback port; yield its URL; stop and delete it afterwards."""
    with throwaway_server() as server:
        yield server.url


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def server_port(url: str) -> int:
    """The port of a ``postgresql://user@host:port/db`` URL."""
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def server_pids(port: int | None) -> list[int]:
    """The postmaster listening on ``port`` (its children are the rest of the server)."""
    if not port:
        return []
    import psutil

    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and f"-p {port}" in " ".join(cmdline):
            pids.append(proc.pid)
    return pids


def server_version() -> str:
    """``PostgreSQL 15.x`` of the binaries :func:`throwaway_postgres` uses."""
    out = subprocess.run([find_binary("postgres"), "--version"], capture_output=True, text=True, check=True)
    return "PostgreSQL " + out.stdout.split()[2]
