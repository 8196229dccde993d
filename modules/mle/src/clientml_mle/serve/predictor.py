"""The serving fast path: records -> float64 matrix -> the final estimator, with no pandas per call.

A bundle's model is a ``Pipeline``: encoding steps, then a classifier. Serving splits it in two stages,
each with a fast implementation and a literal one to fall back on.

**Encoder** (records -> the matrix ``model[:-1].transform`` gives):

- ``lookup-tables``: when the encoding is a ``ColumnTransformer`` of one-hot encoders (optionally after
  a ``SimpleImputer``) on categorical features and column-wise numeric steps (passthrough,
  ``SimpleImputer``, ``StandardScaler``, ``RobustScaler``, ``MaxAbsScaler``, ``MinMaxScaler``, or a
  ``Pipeline`` of them), possibly followed by further column-wise steps: every numeric feature is
  placed in its output column and the numeric steps replayed as the same numpy operations sklearn
  performs (fill NaN, subtract, divide, ...); every categorical feature's block comes from a small
  table of the block's values for each known category, for null and for an unseen value, obtained by
  running the fitted steps themselves on probe records (so ``drop``, infrequent categories, imputation
  and missing-value handling are whatever the encoder does);
- ``pipeline-transform``: anything else, or should the tables disagree: a DataFrame built from the
  validated records, through ``model[:-1].transform`` (1.5-5 ms per call).

**Scorer** (matrix -> P(label = 1)):

- ``LGBMClassifier``: the trees compiled with numba (:mod:`clientml_mle.serve.forest`), else the
  LightGBM ``Booster`` called directly with one thread;
- ``LogisticRegression``: ``expit(X @ coef_.T + intercept_)``, sklearn's own arithmetic;
- ``CalibratedClassifierCV`` (sigmoid or isotonic) of either: each fold's base model scored as above,
  its calibrator applied with numpy, the folds averaged as sklearn does;
- anything else with ``predict_proba`` (and the fallback of all of the above): the fitted estimator's
  ``predict_proba`` on the numpy matrix.

``FastPredictor.verify`` then checks, before the API reports ready, on a few hundred probe records
(split thresholds of every feature on both sides, nulls, every category, unseen categories): the matrix
must equal the pipeline's transform exactly and the probabilities must equal ``bundle.predict_proba``
within 1e-9. A stage that disagrees is replaced by the next, more literal one; only if the literal path
itself disagrees does verification fail (and the API stay not ready).

**Explanations** (``explain=true``): per source feature contributions to the model's log-odds. LightGBM:
``pred_contrib`` (TreeSHAP); logistic regression: ``coef * encoded value``; ``CalibratedClassifierCV``
of either: the fold base models' contributions averaged (the uncalibrated base models' log-odds).
Other models have none: :meth:`FastPredictor.contributions` raises a 422 saying so.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit

from clientml_mle.serve.forest import Forest, UnsupportedForestError
from clientml_mle.serve.schemas import FeatureLike, InvalidRequestError, RecordValidator, ValidRecords, error_entry

log = logging.getLogger(__name__)

UNSEEN_CATEGORY = "\x00clientml-unseen-category"
VERIFY_TOLERANCE = 1e-9
TOP_CONTRIBUTIONS = 5
# sklearn's _CalibratedClassifier sets probabilities in (1, 1 + 1e-5] to exactly 1.
_CALIBRATED_ONE_SLACK = 1e-5


class UnsupportedModelError(Exception):
    """The bundle's model cannot be served (not a classifier pipeline, or one the API cannot honour)."""


class VerificationError(Exception):
    """Even the literal path disagrees with the bundle's own prediction: the API must not serve it."""


class BundleLike(Protocol):
    """What serving needs of ``clientml_mle.bundle.Bundle``."""

    @property
    def manifest(self) -> Any: ...
    @property
    def model(self) -> Any: ...
    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


# --- encoders --------------------------------------------------------------------------------------


class Encoder(Protocol):
    """Validated records -> the model matrix (what ``model[:-1].transform`` gives)."""

    @property
    def kind(self) -> str: ...
    @property
    def n_columns(self) -> int: ...
    @property
    def column_feature(self) -> np.ndarray | None:
        """The source feature index of every matrix column; None when they cannot be traced."""
        ...

    def encode(self, valid: ValidRecords) -> np.ndarray: ...
    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        """The feature and (about) the raw value giving ``value`` in a numeric column, when known."""
        ...


@dataclass(frozen=True)
class _CategoryBlock:
    """One categorical feature's output columns ``[start, stop)`` and the value table."""

    name: str
    start: int
    stop: int
    lookup: dict[str | None, int]
    table: np.ndarray  # (len(lookup) + 1, stop - start); the last row is an unseen value
    unseen: int


@dataclass(frozen=True)
class _ColumnOp:
    """One column-wise numeric operation, as sklearn performs it, on some matrix columns."""

    columns: slice | np.ndarray
    op: str  # fill (NaN -> value), sub, div, mul, add; indicator (1.0 where the ``values`` columns are NaN)
    values: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        return _apply_op(self.op, x, self.values)


