"""The serving fast path: records -> float64 matrix -> the model's trees, with no pandas or sklearn per call.

At load time the bundle's fitted pipeline (a ``ColumnTransformer`` of one-hot encoders and passthrough
numerics, then an ``LGBMClassifier``) is compiled into:

- for every numeric feature, its output column;
- for every categorical feature, its block of output columns and a small table of the block's values
  for each known category, for null and for an unseen value, all obtained by running the fitted
  transformer itself on probe records (so ``drop``, infrequent categories and missing-value handling
  are whatever the encoder does);
- the trees, compiled (:mod:`clientml_mle.serve.forest`), or else the LightGBM ``Booster`` called
  directly with one thread.

``FastPredictor.verify`` then checks, before the API reports ready, that on a few hundred probe records
(split thresholds of every feature on both sides, nulls, every category, unseen categories) the compiled
matrix equals the pipeline's transform and the probabilities equal ``bundle.predict_proba`` within 1e-9.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Protocol

import numpy as np
import pandas as pd

from clientml_mle.serve.forest import Forest, UnsupportedForestError
from clientml_mle.serve.schemas import FeatureLike, RecordValidator, ValidRecords

log = logging.getLogger(__name__)

UNSEEN_CATEGORY = "\x00clientml-unseen-category"
VERIFY_TOLERANCE = 1e-9
TOP_CONTRIBUTIONS = 5


class UnsupportedModelError(Exception):
    """The bundle's model has a structure the fast path cannot compile."""


class VerificationError(Exception):
    """The fast path disagrees with the bundle's own prediction: the API must not serve it."""


class BundleLike(Protocol):
    """What serving needs of ``clientml_mle.bundle.Bundle``."""

    @property
    def manifest(self) -> Any: ...
    @property
    def model(self) -> Any: ...
    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


@dataclass(frozen=True)
class _CategoryBlock:
    """One categorical feature's output columns ``[start, stop)`` and the value table."""

    name: str
    start: int
    stop: int
    lookup: dict[str | None, int]
    table: np.ndarray  # (len(lookup) + 1, stop - start); the last row is an unseen value
    unseen: int


