"""The verified fast path stored in its bundle (``fastpath.npz``), so that the API serves without the model.

**Written at training.** :func:`clientml_mle.bundle.save_bundle` calls :func:`build`: the pipeline is
compiled and verified as the API would (:func:`~.compile.compile_bundle`, :func:`~.verify.verify`), and the
stages verification kept are written as plain data (arrays, numbers, strings, LightGBM's model text)
together with the probe records and the model's own answers on them (:class:`~.verify.Reference`), into
one numpy ``.npz`` file. The bundle lists and hashes it like every other file, so it cannot change without
the manifest changing, nor the manifest without the bundle's version: the cache key is the version.

**Read at load.** :func:`load` (the API, after the bundle's hashes are checked) refuses a file written for
another model file or other library versions, rebuilds the stages without unpickling anything
(``np.load(allow_pickle=False)`` and JSON), and verifies them again in this process against the stored
answers of the model (:func:`~.verify.check`: the matrix exactly, the probabilities within 1e-9) before
the API may turn ready. Whatever is wrong raises :class:`StoredFastPathError`, and the caller compiles and
verifies from the model instead. Stages that need the model itself (``pipeline-transform``,
``sklearn-predict-proba``) are not stored: such a bundle has no ``fastpath.npz``.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from clientml_mle.manifest import library_versions
from clientml_mle.serve.fastpath.base import BundleLike, VerificationError
from clientml_mle.serve.fastpath.compile import Candidates, compile_bundle
from clientml_mle.serve.fastpath.encoders import CategoryBlock, ColumnOp, Encoder, LookupEncoder
from clientml_mle.serve.fastpath.forest import Forest
from clientml_mle.serve.fastpath.native import NativeBooster
from clientml_mle.serve.fastpath.predictor import VerifiedPredictor
from clientml_mle.serve.fastpath.scorers import (
    CalibratedFold,
    CalibratedScorer,
    Calibrator,
    Explainer,
    IsotonicCalibrator,
    LinearExplainer,
    LinearScorer,
    MeanExplainer,
    Scorer,
    SigmoidCalibrator,
    TreeExplainer,
    TreeScorer,
)
from clientml_mle.serve.fastpath.verify import SOURCE_COMPILED, SOURCE_STORED, Reference, check, model_reference
from clientml_mle.serve.schemas import FeatureLike, RecordValidator

log = logging.getLogger(__name__)

FORMAT = "clientml-fastpath/1"  # bumped whenever what is stored, or how it is read, changes
# The libraries the stored answers and stages depend on: a difference means compiling from the model.
LIBRARIES = ("numpy", "scipy", "scikit-learn", "lightgbm")
_HEADER = "header"


class StoredFastPathError(Exception):
    """A stored fast path that cannot serve here (another format, model or library version; a stage that
    does not rebuild; verification failing): the model is compiled instead. Also raised by :func:`dump`
    for a stage that cannot be stored."""


def build(bundle: BundleLike, model_sha256: str) -> bytes | None:
    """The ``fastpath.npz`` bytes of ``bundle`` (compiled and verified now), or None when its fast path
    needs the model itself or cannot be built (logged). ``model_sha256`` is the SHA-256 of the bundle's
    model file."""
    try:
        candidates, reference = model_reference(compile_bundle(bundle), bundle)
        return dump(check(candidates, reference, SOURCE_COMPILED), reference, model_sha256)
    # The stored fast path only spares the API a compilation: whatever prevents it (a model the API cannot
    # serve, a stage that needs the model, an error of the model itself) must not prevent saving the
    # bundle. The API compiles such a bundle's fast path at load, and refuses it there with the error.
    except Exception as exc:
        log.warning("no stored fast path in this bundle (the API will compile it from the model): %s", exc)
        return None


def dump(predictor: VerifiedPredictor, reference: Reference, model_sha256: str) -> bytes:
    """The ``.npz`` bytes of a verified predictor and the reference answers it was verified on.

    Raises StoredFastPathError when a stage needs the model itself (it cannot be stored).
    """
    writer = _Writer()
    header = {
        "format": FORMAT,
        "model_sha256": model_sha256,
        "libraries": _libraries(),
        "features": [[f.name, f.type] for f in predictor.features],
        "model_type": predictor.model_type,
        "null_refused": sorted(reference.null_refused),
        "records": reference.records,
        "encoder": _dump_encoder(predictor.encoder, writer),
        "scorer": _dump_scorer(predictor.scorer, writer),
        "explainer": None if predictor.explainer is None else _dump_explainer(predictor.explainer, writer),
        "matrix": writer.array(reference.matrix),
        "probabilities": writer.array(reference.probabilities),
    }
    writer.arrays[_HEADER] = np.frombuffer(json.dumps(header, allow_nan=False).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, allow_pickle=False, **writer.arrays)
    return out.getvalue()


def load(data: bytes, manifest: Any, model_sha256: str, max_records: int) -> VerifiedPredictor:
    """The stored fast path of a bundle whose hashes are checked, verified in this process.

    ``manifest`` gives the name, version, threshold and features (a ``Manifest``); ``model_sha256`` is the
    manifest's hash of the model file. Raises StoredFastPathError (see the class).
    """
    try:
        reader = _Reader(data)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise StoredFastPathError(f"unreadable ({type(exc).__name__}: {exc})") from None
    header = reader.header
    if not isinstance(header, dict):
        raise StoredFastPathError("unreadable (its header is not a JSON object)")
    _check_key(header, manifest, model_sha256)
    features: Sequence[FeatureLike] = list(manifest.features)
    try:
        refused = frozenset(str(name) for name in header["null_refused"])
        boosters: dict[str, NativeBooster] = {}
        candidates = Candidates(
            name=str(manifest.name),
            version=str(manifest.version),
            threshold=float(manifest.threshold),
            features=tuple(features),
            validator=RecordValidator(features, max_records, refused),
            model_type=str(header["model_type"]),
            encoders=(_load_encoder(header["encoder"], reader),),
            scorers=(_load_scorer(header["scorer"], reader, boosters),),
            explainer=None if header["explainer"] is None else _load_explainer(header["explainer"], reader, boosters),
            split_boosters=(),
        )
        reference = Reference(
            records=list(header["records"]),
            matrix=reader.array(header["matrix"], np.float64),
            probabilities=reader.array(header["probabilities"], np.float64),
            null_refused=refused,
        )
    # Whatever does not rebuild (a missing key, a wrong type, an inconsistent forest, a model text LightGBM
    # refuses) means the same: this file cannot serve, and the model is compiled instead.
    except Exception as exc:
        raise StoredFastPathError(f"its stages do not rebuild ({type(exc).__name__}: {exc})") from None
    try:
        return check(candidates, reference, SOURCE_STORED)
    except VerificationError as exc:
        raise StoredFastPathError(f"verification failed: {exc}") from None


def _libraries() -> dict[str, str | None]:
    versions = library_versions()
    return {name: versions.get(name) for name in LIBRARIES}


def _check_key(header: dict[str, Any], manifest: Any, model_sha256: str) -> None:
    """StoredFastPathError unless the file is of this format, for this model file, these features and the
    libraries installed here."""
    if header.get("format") != FORMAT:
        raise StoredFastPathError(f"format {header.get('format')!r}, this server reads {FORMAT!r}")
    if header.get("model_sha256") != model_sha256:
        raise StoredFastPathError("written for another model file (its SHA-256 differs)")
    if header.get("features") != [[f.name, f.type] for f in manifest.features]:
        raise StoredFastPathError("written for other features than the manifest's")
    installed, stored = _libraries(), header.get("libraries")
    if stored != installed:
        raise StoredFastPathError(f"written with the libraries {stored}, and this server runs {installed}")


class _Writer:
    """Collects the arrays of the file; each part refers to its arrays by key."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._boosters: dict[int, str] = {}

    def array(self, value: Any) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.asarray(value)
        return key

    def booster(self, booster: NativeBooster) -> str:
        """The key of a booster's model text, stored once however many parts share the booster."""
        if id(booster) not in self._boosters:
            self._boosters[id(booster)] = self.array(np.frombuffer(booster.model.encode(), dtype=np.uint8))
        return self._boosters[id(booster)]