def _apply_op(op: str, x: np.ndarray, values: np.ndarray) -> np.ndarray:
    if op == "fill":
        return np.where(np.isnan(x), values, x)
    if op == "sub":
        return x - values
    if op == "div":
        return x / values
    if op == "mul":
        return x * values
    if op == "add":
        return x + values
    raise ValueError(f"unknown column operation {op!r}")


_INVERSE = {"sub": "add", "add": "sub", "mul": "div", "div": "mul"}


@dataclass
class LookupEncoder:
    """Numeric features into their columns (then the numeric steps replayed), categories via tables."""

    n_columns: int
    numeric_targets: np.ndarray  # output column of each validator.numeric_names entry (-1: unused)
    numeric_ops: list[_ColumnOp]
    blocks: list[_CategoryBlock]
    column_feature: np.ndarray  # source feature index of every output column
    column_source: dict[int, str]  # numeric output column -> its feature
    kind: str = "lookup-tables"

    def encode(self, valid: ValidRecords) -> np.ndarray:
        matrix = np.zeros((valid.n, self.n_columns), dtype=np.float64)
        used = self.numeric_targets >= 0
        if used.all():
            matrix[:, self.numeric_targets] = valid.numeric
        else:
            matrix[:, self.numeric_targets[used]] = valid.numeric[:, used]
        for op in self.numeric_ops:
            if op.op == "indicator":  # SimpleImputer(add_indicator=True): 1.0 where the source is null
                matrix[:, op.columns] = np.isnan(matrix[:, op.values])
            else:
                matrix[:, op.columns] = op.apply(matrix[:, op.columns])
        for block in self.blocks:
            column = valid.categorical[block.name]
            index = np.fromiter(map(block.lookup.get, column, repeat(block.unseen)), dtype=np.intp, count=valid.n)
            matrix[:, block.start : block.stop] = block.table[index]
        return matrix

    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        source = self.column_source.get(column)
        if source is None:
            return None
        positions = np.arange(self.n_columns)
        raw = np.array([value], dtype=np.float64)
        for op in reversed(self.numeric_ops):
            hits = np.flatnonzero(positions[op.columns] == column)
            if len(hits) and op.op in _INVERSE:
                raw = _apply_op(_INVERSE[op.op], raw, op.values[hits])
        number = float(raw[0])
        return (source, number) if math.isfinite(number) else None


@dataclass
class PipelineEncoder:
    """The literal encoder: a DataFrame of the validated records through ``model[:-1].transform``."""

    transformer: Any
    names: list[str]
    numeric_names: list[str]
    categorical_names: list[str]
    n_columns: int
    column_feature: np.ndarray | None
    kind: str = "pipeline-transform"

    def frame(self, valid: ValidRecords) -> pd.DataFrame:
        """The frame ``bundle.feature_frame`` builds: float64 numbers (NaN for null), object categories."""
        data: dict[str, Any] = {name: valid.numeric[:, j] for j, name in enumerate(self.numeric_names)}
        for name in self.categorical_names:
            data[name] = np.array(valid.categorical[name], dtype=object)
        return pd.DataFrame(data, columns=self.names)

    def encode(self, valid: ValidRecords) -> np.ndarray:
        return _dense(self.transformer.transform(self.frame(valid)))

    def raw_value(self, column: int, value: float) -> tuple[str, float] | None:
        return None


# --- scorers and explainers ------------------------------------------------------------------------


class Scorer(Protocol):
    """Model matrix -> P(label = 1)."""

    @property
    def kind(self) -> str: ...
    def predict(self, matrix: np.ndarray) -> np.ndarray: ...


@dataclass
class TreeScorer:
    """A binary LightGBM model: its compiled trees, or its booster (one thread)."""

    booster: Any
    forest: Forest | None

    @property
    def kind(self) -> str:
        return "compiled-trees" if self.forest is not None else "lightgbm-booster"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if self.forest is not None:
            return self.forest.predict(matrix)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The raw score (log-odds): what ``LGBMClassifier.decision_function`` gives."""
        if self.forest is not None:
            return self.forest.raw(matrix)
        return np.asarray(self.booster.predict(matrix, raw_score=True, num_threads=1), dtype=np.float64)


@dataclass
class LinearScorer:
    """A binary logistic regression, with sklearn's arithmetic (``X @ coef_.T + intercept_``, expit)."""

    coef: np.ndarray  # (1, n_columns), as fitted
    intercept: np.ndarray  # (1,)
    kind: str = "linear"

    def decision(self, matrix: np.ndarray) -> np.ndarray:
        return np.reshape(matrix @ self.coef.T + self.intercept, (-1,))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(expit(self.decision(matrix)), dtype=np.float64)


@dataclass
class _CalibratedFold:
    """One fold of a CalibratedClassifierCV: its base model's response, then its calibrator."""

    response: Callable[[np.ndarray], np.ndarray]
    calibrate: Callable[[np.ndarray], np.ndarray]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        proba = self.calibrate(self.response(matrix))
        return np.where((proba > 1.0) & (proba <= 1.0 + _CALIBRATED_ONE_SLACK), 1.0, proba)