@dataclass
class FastPredictor:
    """Validated records in, probabilities (and contributions) out."""

    name: str
    version: str
    threshold: float
    features: list[FeatureLike]
    validator: RecordValidator
    booster: Any
    n_columns: int
    numeric_targets: np.ndarray  # output column of each validator.numeric_names entry (-1: unused)
    blocks: list[_CategoryBlock]
    column_feature: np.ndarray  # source feature index of every output column
    forest: Forest | None = None  # the compiled trees; None: the booster scores
    verified: dict[str, Any] = field(default_factory=dict)

    # construction --------------------------------------------------------------------------------

    @classmethod
    def from_bundle(cls, bundle: BundleLike, max_records: int = 10_000) -> FastPredictor:
        manifest = bundle.manifest
        features = list(manifest.features)
        validator = RecordValidator(features, max_records)
        layout = _compile(bundle, features, validator)
        return cls(
            name=str(manifest.name),
            version=str(manifest.version),
            threshold=float(manifest.threshold),
            features=features,
            validator=validator,
            **layout,
        )

    # the hot path --------------------------------------------------------------------------------

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The model matrix of validated records (what the pipeline's transformer would give)."""
        matrix = np.zeros((valid.n, self.n_columns), dtype=np.float64)
        used = self.numeric_targets >= 0
        if used.all():
            matrix[:, self.numeric_targets] = valid.numeric
        else:
            matrix[:, self.numeric_targets[used]] = valid.numeric[:, used]
        for block in self.blocks:
            column = valid.categorical[block.name]
            index = np.fromiter(map(block.lookup.get, column, repeat(block.unseen)), dtype=np.intp, count=valid.n)
            matrix[:, block.start : block.stop] = block.table[index]
        return matrix

    @property
    def kind(self) -> str:
        return "compiled-trees" if self.forest is not None else "lightgbm-booster"

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1) for every row of a model matrix."""
        if self.forest is not None:
            return self.forest.predict(matrix)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return (probabilities >= self.threshold).astype(np.int64)

    def predict_records(self, records: list[Any]) -> np.ndarray:
        """Validate, encode and score records (raises ``InvalidRequestError``): the in-process API."""
        self.validator.check_count(len(records))
        return self.predict_matrix(self.encode(self.validator.validate_records(records)))

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per source feature contributions to the raw score (one-hot columns summed) and the bias."""
        raw = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64)
        per_column, bias = raw[:, :-1], raw[:, -1]
        per_feature = np.zeros((matrix.shape[0], len(self.features)), dtype=np.float64)
        np.add.at(per_feature.T, self.column_feature, per_column.T)
        return per_feature, bias

    def top_contributions(
        self, matrix: np.ndarray, records: Sequence[dict[str, Any]], k: int = TOP_CONTRIBUTIONS
    ) -> list[list[dict[str, Any]]]:
        """The ``k`` largest contributions by absolute value, per record."""
        per_feature, _ = self.contributions(matrix)
        order = np.argsort(-np.abs(per_feature), axis=1, kind="stable")[:, :k]
        names = [f.name for f in self.features]
        out = []
        for i, row in enumerate(order.tolist()):
            record = records[i]
            out.append(
                [
                    {
                        "feature": names[j],
                        "value": _json_value(record.get(names[j])),
                        "contribution": float(per_feature[i, j]),
                    }
                    for j in row
                ]
            )
        return out

    # verification --------------------------------------------------------------------------------

    def verify(self, bundle: BundleLike, n: int = 400, seed: int = 0) -> dict[str, Any]:
        """Compare with the bundle's own path on probe records; raise VerificationError.

        Should the compiled trees disagree, the booster is tried before giving up.
        """
        try:
            return self._verify(bundle, n, seed)
        except VerificationError as exc:
            if self.forest is None:
                raise
            log.warning("compiled trees rejected (%s); scoring with the LightGBM booster", exc)
            self.forest = None
            return self._verify(bundle, n, seed)

    def _verify(self, bundle: BundleLike, n: int, seed: int) -> dict[str, Any]:
        records = probe_records(self.features, self.booster, self.numeric_targets, self.validator, n, seed)
        frame = reference_frame(bundle, records, self.features)
        fast_matrix = self.encode(self.validator.validate_records(records))
        transformer = bundle.model.steps[0][1]
        with warnings.catch_warnings():  # the probe records hold unseen categories on purpose
            warnings.simplefilter("ignore", UserWarning)
            reference_matrix = _dense(transformer.transform(frame))
            reference = positive_probability(bundle.predict_proba(frame))
        if reference_matrix.shape != fast_matrix.shape or not np.array_equal(
            reference_matrix, fast_matrix, equal_nan=True
        ):
            bad = np.argwhere(~np.isclose(reference_matrix, fast_matrix, equal_nan=True, rtol=0, atol=0))
            raise VerificationError(
                f"the compiled encoder differs from the pipeline's transformer "
                f"(shapes {fast_matrix.shape} vs {reference_matrix.shape}; first differences {bad[:5].tolist()})"
            )
        fast = self.predict_matrix(fast_matrix)
        diff = float(np.max(np.abs(fast - reference))) if len(fast) else 0.0
        if not diff <= VERIFY_TOLERANCE:
            raise VerificationError(
                f"fast-path probabilities differ from bundle.predict_proba by up to {diff:.3g} "
                f"(tolerance {VERIFY_TOLERANCE:g}) on {len(records)} probe records"
            )
        self.verified = {
            "records": len(records),
            "max_abs_diff": diff,
            "tolerance": VERIFY_TOLERANCE,
            "scorer": self.kind,
        }
        return self.verified


# --- helpers shared with the routes ----------------------------------------------------------------


def positive_probability(proba: Any) -> np.ndarray:
    array = np.asarray(proba, dtype=np.float64)
    return array[:, 1] if array.ndim == 2 else array


