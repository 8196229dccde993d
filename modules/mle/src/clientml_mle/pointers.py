"""The files of a models directory: the ``LATEST`` and ``CHAMPION`` pointers, its lock, durable writes.

``LATEST`` names the newest bundle (the contract's pointer), ``CHAMPION`` the one MLflow's champion gate
last promoted. A pointer is a one-line text file replaced atomically (``os.replace`` of an fsynced temporary
file, under an exclusive lock on ``models_dir/.lock``), so a reader sees the old or the new version, never
a partial one. The champion gate holds the same lock from reading the champion to moving ``CHAMPION``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from clientml_de.files import atomic_file

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
CHAMPION_FILE = "CHAMPION"
POINTERS = (LATEST_FILE, CHAMPION_FILE)
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{12}$")
_HELD = threading.local()  # per thread: models directory -> depth of the locked() blocks holding its lock


class BundleIntegrityError(Exception):
    """A bundle is incomplete, altered or not a bundle; the message names the file and the problem."""


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the caller renames it into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def locked(models_dir: Path | str) -> Iterator[None]:
    """An exclusive ``flock`` on ``models_dir/.lock`` for the duration of the block (waits for it).

    Serialises what other processes (and threads) do under the same lock: moving a pointer, the champion
    gate. Re-entrant within a thread: a block inside a block on the same directory (the gate moving
    ``CHAMPION`` with :func:`set_pointer`) holds the lock already, so it does not wait for itself.
    """
    key = str(Path(models_dir).resolve())
    held: dict[str, int] = _HELD.__dict__.setdefault("depth", {})
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    with (Path(models_dir) / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            held[key] = 0
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_pointer(models_dir: Path | str, pointer: str = LATEST_FILE) -> str | None:
    """The version a pointer file (``LATEST`` or ``CHAMPION``) names, or ``None`` when there is none."""
    if pointer not in POINTERS:
        raise ValueError(f"unknown pointer {pointer!r} (use one of {POINTERS})")
    path = Path(models_dir) / pointer
    try:
        version = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not VERSION_PATTERN.match(version):
        raise BundleIntegrityError(f"{path}: {version!r} is not a bundle version")
    return version


class NoModelError(FileNotFoundError):
    """A models directory holds no bundle, or none its pointer names yet; the message says which."""


def require_pointer(models_dir: Path | str, pointer: str = CHAMPION_FILE) -> str:
    """The version ``pointer`` names in ``models_dir``, which holds bundles.

    Raises:
        NoModelError: the directory holds no bundle ("train a model first"), or the pointer is not written
            yet (for ``CHAMPION``: no model has passed the champion gate).
        BundleIntegrityError: the pointer holds something else than a version.
    """
    if not list_versions(models_dir):
        raise NoModelError(f"{models_dir}: no model bundles in this directory (train a model first: clientml train)")
    version = read_pointer(models_dir, pointer)
    if version is None and pointer == CHAMPION_FILE:
        raise NoModelError(
            f"{models_dir}: no champion model yet (no model has passed the champion gate: train with MLflow "
            "tracking on)"
        )
    if version is None:
        raise NoModelError(f"{models_dir}: no {pointer} pointer (train a model first)")
    return version


def read_latest(models_dir: Path | str) -> str | None:
    """The version ``models_dir/LATEST`` points to, or ``None`` when there is no pointer yet."""
    return read_pointer(models_dir, LATEST_FILE)


def serving_pointer(models_dir: Path | str) -> tuple[str, str | None]:
    """The pointer a server follows in ``models_dir`` and the version it names: ``CHAMPION`` once the
    champion gate has written it, else ``LATEST`` (trainings without tracking); ``(LATEST, None)`` when
    there is neither. Raises BundleIntegrityError when a pointer holds something else than a version."""
    champion = read_pointer(models_dir, CHAMPION_FILE)
    if champion is not None:
        return CHAMPION_FILE, champion
    return LATEST_FILE, read_pointer(models_dir, LATEST_FILE)


def list_versions(models_dir: Path | str) -> list[str]:
    """Every published bundle version in ``models_dir``, oldest first."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))


def set_pointer(models_dir: Path | str, version: str, pointer: str, *, only_forward: bool = False) -> bool:
    """Atomically point ``models_dir/<pointer>`` at ``version`` (``os.replace`` of a fsynced temp file).

    With ``only_forward`` the pointer never moves to an older version. Returns whether it moved.
    """
    root = Path(models_dir)
    if pointer not in POINTERS:
        raise ValueError(f"unknown pointer {pointer!r} (use one of {POINTERS})")
    if not VERSION_PATTERN.match(version) or not (root / version / MANIFEST_FILE).is_file():
        raise BundleIntegrityError(f"{root}: {version!r} is not a bundle there, cannot point {pointer} at it")
    with locked(root):
        current = read_pointer(root, pointer)
        if current == version or (only_forward and current is not None and current > version):
            log.info("%s stays on %s (not moved to %s)", pointer, current, version)
            return False
        with atomic_file(root / pointer) as handle:
            handle.write(f"{version}\n".encode())
        fsync_dir(root)
    return True


def resolve_bundle_dir(path: Path | str, pointer: str = LATEST_FILE) -> Path:
    """A bundle directory, or a models directory resolved through a pointer (``LATEST`` by default)."""
    p = Path(path)
    if (p / MANIFEST_FILE).is_file():
        return p
    version = read_pointer(p, pointer)
    if version is not None:
        bundle = p / version
        if not (bundle / MANIFEST_FILE).is_file():
            raise BundleIntegrityError(f"{p / pointer}: points to {version}, which is not a bundle in {p}")
        return bundle
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such models directory or bundle")
    raise FileNotFoundError(
        f"{p}: neither a bundle (no {MANIFEST_FILE}) nor a models directory with a {pointer} pointer "
        "(train a model first)"
    )