@dataclass
class CalibratedScorer:
    """``CalibratedClassifierCV.predict_proba``: the folds' calibrated probabilities averaged."""

    folds: list[_CalibratedFold]
    base_kind: str

    @property
    def kind(self) -> str:
        return f"calibrated({self.base_kind})"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        total = np.zeros(matrix.shape[0], dtype=np.float64)
        for fold in self.folds:
            total += fold.predict(matrix)
        total /= len(self.folds)
        return total


@dataclass
class EstimatorScorer:
    """The literal scorer: the fitted final estimator's ``predict_proba`` on the numpy matrix."""

    estimator: Any
    positive: int  # the column of class 1

    @property
    def kind(self) -> str:
        return f"sklearn-predict-proba({type(self.estimator).__name__})"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        names = getattr(self.estimator, "feature_names_in_", None)
        x: Any = pd.DataFrame(matrix, columns=names) if names is not None else matrix
        return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)[:, self.positive]


Explainer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # matrix -> (per column, bias)


@dataclass
class TreeExplainer:
    """LightGBM's TreeSHAP contributions to the raw score."""

    booster: Any
    kind: str = "lightgbm-pred-contrib"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64)
        return raw[:, :-1], raw[:, -1]


@dataclass
class LinearExplainer:
    """A linear model's ``coef * value`` per column; the intercept is the bias."""

    coef: np.ndarray  # (n_columns,)
    intercept: float
    kind: str = "linear-coef-times-value"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return matrix * self.coef, np.full(matrix.shape[0], self.intercept)