def records_from_frame(frame: pd.DataFrame, features: Sequence[FeatureLike]) -> list[dict[str, Any]]:
    """Feature-store rows as JSON-like records (floats, strings, None), ready for the validator."""
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise KeyError(f"the feature store has no column(s) {missing} that the model needs")
    columns = []
    for feature in features:
        series = frame[feature.name]
        if feature.type == "category":
            values = series.astype(object).where(series.notna(), None).tolist()
        else:
            numbers = pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce")
            array = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
            objects = array.astype(object)
            objects[np.isnan(array)] = None
            values = objects.tolist()
        columns.append(values)
    names = [f.name for f in features]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def reference_frame(bundle: BundleLike, records: list[dict[str, Any]], features: Sequence[FeatureLike]) -> Any:
    """The DataFrame the bundle's own path builds from records (``bundle.feature_frame``)."""
    builder = getattr(bundle, "feature_frame", None)
    if builder is not None:
        return builder(records)
    frame = pd.DataFrame.from_records(records, columns=[f.name for f in features])
    for feature in features:
        if feature.type != "category":
            frame[feature.name] = pd.to_numeric(frame[feature.name], errors="coerce").astype(np.float64)
    return frame


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


# --- compilation -------------------------------------------------------------------------------------


def _compile(bundle: BundleLike, features: list[FeatureLike], validator: RecordValidator) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipeline = bundle.model
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise UnsupportedModelError("the fast path needs a Pipeline of exactly (ColumnTransformer, LGBMClassifier)")
    transformer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(transformer, ColumnTransformer):
        raise UnsupportedModelError(f"step 0 is a {type(transformer).__name__}, not a ColumnTransformer")
    booster = getattr(classifier, "booster_", None)
    if booster is None or not hasattr(booster, "predict"):
        raise UnsupportedModelError(f"the last step ({type(classifier).__name__}) has no LightGBM booster")
    if [int(c) for c in getattr(classifier, "classes_", [0, 1])] != [0, 1]:
        raise UnsupportedModelError("the fast path serves binary classifiers with classes [0, 1] only")

    kinds = {f.name: f.type for f in features}
    index_of = {f.name: i for i, f in enumerate(features)}
    names_in = [str(c) for c in getattr(transformer, "feature_names_in_", [])]
    n_columns = sum(_width(s) for s in transformer.output_indices_.values())
    numeric_target = dict.fromkeys(validator.numeric_names, -1)
    column_feature = np.full(n_columns, -1, dtype=np.intp)
    encoders: list[tuple[OneHotEncoder, list[str], int]] = []
    for name, step, columns in transformer.transformers_:
        out = transformer.output_indices_[name]
        if step == "drop" or _width(out) == 0:
            continue
        sources = _column_names(columns, names_in)
        unknown = [c for c in sources if c not in kinds]
        if unknown:
            raise UnsupportedModelError(f"transformer {name!r} reads {unknown}, which the manifest does not list")
        if _is_passthrough(step):
            if _width(out) != len(sources):
                raise UnsupportedModelError(f"passthrough {name!r} has an unexpected width")
            for j, source in enumerate(sources):
                if kinds[source] == "category":
                    raise UnsupportedModelError(f"categorical feature {source!r} is passed through unencoded")
                numeric_target[source] = out.start + j
                column_feature[out.start + j] = index_of[source]
        elif isinstance(step, OneHotEncoder):
            if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
                raise UnsupportedModelError(f"encoder {name!r} rejects unseen categories (handle_unknown='error')")
            wrong = [c for c in sources if kinds[c] != "category"]
            if wrong:
                raise UnsupportedModelError(f"encoder {name!r} one-hot encodes non-categorical features {wrong}")
            encoders.append((step, sources, out.start))
        else:
            raise UnsupportedModelError(f"transformer {name!r} ({type(step).__name__}) is not supported")

    specs: list[tuple[str, int, int, list[str]]] = []  # (feature, start, stop, known categories)
    for encoder, sources, start in encoders:
        widths = list(getattr(encoder, "_n_features_outs", None) or [len(c) for c in encoder.categories_])
        offset = start
        for j, source in enumerate(sources):
            known = [c for c in encoder.categories_[j] if isinstance(c, str)]
            specs.append((source, offset, offset + widths[j], known))
            column_feature[offset : offset + widths[j]] = index_of[source]
            offset += widths[j]
    # Features the transformer drops (e.g. a category never seen in training) are validated, then unused.
    if (column_feature < 0).any():
        raise UnsupportedModelError("some model columns could not be traced to a feature")
    if booster.num_feature() != n_columns:
        raise UnsupportedModelError(
            f"the booster expects {booster.num_feature()} columns, the transformer gives {n_columns}"
        )

    blocks = _probe_tables(bundle, features, transformer, specs)
    targets = np.array([numeric_target[n] for n in validator.numeric_names], dtype=np.intp)
    forest = None
    try:
        forest = Forest.from_booster(booster)
    except (UnsupportedForestError, ImportError) as exc:
        log.info("the booster scores (trees not compiled: %s)", exc)
    return {
        "forest": forest,
        "booster": booster,
        "n_columns": n_columns,
        "numeric_targets": targets,
        "blocks": blocks,
        "column_feature": column_feature,
    }


