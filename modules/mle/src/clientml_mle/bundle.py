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
import json
import logging
import math
import shutil
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from clientml_mle.estimators import positive_proba
from clientml_mle.manifest import (
    DIGEST_CHARS,
    ENCODER_FILE,
    FASTPATH_FILE,
    FORMAT,
    MODEL_FILE,
    PROFILE_FILE,
    FeatureSpec,
    Manifest,
    TrainingData,
    content_digest,
    library_versions,
    read_bundle,
    read_manifest,
    safe_relative,
    sha256,
    verify_bundle,
)
from clientml_mle.monitor.profile import ReferenceProfile
from clientml_mle.pointers import (
    LATEST_FILE,
    MANIFEST_FILE,
    TMP_PREFIX,
    BundleIntegrityError,
    fsync_dir,
    resolve_bundle_dir,
    set_pointer,
    write_bytes,
)
from clientml_mle.schema import coerce_frame, records_frame

# Re-exported: what callers of this module have always found here (the manifest lives in its own module).
__all__ = [
    "ENCODER_FILE",
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "Bundle",
    "Manifest",
    "UntrustedModelError",
    "bundle_from_contents",
    "library_versions",
    "load_bundle",
    "read_manifest",
    "save_bundle",
    "verify_bundle",
]

log = logging.getLogger(__name__)

_COERCED = "clientml_coerced_for"
_PENDING = "pending"  # the version of a bundle being written, until its manifest's digest names it

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


class UntrustedModelError(BundleIntegrityError):
    """A bundle's model contains types outside the allow-list."""


# --- helpers -------------------------------------------------------------------------------------------


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


@contextlib.contextmanager
def _quiet_module_scan() -> Iterator[None]:
    """Silence the FutureWarnings of other libraries' deprecated module attributes while skops (writing,
    auditing or loading) looks up which module a function without ``__module__`` (e.g. a scipy ufunc) belongs
    to: like pickle's ``whichmodule`` it calls ``getattr(module, name)`` on every loaded module, and in a
    process that has imported Airflow each such lookup on one of Airflow's deprecated aliases warns
    (thousands of lines per training in ``clientml pipeline``), though nothing of Airflow is used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _dumps(obj: Any, trusted: frozenset[str]) -> tuple[bytes, list[str]]:
    """``obj`` serialised with skops, and the sorted names of its types a loader trusting ``trusted`` refuses."""
    with _quiet_module_scan():
        import skops.io as sio  # its first import scans too (the modules of scipy's ufuncs)

        data: bytes = sio.dumps(obj)
        return data, sorted(set(sio.get_untrusted_types(data=data)) - trusted)


def untrusted_types(obj: Any, trusted: frozenset[str]) -> list[str]:
    """The types of ``obj``, serialised as a bundle stores it (skops), that a loader trusting ``trusted``
    refuses (sorted names; empty when it loads)."""
    return _dumps(obj, trusted)[1]


def _dump_skops(obj: Any, what: str, trusted: frozenset[str]) -> bytes:
    data, untrusted = _dumps(obj, trusted)
    if untrusted:
        raise UntrustedModelError(
            f"{what} contains types the bundle loader does not trust: {untrusted}; use supported "
            "estimators or add the types to clientml_mle.bundle.TRUSTED_TYPES after review"
        )
    return data


def _load_skops(data: bytes, rel: str, trusted: frozenset[str]) -> Any:
    with _quiet_module_scan():
        import skops.io as sio  # its first import scans too (the modules of scipy's ufuncs)

        untrusted = sorted(set(sio.get_untrusted_types(data=data)))
        refused = [t for t in untrusted if t not in trusted]
        if refused:
            raise UntrustedModelError(f"{rel}: refusing to load untrusted types {refused}")
        return sio.loads(data, trusted=untrusted)


# --- writing -------------------------------------------------------------------------------------------


def _new_version(created: datetime, digest: str) -> str:
    return f"{created:%Y%m%dT%H%M%S}.{created.microsecond:06d}Z-{digest[:DIGEST_CHARS]}"


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
    fast_path: bool = True,
) -> Path:
    """Write a new bundle under ``models_dir`` atomically, point ``LATEST`` at it, return its directory.

    ``model`` is a fitted Pipeline whose first step is the encoder; ``extra_files`` maps a relative path
    in the bundle to a local file to copy there (e.g. ``{"evaluation.json": path}``). With ``fast_path``
    the API's fast path is compiled and verified now and stored in the bundle (``fastpath.npz``, hashed
    like every file), so that the API serves it without loading the model; a model whose fast path needs
    the model itself, or that the API cannot serve, gets none (logged).

    Raises TypeError (not a Pipeline), ValueError (a threshold outside [0, 1], an extra file clashing with
    a bundle file), UntrustedModelError (a type outside ``trusted_types``).
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
        safe = str(safe_relative(rel))
        if safe in payload or safe in (MANIFEST_FILE, FASTPATH_FILE):
            raise ValueError(f"extra file {rel!r} clashes with a bundle file")
        payload[safe] = Path(source).read_bytes()

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": name,
        "version": _PENDING,
        "created_at": created.isoformat(),
        "features": [FeatureSpec.model_validate(f).model_dump(mode="json") for f in features],
        "threshold": float(threshold),
        "metrics": _json_safe(dict(metrics)),
        "training_data": _json_safe(TrainingData.model_validate(dict(training_data)).model_dump(mode="json")),
        "libraries": library_versions(),
        "model_file": MODEL_FILE,
        "encoder_file": ENCODER_FILE,
        "files": {},
    }
    pending = Manifest.model_validate(manifest)  # fail before writing anything
    if fast_path:
        # The bundle as the API will load it, before its version exists (the fast path does not store it).
        bundle = Bundle(path=root, manifest=pending, model=model, encoder=model.steps[0][1])
        stored = _stored_fast_path(bundle, payload[MODEL_FILE])
        if stored is not None:
            payload[FASTPATH_FILE] = stored
    manifest["files"] = {rel: sha256(data) for rel, data in sorted(payload.items())}
    manifest["file_sizes"] = {rel: len(data) for rel, data in sorted(payload.items())}
    version = _new_version(created, content_digest(manifest))
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


