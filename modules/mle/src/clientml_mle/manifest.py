"""A bundle's manifest (``manifest.json``) and its integrity checks, with nothing but pydantic and hashlib.

The light half of :mod:`clientml_mle.bundle`: reading a manifest, checking its content digest and every
file's SHA-256 and size, and listing what a bundle holds, without importing scikit-learn, pandas or skops,
so that the prediction API can check a bundle and serve its stored fast path without them (the model
files are deserialised by :func:`clientml_mle.bundle.load_bundle` only). See :mod:`clientml_mle.bundle`
for the layout and the integrity rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clientml_mle.pointers import MANIFEST_FILE, VERSION_PATTERN, BundleIntegrityError, resolve_bundle_dir

FORMAT = "clientml-bundle/1"
MODEL_FILE = "model.skops"
ENCODER_FILE = "encoder.skops"
# The API's fast path, compiled and verified at training (clientml_mle.serve.fastpath.stored); optional.
FASTPATH_FILE = "fastpath.npz"
# What drift is measured against (clientml_mle.monitor.profile), written at training; absent from older bundles.
PROFILE_FILE = "reference_profile.json"
DIGEST_CHARS = 12
_LIBRARIES = ("scikit-learn", "lightgbm", "skops", "numpy", "pandas", "scipy", "clientml-mle")


FeatureType = Literal["category", "number", "integer", "boolean"]


class FeatureSpec(BaseModel):
    """One input column of a model: its name, type, allowed categories and whether training saw nulls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FeatureType
    # Sorted distinct non-null training values of a categorical feature (None for the other types).
    # Values outside the list are accepted by the models and encoded as "unknown" (all zeros).
    categories: list[str] | None = None
    # True when the training data had nulls in this column: information (e.g. for monitoring drift), not
    # a rule. A null is a missing value in any feature, scored the way the model handles one (LightGBM
    # routes it, the one-hot encoder encodes it as all zeros, an imputer fills it).
    nullable: bool = True


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


def sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def content_digest(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's content without its version (the version embeds this digest)."""
    content = {k: v for k, v in raw.items() if k != "version"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256(canonical.encode())


def library_versions() -> dict[str, str]:
    """Python's version and the installed versions of the libraries a bundle's model depends on (read from
    the packages' metadata: nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def safe_relative(rel: str) -> PurePosixPath:
    """``rel`` as a relative POSIX path; BundleIntegrityError when it could leave the bundle directory."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", "") for p in path.parts) or "\\" in rel:
        raise BundleIntegrityError(f"{rel}: not a plain relative path inside the bundle")
    return path


# --- reading -------------------------------------------------------------------------------------------


def verified_files(bundle_dir: Path, manifest: Manifest) -> dict[str, bytes]:
    """Every file the manifest lists, read and checked (size, SHA-256): relative path -> bytes.

    Raises BundleIntegrityError naming the file: missing, truncated, changed, unlisted (any file of the
    directory the manifest does not list), or a model file the manifest does not hash.
    """
    contents: dict[str, bytes] = {}
    for rel, expected in manifest.files.items():
        path = bundle_dir / safe_relative(rel)
        if not path.is_file():
            raise BundleIntegrityError(f"{rel}: missing from bundle {bundle_dir}")
        data = path.read_bytes()
        size = manifest.file_sizes.get(rel)
        if size is not None and len(data) < size:
            raise BundleIntegrityError(f"{rel}: truncated ({len(data)} of {size} bytes) in bundle {bundle_dir}")
        if sha256(data) != expected:
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
    if content_digest(raw)[:DIGEST_CHARS] != version.rsplit("-", 1)[1]:
        raise BundleIntegrityError(
            f"{MANIFEST_FILE}: changed since the bundle was written (its content digest does not match "
            f"version {version}) in bundle {bundle_dir}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: invalid in bundle {bundle_dir}: {exc}") from None


def read_bundle(bundle_dir: Path | str) -> tuple[Manifest, dict[str, bytes]]:
    """A bundle's manifest and the bytes of every file it lists, all checked, none deserialised.

    Raises BundleIntegrityError (see :func:`read_manifest` and :func:`verified_files`).
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    return manifest, verified_files(bundle_dir, manifest)


def verify_bundle(path: Path | str) -> Manifest:
    """Check a bundle's manifest and every file's hash (no deserialisation); return the manifest.

    ``path`` is a bundle directory, or a models directory (its LATEST bundle). Raises
    BundleIntegrityError (see :func:`read_bundle`), or FileNotFoundError when there is no bundle.
    """
    return read_bundle(resolve_bundle_dir(path))[0]
