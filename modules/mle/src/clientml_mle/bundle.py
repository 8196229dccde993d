"""Model bundles (CONTRACT section 3): a verified directory per trained version and a LATEST pointer.

Layout of ``models_dir``::

    LATEST                                   # text: the newest version, e.g. 20250101T120000.123456Z-3f2a9c1b7d4e
    CHAMPION                                 # text: the version the champion gate last promoted
    20250101T120000.123456Z-3f2a9c1b7d4e/
        manifest.json                        # see Manifest
        model.skops                          # the fitted sklearn Pipeline (encoder + classifier)
        encoder.skops                        # the Pipeline's first step (the one-hot encoder), on its own
        evaluation.json ...                  # any extra files given to save_bundle

Integrity: ``manifest.files`` holds the SHA-256 (and size) of every file but the manifest itself, and the
version's suffix is the SHA-256 of the manifest's own content (all fields but ``version``), so an edited
manifest, a changed, truncated or missing file and an unlisted file are all detected by
:func:`load_bundle` *before* anything is deserialised. The models are stored with ``skops.io`` rather than
pickle: loading a skops file instantiates only allowed types (scikit-learn's, plus :data:`TRUSTED_TYPES`)
and runs no arbitrary code; the bytes that are deserialised are the very bytes that were hashed.

Publication is atomic: a bundle is written to a temporary directory that is renamed into place, then
``LATEST`` is replaced with ``os.replace`` (under a lock, and only ever moved to a newer version).
A second pointer, ``CHAMPION``, names the bundle that MLflow's champion gate last promoted (moved by the
training harness): LATEST is the newest bundle (the contract's pointer), CHAMPION the one that won.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import platform
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.pipeline import Pipeline

from clientml_mle.estimators import positive_proba
from clientml_mle.pointers import (
    LATEST_FILE,
    MANIFEST_FILE,
    TMP_PREFIX,
    VERSION_PATTERN,
    BundleIntegrityError,
    fsync_dir,
    resolve_bundle_dir,
    set_pointer,
    write_bytes,
)
from clientml_mle.schema import FeatureSpec, coerce_frame, records_frame

log = logging.getLogger(__name__)

FORMAT = "clientml-bundle/1"
MODEL_FILE = "model.skops"
ENCODER_FILE = "encoder.skops"
_DIGEST_CHARS = 12
_COERCED = "clientml_coerced_for"

# Types beyond scikit-learn's own that a bundle's models may contain. skops refuses any other type;
# adding one here is a code change, reviewed like one. (LightGBM's Booster is restored from its own
# text model format by ``Booster.__setstate__``.)
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        # Calibrated candidates (CalibratedClassifierCV keeps these private helpers) and imputers
        # (SimpleImputer stores a numpy dtype) of the ds module's model selection.
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    }
)
_LIBRARIES = ("scikit-learn", "lightgbm", "skops", "numpy", "pandas", "scipy", "clientml-mle")


class UntrustedModelError(BundleIntegrityError):
    """A bundle's model contains types outside the allow-list."""


class TrainingData(BaseModel):
    """The data a model was trained on."""

    model_config = ConfigDict(extra="allow")

    table: str
    rows: int
    fingerprint: str


class Manifest(BaseModel):
    """``manifest.json``: what a bundle holds and what its model expects."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str = FORMAT
    name: str
    version: str
    created_at: datetime
    # The model's input columns, in the order the model expects them.
    features: list[FeatureSpec]
    # Probability (of label 1) at or above which the predicted label is 1.
    threshold: float
    metrics: dict[str, Any]
    training_data: TrainingData
    libraries: dict[str, str]
    model_file: str = MODEL_FILE
    encoder_file: str = ENCODER_FILE
    # Relative path (POSIX) -> SHA-256 hex digest, for every file of the bundle but manifest.json.
    files: dict[str, str]
    file_sizes: dict[str, int] = Field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


# --- helpers -------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the manifest is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _content_digest(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's content without its version (the version embeds this digest)."""
    content = {k: v for k, v in raw.items() if k != "version"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(canonical.encode())


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def _safe_relative(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", "") for p in path.parts) or "\\" in rel:
        raise BundleIntegrityError(f"{rel}: not a plain relative path inside the bundle")
    return path


def _dump_skops(obj: Any, what: str, trusted: frozenset[str]) -> bytes:
    import skops.io as sio

    data: bytes = sio.dumps(obj)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - trusted)
    if untrusted:
        raise UntrustedModelError(
            f"{what} contains types the bundle loader does not trust: {untrusted}; use supported "
            "estimators or add the types to clientml_mle.bundle.TRUSTED_TYPES after review"
        )
    return data


def _load_skops(data: bytes, rel: str, trusted: frozenset[str]) -> Any:
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(data=data)))
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise UntrustedModelError(f"{rel}: refusing to load untrusted types {refused}")
    return sio.loads(data, trusted=untrusted)