class _Reader:
    """The arrays of a file (loaded without pickle) and its JSON header."""

    def __init__(self, data: bytes) -> None:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            self.arrays = {name: archive[name] for name in archive.files}
        self.header: dict[str, Any] = json.loads(self.arrays.pop(_HEADER).tobytes())

    def array(self, key: str, dtype: Any) -> np.ndarray:
        """The array ``key`` as ``dtype`` (a copy only when the stored dtype differs)."""
        return np.asarray(self.arrays[key], dtype=dtype)

    def text(self, key: str) -> str:
        return self.arrays[key].tobytes().decode()


def _not_storable(stage: Any) -> StoredFastPathError:
    return StoredFastPathError(f"the {type(stage).__name__} stage needs the model itself: it is not stored")


# --- encoder ---------------------------------------------------------------------------------------------


def _dump_encoder(encoder: Encoder, writer: _Writer) -> dict[str, Any]:
    if not isinstance(encoder, LookupEncoder):
        raise _not_storable(encoder)
    return {
        "kind": encoder.kind,
        "n_columns": encoder.n_columns,
        "numeric_targets": writer.array(encoder.numeric_targets),
        "column_feature": writer.array(encoder.column_feature),
        "column_source": [[int(column), name] for column, name in encoder.column_source.items()],
        "ops": [
            {
                "op": op.op,
                "columns": [op.columns.start, op.columns.stop]
                if isinstance(op.columns, slice)
                else writer.array(op.columns),
                "values": writer.array(op.values),
            }
            for op in encoder.numeric_ops
        ],
        "blocks": [
            {
                "name": block.name,
                "start": block.start,
                "stop": block.stop,
                "lookup": [[value, row] for value, row in block.lookup.items()],
                "table": writer.array(block.table),
                "unseen": block.unseen,
            }
            for block in encoder.blocks
        ],
    }