@dataclass
class MeanExplainer:
    """The average of the folds' base-model explanations (CalibratedClassifierCV)."""

    members: list[TreeExplainer | LinearExplainer]

    @property
    def kind(self) -> str:
        return f"calibrated-base({self.members[0].kind})"

    def __call__(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_column = np.zeros(matrix.shape, dtype=np.float64)
        bias = np.zeros(matrix.shape[0], dtype=np.float64)
        for member in self.members:
            columns, base = member(matrix)
            per_column += columns
            bias += base
        return per_column / len(self.members), bias / len(self.members)


# --- the predictor ---------------------------------------------------------------------------------


@dataclass
class FastPredictor:
    """Validated records in, probabilities (and contributions) out."""

    name: str
    version: str
    threshold: float
    features: list[FeatureLike]
    validator: RecordValidator
    model_type: str
    encoder: Encoder
    scorer: Scorer
    explainer: TreeExplainer | LinearExplainer | MeanExplainer | None = None
    # Used, in order, should verification reject the current stage; the last ones are the literal path.
    encoder_fallbacks: list[Encoder] = field(default_factory=list)
    scorer_fallbacks: list[Scorer] = field(default_factory=list)
    split_boosters: list[Any] = field(default_factory=list)  # LightGBM boosters whose splits are probed
    verified: dict[str, Any] = field(default_factory=dict)

    # construction --------------------------------------------------------------------------------

    @classmethod
    def from_bundle(cls, bundle: BundleLike, max_records: int = 10_000) -> FastPredictor:
        """Compile the bundle's pipeline; raise UnsupportedModelError when it cannot be served at all."""
        manifest = bundle.manifest
        features = list(manifest.features)
        validator = RecordValidator(features, max_records)
        pipeline, final = _check_pipeline(bundle.model)
        encoders: list[Encoder] = []
        try:
            encoders.append(_compile_lookup(bundle, pipeline, features, validator))
        except UnsupportedModelError as exc:
            log.info("lookup tables not applicable (%s): the pipeline's own transform encodes", exc)
        encoders.append(_pipeline_encoder(bundle, pipeline, features, validator))
        stage = _final_stage(final)
        return cls(
            name=str(manifest.name),
            version=str(manifest.version),
            threshold=float(manifest.threshold),
            features=features,
            validator=validator,
            model_type=stage.model_type,
            encoder=encoders[0],
            scorer=stage.scorers[0],
            explainer=stage.explainer,
            encoder_fallbacks=encoders[1:],
            scorer_fallbacks=stage.scorers[1:],
            split_boosters=stage.boosters,
        )

    # the hot path --------------------------------------------------------------------------------

    def encode(self, valid: ValidRecords) -> np.ndarray:
        """The model matrix of validated records (what the pipeline's transformer would give)."""
        return self.encoder.encode(valid)

    @property
    def kind(self) -> str:
        """How the matrix is scored (``compiled-trees``, ``linear``, ``calibrated(...)``, ...)."""
        return self.scorer.kind

    @property
    def forest(self) -> Forest | None:
        """The compiled trees when a LightGBM model is scored with them."""
        return self.scorer.forest if isinstance(self.scorer, TreeScorer) else None

    @property
    def n_columns(self) -> int:
        return self.encoder.n_columns

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1) for every row of a model matrix."""
        return self.scorer.predict(matrix)

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        return (probabilities >= self.threshold).astype(np.int64)

    def predict_records(self, records: list[Any]) -> np.ndarray:
        """Validate, encode and score records (raises ``InvalidRequestError``): the in-process API."""
        self.validator.check_count(len(records))
        return self.predict_matrix(self.encode(self.validator.validate_records(records)))

    # explanations --------------------------------------------------------------------------------

    @property
    def explain_kind(self) -> str | None:
        """How contributions are computed, or None when this model has none."""
        return self.explainer.kind if self.explain_unavailable is None and self.explainer is not None else None

    @property
    def explain_unavailable(self) -> str | None:
        """Why ``explain=true`` cannot be honoured for this model (None: it can)."""
        if self.explainer is None:
            return f"explain is not available for model type {self.model_type}"
        if self.encoder.column_feature is None or (self.encoder.column_feature < 0).any():
            return (
                f"explain is not available for this pipeline ({self.model_type}): its encoded columns cannot "
                f"be traced back to the source features"
            )
        return None

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per source feature contributions to the log-odds (encoded columns summed) and the bias.

        Raises ``InvalidRequestError`` (422) when the model has no cheap explanation.
        """
        reason = self.explain_unavailable
        if reason is not None or self.explainer is None or self.encoder.column_feature is None:
            message = reason or "explain is not available"
            raise InvalidRequestError(422, message, [error_entry(["explain"], "explain_unavailable", message)])
        per_column, bias = self.explainer(matrix)
        per_feature = np.zeros((matrix.shape[0], len(self.features)), dtype=np.float64)
        np.add.at(per_feature.T, self.encoder.column_feature, per_column.T)
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
        """Compare with the bundle's own path on probe records, falling back stage by stage.

        Raises VerificationError when even the literal path (``model[:-1].transform`` and the final
        estimator's ``predict_proba``) disagrees.
        """
        records = probe_records(self.features, n, seed, self._probe_cuts())
        frame = reference_frame(bundle, records, self.features)
        valid = self.validator.validate_records(records)
        with warnings.catch_warnings():  # the probe records hold unseen categories on purpose
            warnings.simplefilter("ignore", UserWarning)
            reference_matrix = _dense(bundle.model[:-1].transform(frame))
            reference = positive_probability(bundle.predict_proba(frame))
            matrix = self._verify_encoder(valid, reference_matrix)
            diff = self._verify_scorer(matrix, reference)
        self.verified = {
            "records": len(records),
            "max_abs_diff": diff,
            "tolerance": VERIFY_TOLERANCE,
            "model_type": self.model_type,
            "encoder": self.encoder.kind,
            "scorer": self.kind,
            "explain": self.explain_kind,
        }
        return self.verified

    def _verify_encoder(self, valid: ValidRecords, reference: np.ndarray) -> np.ndarray:
        candidates = [self.encoder, *self.encoder_fallbacks]
        problems: list[str] = []
        for i, encoder in enumerate(candidates):
            self.encoder = encoder  # checked through the very methods the routes call
            try:
                matrix = self.encode(valid)
                problem = _matrix_difference(matrix, reference)
            except Exception as exc:  # a stage that cannot even run is rejected like a wrong one
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                if i:
                    log.warning(
                        "encoder %s rejected (%s); encoding with %s", candidates[0].kind, problems, encoder.kind
                    )
                self.encoder, self.encoder_fallbacks = encoder, candidates[i + 1 :]
                return matrix
            problems.append(f"{encoder.kind}: {problem}")
        self.encoder = candidates[0]
        raise VerificationError(f"the encoder differs from the pipeline's transform ({'; '.join(problems)})")

    def _verify_scorer(self, matrix: np.ndarray, reference: np.ndarray) -> float:
        candidates = [self.scorer, *self.scorer_fallbacks]
        problems: list[str] = []
        for i, scorer in enumerate(candidates):
            self.scorer = scorer
            try:
                fast = self.predict_matrix(matrix)
                diff = float(np.max(np.abs(fast - reference))) if len(fast) else 0.0
                problem = None if diff <= VERIFY_TOLERANCE else f"differs by up to {diff:.3g}"
            except Exception as exc:
                diff, problem = math.inf, f"{type(exc).__name__}: {exc}"
            if problem is None:
                if i:
                    log.warning("scorer %s rejected (%s); scoring with %s", candidates[0].kind, problems, scorer.kind)
                self.scorer, self.scorer_fallbacks = scorer, candidates[i + 1 :]
                return diff
            problems.append(f"{scorer.kind}: {problem}")
        self.scorer = candidates[0]
        raise VerificationError(
            f"fast-path probabilities differ from bundle.predict_proba (tolerance {VERIFY_TOLERANCE:g}) on "
            f"{matrix.shape[0]} probe records: {'; '.join(problems)}"
        )

    def _probe_cuts(self) -> dict[str, list[float]]:
        """Raw values of every feature near the trees' split thresholds (where the encoder is invertible)."""
        cuts: dict[str, set[float]] = {}
        for booster in self.split_boosters:
            for column, thresholds in _split_thresholds(booster).items():
                for threshold in thresholds:
                    found = self.encoder.raw_value(column, threshold)
                    if found is not None:
                        cuts.setdefault(found[0], set()).add(found[1])
        return {name: sorted(values) for name, values in cuts.items()}


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