def _stored_fast_path(bundle: Bundle, model_bytes: bytes) -> bytes | None:
    """The API's fast path of ``bundle``, compiled and verified, as the bytes of ``fastpath.npz`` (None when
    it cannot be stored: see :func:`clientml_mle.serve.fastpath.stored.build`)."""
    # The serving layer sits above this module: imported when a bundle is written, never when read.
    from clientml_mle.serve.fastpath.stored import build

    return build(bundle, sha256(model_bytes))


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: the manifest, the fitted Pipeline, its encoder and, when the bundle has
    one, the bytes of its reference profile (read and checked with the other files)."""

    path: Path
    manifest: Manifest
    model: Pipeline
    encoder: Any
    profile_json: bytes | None = field(default=None, repr=False, compare=False)

    @cached_property
    def reference_profile(self) -> ReferenceProfile | None:
        """What drift is measured against (:mod:`clientml_mle.monitor.profile`); ``None`` for a bundle written
        before bundles had one. Raises :class:`~clientml_mle.monitor.profile.ProfileError` when it is
        unreadable (another format)."""
        if self.profile_json is None:
            return None
        return ReferenceProfile.from_json(self.profile_json, f"{PROFILE_FILE} of bundle {self.version}")

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
    manifest, contents = read_bundle(bundle_dir)
    return bundle_from_contents(bundle_dir, manifest, contents, trusted_types=trusted_types)


def bundle_from_contents(
    bundle_dir: Path, manifest: Manifest, contents: Mapping[str, bytes], *, trusted_types: Iterable[str] = TRUSTED_TYPES
) -> Bundle:
    """The :class:`Bundle` of files already read and checked (:func:`clientml_mle.manifest.read_bundle`):
    its model and encoder deserialised from those very bytes.

    Raises UntrustedModelError (a type outside ``trusted_types``) or BundleIntegrityError (the model file
    holds no Pipeline).
    """
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
    return Bundle(
        path=bundle_dir, manifest=manifest, model=model, encoder=encoder, profile_json=contents.get(PROFILE_FILE)
    )