def _load_encoder(spec: dict[str, Any], reader: _Reader) -> LookupEncoder:
    def columns(value: Any) -> slice | np.ndarray:
        return slice(int(value[0]), int(value[1])) if isinstance(value, list) else reader.array(value, np.intp)

    ops = [ColumnOp(columns(op["columns"]), str(op["op"]), reader.arrays[op["values"]]) for op in spec["ops"]]
    blocks = [
        CategoryBlock(
            name=str(block["name"]),
            start=int(block["start"]),
            stop=int(block["stop"]),
            lookup={None if value is None else str(value): int(row) for value, row in block["lookup"]},
            table=reader.array(block["table"], np.float64),
            unseen=int(block["unseen"]),
        )
        for block in spec["blocks"]
    ]
    return LookupEncoder(
        n_columns=int(spec["n_columns"]),
        numeric_targets=reader.array(spec["numeric_targets"], np.intp),
        numeric_ops=ops,
        blocks=blocks,
        column_feature=reader.array(spec["column_feature"], np.intp),
        column_source={int(column): str(name) for column, name in spec["column_source"]},
    )


# --- scorers and explainers ------------------------------------------------------------------------------

_FOREST_ARRAYS = {
    "feature": np.int32,
    "threshold": np.float64,
    "left": np.int32,
    "right": np.int32,
    "nan_left": np.bool_,
    "is_leaf": np.bool_,
    "value": np.float64,
    "roots": np.int32,
}


def _dump_scorer(scorer: Scorer, writer: _Writer) -> dict[str, Any]:
    if isinstance(scorer, TreeScorer):
        forest = scorer.forest
        arrays = None if forest is None else {name: writer.array(getattr(forest, name)) for name in _FOREST_ARRAYS}
        scalars = {} if forest is None else {"n_features": forest.n_features, "sigmoid": forest.sigmoid}
        return {"kind": "trees", "model": writer.booster(scorer.booster), "forest": arrays, **scalars}
    if isinstance(scorer, LinearScorer):
        return {"kind": "linear", "coef": writer.array(scorer.coef), "intercept": writer.array(scorer.intercept)}
    if isinstance(scorer, CalibratedScorer):
        folds = [
            {
                "base": _dump_scorer(fold.base, writer),
                "decides": fold.decides,
                "calibrator": _dump_calibrator(fold.calibrator, writer),
            }
            for fold in scorer.folds
        ]
        return {"kind": "calibrated", "base_kind": scorer.base_kind, "folds": folds}
    raise _not_storable(scorer)