def _matrix_difference(matrix: np.ndarray, reference: np.ndarray) -> str | None:
    if matrix.shape == reference.shape and np.array_equal(matrix, reference, equal_nan=True):
        return None
    if matrix.shape != reference.shape:
        return f"shapes {matrix.shape} vs {reference.shape}"
    bad = np.argwhere(~np.isclose(reference, matrix, equal_nan=True, rtol=0, atol=0))
    return f"first differences at {bad[:5].tolist()}"


# --- the pipeline ----------------------------------------------------------------------------------


def _check_pipeline(model: Any) -> tuple[Any, Any]:
    """(pipeline, final estimator), or UnsupportedModelError for what cannot be served at all."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        raise UnsupportedModelError("serving needs a Pipeline of encoding step(s), then a classifier")
    final = model.steps[-1][1]
    if not hasattr(final, "predict_proba"):
        raise UnsupportedModelError(f"the last step ({type(final).__name__}) has no predict_proba")
    if 1 not in list(getattr(final, "classes_", [])):
        raise UnsupportedModelError(f"the last step ({type(final).__name__}) has no class 1 (classes_ lacks it)")
    for name, value in model[:-1].get_params(deep=True).items():
        if isinstance(value, OneHotEncoder) and value.handle_unknown == "error":
            raise UnsupportedModelError(
                f"encoder {name!r} rejects unseen categories (handle_unknown='error'), which the API accepts: "
                f"use handle_unknown='ignore' or 'infrequent_if_exist'"
            )
    return model, final


def _binary(estimator: Any) -> bool:
    try:
        return [int(c) for c in getattr(estimator, "classes_", [])] == [0, 1]
    except (TypeError, ValueError):
        return False


@dataclass
class _FinalStage:
    model_type: str
    scorers: list[Scorer]  # fastest first; the last is the literal predict_proba
    explainer: TreeExplainer | LinearExplainer | MeanExplainer | None
    boosters: list[Any]


def _model_type(estimator: Any) -> str:
    name = type(estimator).__name__
    base = getattr(estimator, "estimator", None)
    if base is not None and hasattr(estimator, "calibrated_classifiers_"):
        return f"{name}({_model_type(base)})"
    return name


def _final_stage(final: Any) -> _FinalStage:
    """The scorers (fast to literal), the explainer and the LightGBM boosters of the final estimator."""
    from sklearn.calibration import CalibratedClassifierCV

    literal = EstimatorScorer(final, list(final.classes_).index(1))
    stage = _FinalStage(_model_type(final), [literal], None, [])
    if not _binary(final):
        return stage
    base = _base_model(final)
    if base is not None:
        stage.scorers = [*base.scorers, literal]
        stage.explainer, stage.boosters = base.explainer, base.boosters
    elif isinstance(final, CalibratedClassifierCV):
        _calibrated_stage(final, stage)
    return stage


@dataclass
class _BaseModel:
    scorers: list[Any]  # TreeScorer(s) or a LinearScorer
    explainer: TreeExplainer | LinearExplainer
    boosters: list[Any]


def _base_model(estimator: Any) -> _BaseModel | None:
    """LightGBM and logistic-regression models (binary), or None."""
    from sklearn.linear_model import LogisticRegression

    if not _binary(estimator):
        return None
    booster = getattr(estimator, "booster_", None) if type(estimator).__module__.startswith("lightgbm") else None
    if booster is not None and hasattr(booster, "predict"):
        scorers = []
        try:
            scorers.append(TreeScorer(booster, Forest.from_booster(booster)))
        except (UnsupportedForestError, ImportError) as exc:
            log.info("the booster scores (trees not compiled: %s)", exc)
        scorers.append(TreeScorer(booster, None))
        return _BaseModel(scorers, TreeExplainer(booster), [booster])
    if isinstance(estimator, LogisticRegression):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[0] != 1 or intercept.shape != (1,):
            return None
        return _BaseModel([LinearScorer(coef, intercept)], LinearExplainer(coef[0], float(intercept[0])), [])
    return None


def _calibrated_stage(final: Any, stage: _FinalStage) -> None:
    """CalibratedClassifierCV (sigmoid or isotonic) of LightGBM or logistic-regression folds."""
    folds = list(getattr(final, "calibrated_classifiers_", []))
    bases = [_base_model(_unfrozen(fold.estimator)) for fold in folds]
    if not folds or any(b is None for b in bases) or any(len(fold.calibrators) != 1 for fold in folds):
        return
    models = [b for b in bases if b is not None]
    decides = [hasattr(_unfrozen(fold.estimator), "decision_function") for fold in folds]
    stage.explainer = MeanExplainer([m.explainer for m in models])
    stage.boosters = [booster for m in models for booster in m.boosters]
    calibrators = [c for c in (_calibrator(fold) for fold in folds) if c is not None]
    if len(calibrators) != len(folds):
        return  # e.g. temperature scaling: the literal predict_proba scores
    fast: list[Scorer] = []
    # Level 0: every fold's fastest base scorer (compiled trees where they compile), then the boosters.
    for level in range(max(len(m.scorers) for m in models)):
        scorers = [m.scorers[min(level, len(m.scorers) - 1)] for m in models]
        folds_ = [_CalibratedFold(_response(s, d), c) for s, d, c in zip(scorers, decides, calibrators, strict=True)]
        fast.append(CalibratedScorer(folds_, "+".join(sorted({s.kind for s in scorers}))))
    stage.scorers = [*fast, *stage.scorers]


def _unfrozen(estimator: Any) -> Any:
    """The estimator inside sklearn's FrozenEstimator (``cv="prefit"`` calibration), else itself."""
    return estimator.estimator if type(estimator).__name__ == "FrozenEstimator" else estimator


