"""Every DuckDB database this system opens runs within one memory budget, spilling to disk past it.

The budget is ``CLIENTML_MEMORY_LIMIT_MB`` (:class:`~clientml_de.settings.Settings`): DuckDB's own
``memory_limit``, so a load or a feature build of any size completes by spilling to disk instead of
growing the process (or failing) with the file. The rules (``modules/de/README.md``, "Memory"):

- each connection spills into a private directory of its own under ``CLIENTML_SPILL_DIR``
  (``<state_dir>/spill`` by default), removed when the connection closes: DuckDB names its temporary files
  the same way in every process, so two processes sharing one directory would collide;
- ``preserve_insertion_order`` is off (DuckDB may then stream and reorder freely, which needs less memory);
  the one statement whose row order carries meaning, the typed read of a source file whose row numbers
  become line numbers, turns it on for itself (:func:`insertion_order`);
- the databases a load validates in for the PostgreSQL and Spark warehouses are temporary files
  (:func:`scratch_database`), not in-memory databases, so their tables are compressed and paged out too.

What DuckDB counts against ``memory_limit`` is its buffer memory; the process also holds Python, its
libraries and the scan windows of :mod:`clientml_de.csv_structure` (a few tens of MiB), which the peak RSS
in ``clientml pipeline``'s summary includes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from clientml_de.settings import get_settings


@dataclass(frozen=True)
class Budget:
    """The resources a DuckDB connection may use.

    Attributes:
        memory_limit_mb: DuckDB's ``memory_limit``, in MiB.
        spill_root: the directory under which each connection gets its private spill directory.
        threads: DuckDB's worker threads; 0 leaves DuckDB's default (one per core).
    """

    memory_limit_mb: int
    spill_root: Path
    threads: int = 0

    @classmethod
    def from_settings(cls) -> Budget:
        """The budget of ``CLIENTML_MEMORY_LIMIT_MB``, ``CLIENTML_SPILL_DIR`` and ``CLIENTML_DUCKDB_THREADS``."""
        settings = get_settings()
        assert settings.spill_dir is not None  # resolved by the settings' validator
        return cls(settings.memory_limit_mb, settings.spill_dir, settings.duckdb_threads)

    def spill_path(self) -> Path:
        """A new path of this connection's own under :attr:`spill_root`, not created yet.

        DuckDB creates it when it first spills (and a read-only reader that never spills leaves no trace);
        the root is created here when it can be (a reader on a read-only disk then fails only if it spills).
        """
        with contextlib.suppress(OSError):
            self.spill_root.mkdir(parents=True, exist_ok=True)
        return self.spill_root / f"duckdb-{os.getpid()}-{secrets.token_hex(6)}"


def apply_budget(con: duckdb.DuckDBPyConnection, budget: Budget, spill: Path) -> None:
    """Set the memory limit, the spill directory ``spill``, the threads and the insertion order of ``con``.

    The settings belong to the database instance, so every connection to it shares them.

    Raises:
        duckdb.Error: DuckDB refuses a value (e.g. a spill directory it cannot write).
    """
    con.execute(f"SET memory_limit = '{int(budget.memory_limit_mb)}MiB'")
    con.execute("SET temp_directory = ?", [str(spill)])
    con.execute("SET preserve_insertion_order = false")
    if budget.threads:
        con.execute(f"SET threads = {int(budget.threads)}")


def spill_directory(con: duckdb.DuckDBPyConnection) -> Path:
    """The directory ``con`` spills to (DuckDB's ``temp_directory``), created if missing.

    Files a statement needs beside the data (a copy of a source file without its malformed lines) go there,
    on the disk the budget reserves for spilling.
    """
    row = con.execute("SELECT current_setting('temp_directory')").fetchone()
    path = Path(row[0]) if row and row[0] else Path(tempfile.gettempdir())
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Within the block, statements keep their rows in input order (a table's row ids then follow the file)."""
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute("SET preserve_insertion_order = false")


def scratch_database(budget: Budget) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A new DuckDB database in a temporary file, within ``budget``; returns it and its private directory.

    The directory holds the database file and the spill files; the caller closes the connection and then
    removes the directory (:func:`remove_spill`).

    Raises:
        OSError: the directory cannot be created (names it); duckdb.Error: the database cannot be opened there.
    """
    directory = budget.spill_path()
    directory.mkdir(parents=True)
    con = duckdb.connect(str(directory / "scratch.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    apply_budget(con, budget, directory)
    return con, directory


def remove_spill(directory: Path) -> None:
    """Remove a private spill directory and what is left in it (after its connection is closed)."""
    shutil.rmtree(directory, ignore_errors=True)