# --- writing -------------------------------------------------------------------------------------------


def _new_version(created: datetime, digest: str) -> str:
    return f"{created:%Y%m%dT%H%M%S}.{created.microsecond:06d}Z-{digest[:_DIGEST_CHARS]}"


def save_bundle(  # noqa: PLR0917 - the documented positional API
    models_dir: Path | str,
    model: Pipeline,
    features: Sequence[FeatureSpec],
    threshold: float,
    metrics: Mapping[str, Any],
    training_data: Mapping[str, Any],
    name: str,
    extra_files: Mapping[str, Path] | None = None,
    *,
    created_at: datetime | None = None,
    trusted_types: Iterable[str] = TRUSTED_TYPES,
) -> Path:
    """Write a new bundle under ``models_dir`` atomically, point ``LATEST`` at it, return its directory.

    ``model`` is a fitted Pipeline whose first step is the encoder; ``extra_files`` maps a relative path
    in the bundle to a local file to copy there (e.g. ``{"evaluation.json": path}``).
    """
    if not isinstance(model, Pipeline):
        raise TypeError(f"model must be a fitted sklearn Pipeline, not {type(model).__name__}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold {threshold} is not a probability")
    trusted = frozenset(trusted_types)
    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    created = (created_at or datetime.now(UTC)).astimezone(UTC)

    payload: dict[str, bytes] = {
        MODEL_FILE: _dump_skops(model, "the model", trusted),
        ENCODER_FILE: _dump_skops(model.steps[0][1], "the encoder (the Pipeline's first step)", trusted),
    }
    for rel, source in (extra_files or {}).items():
        safe = str(_safe_relative(rel))
        if safe in payload or safe == MANIFEST_FILE:
            raise ValueError(f"extra file {rel!r} clashes with a bundle file")
        payload[safe] = Path(source).read_bytes()

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "version": "",
        "created_at": created.isoformat(),
        "features": [FeatureSpec.model_validate(f).model_dump(mode="json") for f in features],
        "threshold": float(threshold),
        "metrics": _json_safe(dict(metrics)),
        "training_data": _json_safe(TrainingData.model_validate(dict(training_data)).model_dump(mode="json")),
        "libraries": library_versions(),
        "model_file": MODEL_FILE,
        "encoder_file": ENCODER_FILE,
        "files": {rel: _sha256(data) for rel, data in sorted(payload.items())},
        "file_sizes": {rel: len(data) for rel, data in sorted(payload.items())},
    }
    Manifest.model_validate(manifest)  # fail before writing anything
    version = _new_version(created, _content_digest(manifest))
    manifest["version"] = version

    tmp = root / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for rel, data in payload.items():
            write_bytes(tmp / rel, data)
        write_bytes(tmp / MANIFEST_FILE, (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode())
        fsync_dir(tmp)
        final = root / version
        tmp.rename(final)  # atomic; fails if the version exists
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    set_pointer(root, version, LATEST_FILE, only_forward=True)
    log.info("saved bundle %s", final)
    return final


# --- reading -------------------------------------------------------------------------------------------


def _verified_files(bundle_dir: Path, manifest: Manifest) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    for rel, expected in manifest.files.items():
        path = bundle_dir / _safe_relative(rel)
        if not path.is_file():
            raise BundleIntegrityError(f"{rel}: missing from bundle {bundle_dir}")
        data = path.read_bytes()
        size = manifest.file_sizes.get(rel)
        if size is not None and len(data) < size:
            raise BundleIntegrityError(f"{rel}: truncated ({len(data)} of {size} bytes) in bundle {bundle_dir}")
        if _sha256(data) != expected:
            detail = f"size {len(data)}, expected {size}" if size is not None and len(data) != size else "SHA-256"
            raise BundleIntegrityError(
                f"{rel}: changed since the bundle was written ({detail} differs) in bundle {bundle_dir}"
            )
        contents[rel] = data
    listed = set(manifest.files) | {MANIFEST_FILE}
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(bundle_dir).as_posix()
        if rel not in listed:
            raise BundleIntegrityError(f"{rel}: unlisted file in bundle {bundle_dir} (not in the manifest)")
    for rel in (manifest.model_file, manifest.encoder_file):
        if rel not in contents:
            raise BundleIntegrityError(f"{rel}: the manifest names it as a model file but does not hash it")
    return contents


def read_manifest(bundle_dir: Path | str) -> Manifest:
    """Read and verify ``manifest.json`` (its content digest) without touching the other files."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_FILE
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: missing from bundle {bundle_dir}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: not valid JSON in bundle {bundle_dir}: {exc}") from None
    if not isinstance(raw, dict):
        raise BundleIntegrityError(f"{MANIFEST_FILE}: not a JSON object in bundle {bundle_dir}")
    version = str(raw.get("version", ""))
    if not VERSION_PATTERN.match(version):
        raise BundleIntegrityError(f"{MANIFEST_FILE}: version {version!r} is malformed in bundle {bundle_dir}")
    if _content_digest(raw)[:_DIGEST_CHARS] != version.rsplit("-", 1)[1]:
        raise BundleIntegrityError(
            f"{MANIFEST_FILE}: changed since the bundle was written (its content digest does not match "
            f"version {version}) in bundle {bundle_dir}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: invalid in bundle {bundle_dir}: {exc}") from None


def verify_bundle(path: Path | str) -> Manifest:
    """Check a bundle's manifest and every file's hash (no deserialisation); return the manifest."""
    bundle_dir = resolve_bundle_dir(path)
    manifest = read_manifest(bundle_dir)
    _verified_files(bundle_dir, manifest)
    return manifest


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: the manifest, the fitted Pipeline and its encoder."""

    path: Path
    manifest: Manifest
    model: Pipeline
    encoder: Any

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.feature_names

    def feature_frame(self, records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """Records (e.g. parsed JSON) -> the model's input frame (manifest columns and dtypes).

        Missing keys and ``None`` are nulls, which every feature accepts; unknown keys are ignored;
        a non-numeric value for a numeric feature raises ``ValueError`` naming the feature.
        """
        frame = records_frame(records, self.manifest.features)
        frame.attrs[_COERCED] = self.version
        return frame

    def _input(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.attrs.get(_COERCED) == self.version and list(df.columns) == self.feature_names:
            return df
        return coerce_frame(df, self.manifest.features)

    def predict_proba(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Probability of label 1 for each row of ``df`` (any frame holding the feature columns)."""
        x = self._input(df)
        if len(x) == 0:
            return np.empty(0, dtype=np.float64)
        return positive_proba(self.model, x)

    def predict(self, df: pd.DataFrame) -> npt.NDArray[np.int64]:
        """Labels at the bundle's threshold (1 when the probability is >= threshold)."""
        return (self.predict_proba(df) >= self.threshold).astype(np.int64)


def load_bundle(
    path: Path | str, *, pointer: str = LATEST_FILE, trusted_types: Iterable[str] = TRUSTED_TYPES
) -> Bundle:
    """Load a bundle directory, or a models directory's bundle through ``pointer`` (the newest: LATEST).

    ``pointer=CHAMPION_FILE`` gives the bundle MLflow's champion gate last promoted.

    Every file's SHA-256 is checked, and missing or unlisted files refused, before anything is
    deserialised; raises :class:`BundleIntegrityError` naming the file and the problem.
    """
    bundle_dir = resolve_bundle_dir(path, pointer)
    manifest = read_manifest(bundle_dir)
    contents = _verified_files(bundle_dir, manifest)
    trusted = frozenset(trusted_types)
    model = _load_skops(contents[manifest.model_file], manifest.model_file, trusted)
    encoder = _load_skops(contents[manifest.encoder_file], manifest.encoder_file, trusted)
    if not isinstance(model, Pipeline):
        raise BundleIntegrityError(f"{manifest.model_file}: holds a {type(model).__name__}, not a Pipeline")
    current = library_versions()
    for lib in ("scikit-learn", "lightgbm"):
        saved = manifest.libraries.get(lib)
        if saved and current.get(lib) and saved != current[lib]:
            log.warning("bundle %s was saved with %s %s; running %s", manifest.version, lib, saved, current[lib])
    return Bundle(path=bundle_dir, manifest=manifest, model=model, encoder=encoder)