def _response(scorer: Any, decides: bool) -> Callable[[np.ndarray], np.ndarray]:
    """What CalibratedClassifierCV calibrates: ``decision_function`` when the base model has one
    (logistic regression; LightGBM from 4.7: the raw score), else P(class 1)."""
    if decides:
        response: Callable[[np.ndarray], np.ndarray] = (
            scorer.decision if isinstance(scorer, LinearScorer) else scorer.raw
        )
        return response
    predict: Callable[[np.ndarray], np.ndarray] = scorer.predict
    return predict


def _calibrator(fold: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A fold's calibrator as numpy (sklearn's arithmetic), or None for methods not replayed."""
    from sklearn.isotonic import IsotonicRegression

    method = getattr(fold, "method", None)
    calibrator = fold.calibrators[0]
    if method == "sigmoid" and hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):
        a, b = float(calibrator.a_), float(calibrator.b_)

        def sigmoid(t: np.ndarray) -> np.ndarray:
            return np.asarray(expit(-(a * t + b)), dtype=np.float64)

        return sigmoid
    if method == "isotonic" and isinstance(calibrator, IsotonicRegression) and calibrator.out_of_bounds == "clip":
        x = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
        y = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
        low, high = float(calibrator.X_min_), float(calibrator.X_max_)
        if len(y) == 1:
            return lambda t: np.full(t.shape, y[0])

        def isotonic(t: np.ndarray) -> np.ndarray:  # scipy's interp1d delegates to np.interp for float64
            return np.interp(np.clip(t, low, high), x, y)

        return isotonic
    return None


# --- compilation of the lookup encoder ---------------------------------------------------------------


def _compile_lookup(
    bundle: BundleLike, pipeline: Any, features: list[FeatureLike], validator: RecordValidator
) -> LookupEncoder:
    from sklearn.compose import ColumnTransformer

    steps = [step for _, step in pipeline.steps[:-1] if step is not None and not _is_passthrough(step)]
    if not steps or not isinstance(steps[0], ColumnTransformer):
        first = type(steps[0]).__name__ if steps else "nothing"
        raise UnsupportedModelError(f"the encoding starts with {first}, not a ColumnTransformer")
    transformer, after = steps[0], steps[1:]

    kinds = {f.name: f.type for f in features}
    index_of = {f.name: i for i, f in enumerate(features)}
    names_in = [str(c) for c in getattr(transformer, "feature_names_in_", [])]
    n_columns = sum(_width(s) for s in transformer.output_indices_.values())
    numeric_target = dict.fromkeys(validator.numeric_names, -1)
    column_feature = np.full(n_columns, -1, dtype=np.intp)
    numeric_ops: list[_ColumnOp] = []
    encoders: list[tuple[Any, list[str], int]] = []
    for name, step, columns in transformer.transformers_:
        out = transformer.output_indices_[name]
        if step == "drop" or _width(out) == 0:
            continue
        sources = _column_names(columns, names_in)
        unknown = [c for c in sources if c not in kinds]
        if unknown:
            raise UnsupportedModelError(f"transformer {name!r} reads {unknown}, which the manifest does not list")
        one_hot = _one_hot(step)
        if one_hot is not None:
            if one_hot.handle_unknown not in ("ignore", "infrequent_if_exist"):
                raise UnsupportedModelError(f"encoder {name!r} rejects unseen categories (handle_unknown='error')")
            wrong = [c for c in sources if kinds[c] != "category"]
            if wrong:
                raise UnsupportedModelError(f"encoder {name!r} one-hot encodes non-categorical features {wrong}")
            encoders.append((one_hot, sources, out.start))
            continue
        categorical = [c for c in sources if kinds[c] == "category"]
        if categorical:
            raise UnsupportedModelError(f"categorical feature(s) {categorical} reach {name!r} unencoded")
        ops, flagged = _numeric_branch(step, out.start, len(sources))
        if len(sources) + len(flagged) != _width(out):
            raise UnsupportedModelError(f"transformer {name!r} ({type(step).__name__}) changes the number of columns")
        numeric_ops.extend(ops)
        for j, source in enumerate(sources):
            numeric_target[source] = out.start + j
            column_feature[out.start + j] = index_of[source]
        for i, j in enumerate(flagged):  # missing-value indicators belong to the feature they flag
            column_feature[out.start + len(sources) + i] = index_of[sources[j]]

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

    if after:  # column-wise steps after the ColumnTransformer: the tables include them (probed below)
        if getattr(transformer, "sparse_output_", False):
            raise UnsupportedModelError("column-wise steps after a sparse ColumnTransformer output")
        in_blocks = np.zeros(n_columns, dtype=bool)
        for _, start, stop, _ in specs:
            in_blocks[start:stop] = True
        numeric_columns = np.flatnonzero(~in_blocks)
        for step in after:
            for op in _numeric_branch(step, 0, n_columns)[0]:
                if op.op == "indicator":
                    raise UnsupportedModelError("missing-value indicators after the ColumnTransformer")
                if len(numeric_columns):
                    numeric_ops.append(_ColumnOp(_as_slice(numeric_columns), op.op, op.values[numeric_columns]))

    blocks = _probe_tables(bundle, features, pipeline[:-1], specs)
    targets = np.array([numeric_target[n] for n in validator.numeric_names], dtype=np.intp)
    sources_of = {column: name for name, column in numeric_target.items() if column >= 0}
    return LookupEncoder(n_columns, targets, numeric_ops, blocks, column_feature, sources_of)


def _as_slice(columns: np.ndarray) -> slice | np.ndarray:
    """A slice when the columns are contiguous (a view: faster), else the index array."""
    if len(columns) and np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
        return slice(int(columns[0]), int(columns[0]) + len(columns))
    return columns


def _one_hot(step: Any) -> Any:
    """The OneHotEncoder of a categorical transformer: itself, or ending a Pipeline of imputers."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(step, OneHotEncoder):
        return step
    # A Pipeline of imputers of nulls only, then the encoder: a string reaches the encoder unchanged.
    if (
        isinstance(step, Pipeline)
        and isinstance(step.steps[-1][1], OneHotEncoder)
        and all(isinstance(s, SimpleImputer) and _missing_is_null(s) for _, s in step.steps[:-1])
    ):
        return step.steps[-1][1]
    return None