def _is_passthrough(step: Any) -> bool:
    """'passthrough', or the identity FunctionTransformer that fitting turns it into."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(step, str):
        return step == "passthrough"
    return isinstance(step, FunctionTransformer) and step.func is None


def _width(out: slice) -> int:
    return int(out.stop - out.start)


def _column_names(columns: Any, names_in: list[str]) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return names_in[columns]
    values = list(np.asarray(columns).ravel()) if not isinstance(columns, list) else columns
    if values and isinstance(values[0], (bool, np.bool_)):
        return [n for n, keep in zip(names_in, values, strict=True) if keep]
    return [names_in[int(v)] if isinstance(v, (int, np.integer)) else str(v) for v in values]


def _baseline(feature: FeatureLike) -> Any:
    if feature.type == "category":
        return feature.categories[0] if feature.categories else "a"
    return 0


def _probe_tables(
    bundle: BundleLike, features: list[FeatureLike], transformer: Any, specs: list[tuple[str, int, int, list[str]]]
) -> list[_CategoryBlock]:
    """Every categorical block's table, from the fitted transformer run on probe records."""
    base = {f.name: _baseline(f) for f in features}
    records: list[dict[str, Any]] = []
    for name, _, _, known in specs:
        records.extend({**base, name: v} for v in [*known, None, UNSEEN_CATEGORY])
    if not records:
        return []
    with warnings.catch_warnings():  # "unknown categories ... encoded as all zeros": the point of the probe
        warnings.simplefilter("ignore", UserWarning)
        matrix = _dense(transformer.transform(reference_frame(bundle, records, features)))
    blocks = []
    first = 0
    for name, start, stop, known in specs:
        count = len(known) + 2
        lookup: dict[str | None, int] = {v: i for i, v in enumerate(known)}
        lookup[None] = count - 2
        table = matrix[first : first + count, start:stop].copy()
        blocks.append(_CategoryBlock(name, start, stop, lookup, table, unseen=count - 1))
        first += count
    return blocks


# --- probe records for verification -----------------------------------------------------------------


def _split_thresholds(booster: Any) -> dict[int, list[float]]:
    """Numeric split thresholds of every model column."""
    found: dict[int, set[float]] = {}
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        threshold = node.get("threshold")
        if node.get("decision_type") == "<=" and isinstance(threshold, (int, float)):
            found.setdefault(int(node["split_feature"]), set()).add(float(threshold))
        stack.extend((node["left_child"], node["right_child"]))
    return {k: sorted(v) for k, v in found.items()}


def probe_records(  # noqa: PLR0917
    features: Sequence[FeatureLike],
    booster: Any,
    numeric_targets: np.ndarray,
    validator: RecordValidator,
    n: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Records that reach both sides of every split, nulls, every category and unseen ones."""
    rng = np.random.default_rng(seed)
    thresholds = _split_thresholds(booster)
    target = dict(zip(validator.numeric_names, numeric_targets.tolist(), strict=True))
    choices: dict[str, list[Any]] = {}
    for feature in features:
        if feature.type == "category":
            values: list[Any] = [*(feature.categories or []), "unseen-value", ""]
        else:
            cuts = thresholds.get(target.get(feature.name, -1), [])
            if feature.type == "boolean":
                values = [0, 1, True, False]
            elif feature.type == "integer":
                values = sorted({math.floor(t) + d for t in cuts for d in (0, 1)} | {0})
            else:
                values = [0.0, *cuts, *(float(np.nextafter(t, math.inf)) for t in cuts)]
                values += [float(v) for v in rng.normal(0, 100, 4)]
        if feature.nullable:
            values.append(None)
        choices[feature.name] = values
    records = []
    for _ in range(n):
        records.append({name: values[int(rng.integers(len(values)))] for name, values in choices.items()})
    return records
