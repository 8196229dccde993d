"""Opening the embedded DuckDB warehouse file while other processes use it too.

DuckDB lets one process write a database file, or any number of processes read it, never both at once:
opening a file another process holds in a conflicting mode fails at once with an error that names the
holder's PID. The rule of this system (``modules/de/README.md``, "Concurrent access to the DuckDB
warehouse"):

- readers (API lookups, scoring, training, the notebook) open the file read-only and close it as soon as
  they have read: ``with connect(url, read_only=True) as warehouse: ...`` per request or per job, never one
  connection for the life of a server, so a writer finds the file free between two reads;
- whoever finds the file locked (a load waiting for readers, a reader waiting for a load) waits: it
  retries with growing pauses (50 ms doubling up to 1 s, with jitter), logging each wait at WARNING with
  the holder, for at most ``CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S`` seconds (60 by default), then fails with a
  :class:`~clientml_de.errors.WarehouseError` naming the file and the process holding it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import duckdb
import ibis
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential, wait_random

from clientml_de.errors import WarehouseError

log = logging.getLogger(__name__)
_LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and _LOCK_CONFLICT in str(exc)


def lock_holder(message: str) -> str:
    """``process 1234 (/usr/bin/python3)`` from DuckDB's lock error, or ``another process`` if it names none."""
    holder = _HOLDER.search(message)
    return f"process {holder['pid']} ({holder['program']})" if holder else "another process"


def open_duckdb(path: Path, read_only: bool, timeout_s: float) -> Any:
    """An Ibis DuckDB connection to the file ``path``, waiting while another process holds its lock.

    ``read_only`` opens the file for reading only (many processes may read at once; none may write then).
    The waits are bounded by ``timeout_s`` seconds and logged (see the module docstring).

    Raises:
        WarehouseError: the file is still locked after ``timeout_s`` seconds (names the file and the
            holder's PID and program), or it does not exist and ``read_only`` is set.
    """
    if read_only and not path.is_file():
        raise WarehouseError(
            f"warehouse file {path} does not exist (nothing has been loaded into it yet; "
            "a duckdb:/// URL's path is absolute, e.g. duckdb:///$PWD/warehouse.duckdb)"
        )

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "warehouse file %s is locked by %s; retrying in %.2f s (attempt %d, giving up after %g s)",
            path,
            lock_holder(str(error)),
            pause,
            state.attempt_number,
            timeout_s,
        )

    retrying = Retrying(
        retry=retry_if_exception(_is_lock_conflict),
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential(multiplier=0.05, max=1.0) + wait_random(0, 0.05),
        before_sleep=waiting,
        reraise=True,
    )
    try:
        return retrying(ibis.duckdb.connect, str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if not _is_lock_conflict(exc):
            raise
        holder = lock_holder(str(exc))
        if read_only:
            why = f"{holder}, which is writing to it"
            hint = "a load or feature build holds the file while it runs"
        else:
            why = holder
            hint = "readers should open the file read-only and close it after each read"
        raise WarehouseError(
            f"warehouse file {path} is locked by {why}: gave up after waiting {timeout_s:g} s "
            f"(CLIENTML_WAREHOUSE_LOCK_TIMEOUT_S); {hint}"
        ) from None