def _load_scorer(spec: dict[str, Any], reader: _Reader, boosters: dict[str, NativeBooster]) -> Scorer:
    kind = spec["kind"]
    if kind == "trees":
        booster = _load_booster(spec["model"], reader, boosters)
        forest = None
        if spec["forest"] is not None:
            arrays = {name: reader.array(spec["forest"][name], dtype) for name, dtype in _FOREST_ARRAYS.items()}
            forest = Forest(n_features=int(spec["n_features"]), sigmoid=float(spec["sigmoid"]), **arrays)
        return TreeScorer(booster, forest)
    if kind == "linear":
        return LinearScorer(reader.array(spec["coef"], np.float64), reader.array(spec["intercept"], np.float64))
    if kind == "calibrated":
        folds = []
        for fold in spec["folds"]:
            base = _load_scorer(fold["base"], reader, boosters)
            if not isinstance(base, TreeScorer | LinearScorer):
                raise ValueError(f"a calibrated fold of kind {fold['base']['kind']!r}")
            folds.append(CalibratedFold(base, bool(fold["decides"]), _load_calibrator(fold["calibrator"], reader)))
        return CalibratedScorer(folds, str(spec["base_kind"]))
    raise ValueError(f"unknown scorer kind {kind!r}")


def _dump_calibrator(calibrator: Calibrator, writer: _Writer) -> dict[str, Any]:
    if isinstance(calibrator, SigmoidCalibrator):
        return {"kind": "sigmoid", "a": calibrator.a, "b": calibrator.b}
    return {
        "kind": "isotonic",
        "x": writer.array(calibrator.x),
        "y": writer.array(calibrator.y),
        "low": calibrator.low,
        "high": calibrator.high,
    }


def _load_calibrator(spec: dict[str, Any], reader: _Reader) -> Calibrator:
    if spec["kind"] == "sigmoid":
        return SigmoidCalibrator(float(spec["a"]), float(spec["b"]))
    if spec["kind"] == "isotonic":
        x, y = reader.array(spec["x"], np.float64), reader.array(spec["y"], np.float64)
        return IsotonicCalibrator(x, y, float(spec["low"]), float(spec["high"]))
    raise ValueError(f"unknown calibrator kind {spec['kind']!r}")


def _dump_explainer(explainer: Explainer, writer: _Writer) -> dict[str, Any]:
    if isinstance(explainer, TreeExplainer):
        return {"kind": "tree", "model": writer.booster(explainer.booster)}
    if isinstance(explainer, LinearExplainer):
        return {"kind": "linear", "coef": writer.array(explainer.coef), "intercept": explainer.intercept}
    return {"kind": "mean", "members": [_dump_explainer(member, writer) for member in explainer.members]}


def _load_explainer(spec: dict[str, Any], reader: _Reader, boosters: dict[str, NativeBooster]) -> Explainer:
    kind = spec["kind"]
    if kind == "tree":
        return TreeExplainer(_load_booster(spec["model"], reader, boosters))
    if kind == "linear":
        return LinearExplainer(reader.array(spec["coef"], np.float64), float(spec["intercept"]))
    if kind == "mean":
        members = [_load_explainer(member, reader, boosters) for member in spec["members"]]
        if not all(isinstance(m, TreeExplainer | LinearExplainer) for m in members):
            raise ValueError("a nested mean explainer")
        return MeanExplainer([m for m in members if isinstance(m, TreeExplainer | LinearExplainer)])
    raise ValueError(f"unknown explainer kind {kind!r}")


def _load_booster(key: str, reader: _Reader, boosters: dict[str, NativeBooster]) -> NativeBooster:
    """The booster of a stored model text, loaded once however many parts share it."""
    if key not in boosters:
        boosters[key] = NativeBooster(reader.text(key))
    return boosters[key]
