"""Load one source file into the warehouse: fetch, parse, validate, publish atomically.

The source is a local path or an ``http(s)://`` / ``s3://`` URI fetched through fsspec. A file that
cannot be read at all raises :class:`~clientml_de.errors.SourceError` before anything is written, so the
previous good tables stay as they were; otherwise every row is loaded, quarantined or counted as an exact
duplicate, and the table and its rejected rows are replaced in one atomic step.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from clientml_de.contract import TableSpec
from clientml_de.errors import SourceError
from clientml_de.header import check_columns, read_header
from clientml_de.validate import discard, stage_csv, validate
from clientml_de.warehouse import LoadSummary, Warehouse

_REMOTE_SCHEMES = ("http", "https", "s3", "gs", "gcs", "abfs", "az")


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[Path]:
    """Yield a local path for ``source``, downloading remote URIs to a temporary file first."""
    scheme = urlparse(source).scheme
    if scheme not in _REMOTE_SCHEMES:
        yield Path(source.removeprefix("file://")).expanduser()
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="clientml-fetch-") as tmp:
        target = Path(tmp) / "source.csv"
        try:
            with fsspec.open(source, "rb") as remote, target.open("wb") as local:
                shutil.copyfileobj(remote, local, length=1 << 20)
        except Exception as exc:  # fsspec raises many kinds, all mean "cannot fetch"
            raise SourceError(f"{source}: cannot fetch ({type(exc).__name__}: {exc})") from exc
        yield target


def load_source(source: str, spec: TableSpec, warehouse: Warehouse) -> LoadSummary:
    """Load ``source`` (a path or URI) into ``spec.table``; see the module docstring for the guarantees.

    Returns what became of the file's rows (also appended to ``load_runs``).

    Raises:
        SourceError: the file cannot be fetched or read at all, a required column is absent, or the table
            a column references is not loaded yet; nothing is written then.
        clientml_de.warehouse.WarehouseError: the warehouse cannot be reached.
        OSError: the spill directory cannot be written (its disk is full: it needs about the file's size).
    """
    with local_copy(source) as path:
        header = read_header(path)
        check_columns(path, header, spec)
        scratch = warehouse.scratch()
        reference = None
        for column in spec.columns:
            if column.references:
                ref_table, ref_column = column.references.split(".")
                if not warehouse.has_table(ref_table):
                    raise SourceError(
                        f"{source}: cannot check {column.name} before table {ref_table!r} is loaded "
                        f"(load {ref_table} first)"
                    )
                reference = warehouse.reference_sql(scratch, ref_table, ref_column)
        try:
            stage_csv(scratch, path, header, spec.table)
            validated = validate(scratch, spec, header, source, reference)
            counts = validated.counts
            summary = LoadSummary(
                table=spec.table,
                source_file=source,
                rows_read=counts.rows_read,
                rows_loaded=counts.rows_loaded,
                rows_rejected=counts.rows_rejected,
                duplicates=counts.duplicates,
                ignored_columns=counts.ignored_columns,
                run_id=uuid.uuid4().hex,
            )
            warehouse.publish_load(validated, summary)
        finally:
            # Best effort: the relations are temporary and the spill directory goes with the connection, and
            # a failure here must not hide the error that brought us here.
            with contextlib.suppress(duckdb.Error, OSError):
                discard(scratch, spec.table)
    return summary