def _missing_is_null(imputer: Any) -> bool:
    value = imputer.missing_values
    return value is None or (isinstance(value, float) and math.isnan(value))


def _numeric_branch(step: Any, start: int, width: int) -> tuple[list[_ColumnOp], list[int]]:
    """The numpy operations a fitted column-wise numeric step performs in ``transform`` (dense input) on
    the matrix columns ``start, start + 1, ...`` holding its ``width`` input features, and which inputs
    get a missing-value indicator column (``SimpleImputer(add_indicator=True)``, appended after them)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    columns = np.arange(start, start + width)
    ops: list[_ColumnOp] = []
    flagged: list[int] = []
    steps = list(step.steps) if isinstance(step, Pipeline) else [("", step)]
    while steps:
        _, current = steps.pop(0)
        if isinstance(current, Pipeline):
            steps = [*current.steps, *steps]
            continue
        if current is None or _is_passthrough(current):
            continue
        found: list[tuple[str, Any]] = []
        if isinstance(current, StandardScaler):
            found = [("sub", current.mean_)] if current.with_mean else []
            found += [("div", current.scale_)] if current.with_std and current.scale_ is not None else []
        elif isinstance(current, RobustScaler):
            found = [("sub", current.center_)] if current.with_centering else []
            found += [("div", current.scale_)] if current.with_scaling else []
        elif isinstance(current, MaxAbsScaler) and not getattr(current, "clip", False):
            found = [("div", current.scale_)]
        elif isinstance(current, MinMaxScaler) and not current.clip:
            found = [("mul", current.scale_), ("add", current.min_)]
        elif isinstance(current, SimpleImputer) and _missing_is_null(current):
            statistics = np.asarray(current.statistics_, dtype=np.float64)
            if not current.keep_empty_features and not np.isfinite(statistics).all():
                raise UnsupportedModelError("SimpleImputer drops the features it saw no value of")
            if current.add_indicator:
                if flagged or columns[-1] != start + len(columns) - 1:
                    raise UnsupportedModelError("more than one missing-value indicator")
                flagged = [int(j) for j in current.indicator_.features_]
                sources = columns[flagged]
                targets = np.arange(start + len(columns), start + len(columns) + len(flagged))
                ops.append(_ColumnOp(_as_slice(targets), "indicator", sources))
                found = [("fill", statistics)]
                ops.extend(_ops(found, columns))
                columns = np.concatenate([columns, targets])
                continue
            found = [("fill", statistics)]
        else:
            raise UnsupportedModelError(f"{type(current).__name__} is not replayed column by column")
        ops.extend(_ops(found, columns))
    return ops, flagged


def _ops(found: list[tuple[str, Any]], columns: np.ndarray) -> list[_ColumnOp]:
    out = []
    for op, values in found:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.shape != (len(columns),):
            raise UnsupportedModelError(f"a step with {len(array)} values for {len(columns)} columns")
        out.append(_ColumnOp(_as_slice(columns), op, array))
    return out


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
    bundle: BundleLike, features: list[FeatureLike], prefix: Any, specs: list[tuple[str, int, int, list[str]]]
) -> list[_CategoryBlock]:
    """Every categorical block's table, from the fitted encoding steps run on probe records."""
    base = {f.name: _baseline(f) for f in features}
    records: list[dict[str, Any]] = []
    for name, _, _, known in specs:
        records.extend({**base, name: v} for v in [*known, None, UNSEEN_CATEGORY])
    if not records:
        return []
    with warnings.catch_warnings():  # "unknown categories ... encoded as all zeros": the point of the probe
        warnings.simplefilter("ignore", UserWarning)
        matrix = _dense(prefix.transform(reference_frame(bundle, records, features)))
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


