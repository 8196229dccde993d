"""Compilation of the encoders: a bundle's encoding steps -> a :class:`LookupEncoder` (when the steps are
a ``ColumnTransformer`` of one-hot encoders and column-wise numeric steps) and the literal
:class:`PipelineEncoder` (always), with its columns traced back to the features by probing."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

from clientml_mle.serve.fastpath.base import UNSEEN_CATEGORY, BundleLike, UnsupportedModelError, dense
from clientml_mle.serve.fastpath.encoders import CategoryBlock, ColumnOp, LookupEncoder, PipelineEncoder
from clientml_mle.serve.fastpath.records import baseline, reference_frame
from clientml_mle.serve.schemas import FeatureLike, RecordValidator

log = logging.getLogger(__name__)

# (feature, first column, end column, known categories) of one one-hot block.
_BlockSpec = tuple[str, int, int, list[str]]


def compile_lookup(
    bundle: BundleLike, pipeline: Any, features: list[FeatureLike], validator: RecordValidator
) -> LookupEncoder:
    """The lookup-table encoder of ``pipeline``'s encoding steps (all but the last step).

    Raises UnsupportedModelError when the steps are not a ``ColumnTransformer`` of one-hot encoders and
    column-wise numeric steps (then the literal encoder serves).
    """
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
    numeric_ops: list[ColumnOp] = []
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
        ops, flagged = numeric_branch(step, out.start, len(sources))
        if len(sources) + len(flagged) != _width(out):
            raise UnsupportedModelError(f"transformer {name!r} ({type(step).__name__}) changes the number of columns")
        numeric_ops.extend(ops)
        for j, source in enumerate(sources):
            numeric_target[source] = out.start + j
            column_feature[out.start + j] = index_of[source]
        for i, j in enumerate(flagged):  # missing-value indicators belong to the feature they flag
            column_feature[out.start + len(sources) + i] = index_of[sources[j]]

    specs: list[_BlockSpec] = []
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
        numeric_ops.extend(_ops_after(transformer, after, specs, n_columns))

    blocks = _probe_tables(bundle, features, pipeline[:-1], specs)
    targets = np.array([numeric_target[n] for n in validator.numeric_names], dtype=np.intp)
    sources_of = {column: name for name, column in numeric_target.items() if column >= 0}
    return LookupEncoder(n_columns, targets, numeric_ops, blocks, column_feature, sources_of)


def _ops_after(transformer: Any, after: list[Any], specs: list[_BlockSpec], n_columns: int) -> list[ColumnOp]:
    """The operations of column-wise steps after the ColumnTransformer, on its numeric columns."""
    if getattr(transformer, "sparse_output_", False):
        raise UnsupportedModelError("column-wise steps after a sparse ColumnTransformer output")
    in_blocks = np.zeros(n_columns, dtype=bool)
    for _, start, stop, _ in specs:
        in_blocks[start:stop] = True
    numeric_columns = np.flatnonzero(~in_blocks)
    out: list[ColumnOp] = []
    for step in after:
        for op in numeric_branch(step, 0, n_columns)[0]:
            if op.op == "indicator":
                raise UnsupportedModelError("missing-value indicators after the ColumnTransformer")
            if len(numeric_columns):
                out.append(ColumnOp(_as_slice(numeric_columns), op.op, op.values[numeric_columns]))
    return out


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


def numeric_branch(step: Any, start: int, width: int) -> tuple[list[ColumnOp], list[int]]:
    """The numpy operations a fitted column-wise numeric step performs in ``transform`` (dense input).

    The step reads the matrix columns ``start, start + 1, ...`` holding its ``width`` input features.
    Returns the operations, in order, and which inputs get a missing-value indicator column
    (``SimpleImputer(add_indicator=True)``, appended after them). Raises UnsupportedModelError for a step
    that is not replayed column by column.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    columns = np.arange(start, start + width)
    ops: list[ColumnOp] = []
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
                ops.append(ColumnOp(_as_slice(targets), "indicator", sources))
                ops.extend(_ops([("fill", statistics)], columns))
                columns = np.concatenate([columns, targets])
                continue
            found = [("fill", statistics)]
        else:
            raise UnsupportedModelError(f"{type(current).__name__} is not replayed column by column")
        ops.extend(_ops(found, columns))
    return ops, flagged


def _ops(found: list[tuple[str, Any]], columns: np.ndarray) -> list[ColumnOp]:
    out = []
    for op, values in found:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.shape != (len(columns),):
            raise UnsupportedModelError(f"a step with {len(array)} values for {len(columns)} columns")
        out.append(ColumnOp(_as_slice(columns), op, array))
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


def _probe_tables(
    bundle: BundleLike, features: list[FeatureLike], prefix: Any, specs: list[_BlockSpec]
) -> list[CategoryBlock]:
    """Every categorical block's table, from the fitted encoding steps run on probe records."""
    base = {f.name: baseline(f) for f in features}
    records: list[dict[str, Any]] = []
    for name, _, _, known in specs:
        records.extend({**base, name: v} for v in [*known, None, UNSEEN_CATEGORY])
    if not records:
        return []
    matrix = quiet_transform(bundle, prefix, records, features)
    blocks = []
    first = 0
    for name, start, stop, known in specs:
        count = len(known) + 2
        lookup: dict[str | None, int] = {v: i for i, v in enumerate(known)}
        lookup[None] = count - 2
        table = matrix[first : first + count, start:stop].copy()
        blocks.append(CategoryBlock(name, start, stop, lookup, table, unseen=count - 1))
        first += count
    return blocks


def quiet_transform(
    bundle: BundleLike, prefix: Any, records: list[dict[str, Any]], features: list[FeatureLike]
) -> np.ndarray:
    """``prefix.transform`` of the records' reference frame, dense ``(len(records), width)`` float64,
    without the "unknown categories" warnings that probe records raise on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dense(prefix.transform(reference_frame(bundle, records, features)))


# --- the literal encoder --------------------------------------------------------------------------------


def pipeline_encoder(
    bundle: BundleLike, pipeline: Any, features: list[FeatureLike], validator: RecordValidator
) -> PipelineEncoder:
    """The literal encoder of ``pipeline[:-1]``; its columns traced to the features when they can be
    (else ``column_feature`` is None, and explanations are unavailable)."""
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
        {f.name: baseline(f) for f in features},
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
    matrix = quiet_transform(bundle, prefix, records, features)
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
