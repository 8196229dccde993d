"""Generated sources and the warehouses built from them, for tests and benchmarks.

:class:`Worlds` makes each generated source (by its generator arguments) and each DuckDB feature store
(by its source) once, so that the module suites share them within a pytest session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_sources(warehouse_url: str, source: Path) -> dict[str, Any]:
    """Load ``source``'s ``clients.csv`` and ``sales.csv`` into the warehouse and build ``feature_store``.

    The three DAGs' work without a scheduler (:func:`clientml_de.tasks.run_all`); returns its summary.
    """
    from clientml_de.tasks import run_all

    return run_all(str(source / "clients.csv"), str(source / "sales.csv"), warehouse_url)


def build_warehouse(source: Path, directory: Path) -> str:
    """A new DuckDB warehouse in ``directory`` with ``source`` loaded and ``feature_store`` built; its URL."""
    url = f"duckdb:///{directory / 'wh.duckdb'}"
    load_sources(url, source)
    return url


class Worlds:
    """Generated sources and their DuckDB feature stores, each made once, in directories from ``mkdir``."""

    def __init__(self, mkdir: Callable[[str], Path]) -> None:
        self._mkdir = mkdir
        self._sources: dict[tuple[Any, ...], Path] = {}
        self._warehouses: dict[Path, str] = {}

    def source(self, n_clients: int, seed: int, **options: Any) -> Path:
        """``clientml_synthetic.generate(out, n_clients, seed, **options)`` (no progress bar), made once."""
        key = (n_clients, seed, *sorted(options.items()))
        if key not in self._sources:
            from clientml_synthetic import generate

            out = self._mkdir(f"generated-{n_clients}-{seed}")
            generate(out, n_clients=n_clients, seed=seed, progress=False, **options)
            self._sources[key] = out
        return self._sources[key]

    def warehouse(self, source: Path) -> str:
        """The URL of a DuckDB warehouse with ``source`` loaded and ``feature_store`` built, made once."""
        if source not in self._warehouses:
            self._warehouses[source] = build_warehouse(source, self._mkdir("warehouse"))
        return self._warehouses[source]