# --- the literal encoder ------------------------------------------------------------------------------


def _pipeline_encoder(
    bundle: BundleLike, pipeline: Any, features: list[FeatureLike], validator: RecordValidator
) -> PipelineEncoder:
    prefix = pipeline[:-1]
    encoder = PipelineEncoder(
        prefix, [f.name for f in features], validator.numeric_names, validator.categorical_names, 0, None
    )
    try:
        encoder.n_columns, encoder.column_feature = _trace_columns(bundle, prefix, features)
    except Exception as exc:  # verification reports the transform's own failure
        log.info("the encoded columns could not be traced to features (%s: %s)", type(exc).__name__, exc)
    return encoder


# Values tried for every numeric feature when tracing columns (binning steps need their bins reached).
_TRACE_NUMBERS = sorted(
    {s * m * 10.0**e for s in (-1, 1) for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9) for e in range(-2, 7)} | {0.0}
)


def _trace_columns(bundle: BundleLike, prefix: Any, features: list[FeatureLike]) -> tuple[int, np.ndarray]:
    """(width, source feature of every column): the columns that change when one feature alone changes.

    A column moved by no feature, or by several, is -1 (and then contributions cannot be summed back).
    """
    bases = [
        {f.name: _baseline(f) for f in features},
        {f.name: (None if f.type == "category" else 1) for f in features},
    ]
    records: list[dict[str, Any]] = []
    owners: list[int] = []
    for base in bases:
        records.append(base)
        owners.append(-1)
        for i, feature in enumerate(features):
            if feature.type == "category":
                variants: list[Any] = [*(feature.categories or []), None, UNSEEN_CATEGORY]
            else:
                variants = [*_TRACE_NUMBERS, None]
            for value in variants:
                records.append({**base, feature.name: value})
                owners.append(i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        matrix = _dense(prefix.transform(reference_frame(bundle, records, features)))
    n_columns = matrix.shape[1]
    touched = np.zeros((len(features), n_columns), dtype=bool)
    owner = np.array(owners)
    per_base = len(records) // len(bases)
    for b in range(len(bases)):
        rows = matrix[b * per_base : (b + 1) * per_base]
        differs = ~np.isclose(rows, rows[0], rtol=0, atol=0, equal_nan=True)
        who = owner[b * per_base : (b + 1) * per_base]
        for i in range(len(features)):
            touched[i] |= differs[who == i].any(axis=0)
    counts = touched.sum(axis=0)
    return n_columns, np.where(counts == 1, touched.argmax(axis=0), -1).astype(np.intp)


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


def probe_records(
    features: Sequence[FeatureLike], n: int, seed: int, cuts: Mapping[str, Sequence[float]] | None = None
) -> list[dict[str, Any]]:
    """Records reaching both sides of every cut (raw split values), nulls, every category and unseen ones."""
    rng = np.random.default_rng(seed)
    choices: dict[str, list[Any]] = {}
    for feature in features:
        if feature.type == "category":
            values: list[Any] = [*(feature.categories or []), "unseen-value", ""]
        else:
            points = list((cuts or {}).get(feature.name, []))
            if feature.type == "boolean":
                values = [0, 1, True, False]
            elif feature.type == "integer":
                values = sorted({math.floor(t) + d for t in points for d in (0, 1)} | {0})
                values += [int(v) for v in rng.integers(-10, 1000, 3)]
            else:
                values = [0.0, *points, *(float(np.nextafter(t, math.inf)) for t in points)]
                values += [float(v) for v in rng.normal(0, 100, 4)]
        if feature.nullable:
            values.append(None)
        choices[feature.name] = values
    # Each feature's column cycles through all its values (in random order), so each appears when n allows.
    columns = {}
    for name, values in choices.items():
        order = np.resize(np.arange(len(values)), n)
        rng.shuffle(order)
        columns[name] = [values[int(i)] for i in order]
    return [{name: column[i] for name, column in columns.items()} for i in range(n)]
