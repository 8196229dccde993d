"""What a record of the prediction API must be: the per-value checks, the validator and the request model
(the other request and response models are in :mod:`clientml_mle.serve.api_models`).

The record model is generated from the bundle's feature specs: every feature is a required field, no
other field is allowed, and each value must have the feature's JSON type:

- ``number``: a JSON number (``3``, ``3.5``); not a string, not a boolean;
- ``integer``: a JSON number without a fractional part (``3`` or ``3.0``, as pandas writes nullable ints);
- ``boolean``: ``true``/``false`` or ``0``/``1``;
- ``category``: a string; values the model has not seen are accepted and encoded as the model's one-hot
  encoder does (no category set);
- ``null``: a missing value, in any feature, whether or not training saw one (the manifest's ``nullable``
  only records that); it is scored the way the model handles missing values. The one exception is a
  feature the model itself cannot score without a value (found by probing the model at startup, e.g. a
  bare ``LogisticRegression`` on that column): there a null is refused. A ``float('nan')`` counts as null.

Two implementations share the per-value checks below: ``RecordValidator`` (the hot path, columnar,
used by the routes) and the pydantic ``TypeAdapter`` built by ``RequestSchema`` (the OpenAPI
document and the reference the tests compare the hot path with). Both report errors located as
``records.<index>.<feature>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import ConfigDict, Field, PlainValidator, TypeAdapter, WithJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

FeatureType = Literal["category", "number", "integer", "boolean"]
MAX_REPORTED_ERRORS = 50


class FeatureLike(Protocol):
    """What serving needs of a feature spec (``clientml_mle.schema.FeatureSpec``)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def categories(self) -> Sequence[str] | None: ...
    @property
    def nullable(self) -> bool: ...


# --- per-value checks (the single definition of what a feature accepts) -------------------------

_TYPE_ERRORS: dict[str, tuple[str, str]] = {
    "number": ("number_type", "Input should be a number"),
    "integer": ("integer_type", "Input should be an integer (a number without a fractional part)"),
    "boolean": ("boolean_type", "Input should be a boolean (true/false or 0/1)"),
    "category": ("category_type", "Input should be a string (a category)"),
}
NULL_ERROR = ("null_not_allowed", "Input should not be null: this model cannot score a missing value here")


def _is_null(value: Any) -> bool:
    return value is None or (type(value) is float and math.isnan(value))


def _value_ok(kind: str, value: Any) -> bool:
    """Whether a non-null value is valid for a feature of this type."""
    t = type(value)
    if kind == "category":
        return t is str
    if t is int:
        return kind != "boolean" or value in (0, 1)
    if t is float:
        if not math.isfinite(value):
            return False
        if kind == "integer":
            return value.is_integer()
        if kind == "boolean":
            return value in (0.0, 1.0)
        return True
    return t is bool and kind == "boolean"


def value_error(kind: str, accepts_null: bool, value: Any) -> tuple[str, str] | None:
    """The (type, message) of the error for this value of a feature of type ``kind``, or None when it is
    valid; a null is valid where ``accepts_null``."""
    if _is_null(value):
        return None if accepts_null else NULL_ERROR
    return None if _value_ok(kind, value) else _TYPE_ERRORS[kind]


def _pydantic_check(kind: str, accepts_null: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        error = value_error(kind, accepts_null, value)
        if error is not None:
            raise PydanticCustomError(error[0], error[1])
        return value

    return check


def _json_schema(feature: FeatureLike, accepts_null: bool) -> dict[str, Any]:
    kind = feature.type
    if kind == "category":
        schema: dict[str, Any] = {"type": "string"}
        if feature.categories:
            known = ", ".join(feature.categories)
            schema["description"] = f"Known categories: {known}. Other values are accepted (no category set)."
            schema["examples"] = list(feature.categories[:3])
    elif kind == "integer":
        schema = {"type": "integer"}
    elif kind == "boolean":
        schema = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
    else:
        schema = {"type": "number"}
    if accepts_null:
        return {"anyOf": [schema, {"type": "null"}], "title": feature.name}
    return {**schema, "title": feature.name}


# --- errors ---------------------------------------------------------------------------------------


@dataclass
class InvalidRequestError(Exception):
    """A request body the API rejects: HTTP status, a summary and the located errors."""

    status: int
    message: str
    errors: list[dict[str, Any]]

    def __str__(self) -> str:
        return self.message


def error_entry(loc: Sequence[str | int], type_: str, msg: str) -> dict[str, Any]:
    """One located error, as the API returns it (``field`` is the dotted ``loc``)."""
    return {"field": ".".join(str(p) for p in loc), "loc": list(loc), "type": type_, "msg": msg}


def invalid(errors: list[dict[str, Any]], status: int = 422) -> InvalidRequestError:
    fields = ", ".join(e["field"] for e in errors[:5]) + (", ..." if len(errors) > 5 else "")
    noun = "error" if len(errors) == 1 else "errors"
    message = f"invalid request: {len(errors)} {noun} ({fields})"
    return InvalidRequestError(status, message, errors[:MAX_REPORTED_ERRORS])


# --- the hot path ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidRecords:
    """Validated records, as columns: a float64 matrix of the numeric features and one list per
    categorical feature (str or None)."""

    n: int
    numeric: np.ndarray  # (n, len(numeric_names)), NaN for null
    categorical: dict[str, list[str | None]]


_NUMERIC_TYPES = frozenset({int, float, type(None)})
_BOOLEAN_TYPES = frozenset({int, float, bool, type(None)})
_CATEGORY_TYPES = frozenset({str, type(None)})


class RecordValidator:
    """Columnar validation of ``records`` (lists of dicts as parsed from JSON).

    Every feature accepts null but those named in ``null_refused`` (features the model cannot score
    without a value). The common case (every record valid) costs a few C-level passes per feature;
    anything unusual falls back to a per-value scan that locates every error.
    """

    def __init__(self, features: Sequence[FeatureLike], max_records: int, null_refused: Iterable[str] = ()) -> None:
        self.features = list(features)
        self.max_records = max_records
        self.names = [f.name for f in self.features]
        self.null_refused = frozenset(null_refused)
        self._keys = frozenset(self.names)
        self._kind = {f.name: f.type for f in self.features}
        self._accepts_null = {f.name: f.name not in self.null_refused for f in self.features}
        # Numeric features (number, integer, boolean) in model order: the columns of ValidRecords.numeric.
        self.numeric_names = [f.name for f in self.features if f.type != "category"]
        self.categorical_names = [f.name for f in self.features if f.type == "category"]
        self._getters = {name: itemgetter(name) for name in self.names}
        self._numeric_getter = _tuple_getter(self.numeric_names)
        kinds = np.array([self._kind[n] for n in self.numeric_names], dtype=object)
        self._has_boolean = bool((kinds == "boolean").any())
        self._numeric_types = _BOOLEAN_TYPES if self._has_boolean else _NUMERIC_TYPES
        # With boolean features, the other numeric features are type-checked on their own (no JSON bools).
        self._non_boolean_getter = _tuple_getter([n for n in self.numeric_names if self._kind[n] != "boolean"])
        self._integer_cols = np.flatnonzero(kinds == "integer")
        self._boolean_cols = np.flatnonzero(kinds == "boolean")
        accepts_null = np.array([self._accepts_null[n] for n in self.numeric_names], dtype=bool)
        self._not_null_cols = np.flatnonzero(~accepts_null)
        # The same rules per value, for a single record (see _one).
        self._numeric_rules = [(self._kind[n], self._accepts_null[n]) for n in self.numeric_names]
        self._categorical_rules = [(n, self._accepts_null[n]) for n in self.categorical_names]

    # public ---------------------------------------------------------------------------------------

    def validate_payload(self, payload: Any) -> ValidRecords:
        """Validate a whole request body ``{"records": [...]}``; raise InvalidRequestError."""
        if type(payload) is not dict:
            raise invalid([error_entry(["body"], "dict_type", "Input should be a JSON object")])
        extra = [k for k in payload if k != "records"]
        errors = [error_entry([k], "extra_forbidden", "Extra inputs are not permitted") for k in extra]
        if "records" not in payload:
            errors.insert(0, error_entry(["records"], "missing", "Field required"))
            raise invalid(errors)
        records = payload["records"]
        if type(records) is not list:
            errors.insert(0, error_entry(["records"], "list_type", "Input should be a valid list"))
            raise invalid(errors)
        self.check_count(len(records))
        if errors:
            raise invalid(errors + self.record_errors(records))
        return self.validate_records(records)

    def check_count(self, n: int) -> None:
        if n == 0:
            raise invalid([error_entry(["records"], "too_short", "records should hold at least 1 record")])
        if n > self.max_records:
            msg = f"too many records: {n} > limit {self.max_records} per request"
            raise InvalidRequestError(413, msg, [error_entry(["records"], "too_long", msg)])

    def validate_records(self, records: list[Any]) -> ValidRecords:
        """Validate a list of records (assumed non-empty and within the limit); raise InvalidRequestError."""
        result = self._fast(records)
        if result is None:
            errors = self.record_errors(records)
            if not errors:  # pragma: no cover - the two paths are tested to agree
                raise AssertionError("fast validation rejected records the full scan accepts")
            raise invalid(errors)
        return result

    def record_errors(self, records: Iterable[Any]) -> list[dict[str, Any]]:
        """Every error of every record (the slow, exhaustive scan)."""
        errors: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            if type(record) is not dict:
                errors.append(error_entry(["records", i], "dict_type", "Input should be a JSON object"))
                continue
            for name in self.names:
                if name not in record:
                    errors.append(error_entry(["records", i, name], "missing", "Field required"))
                    continue
                error = value_error(self._kind[name], self._accepts_null[name], record[name])
                if error is not None:
                    errors.append(error_entry(["records", i, name], *error))
            for key in record:
                if key not in self._keys:
                    msg = "Extra inputs are not permitted (not a feature of this model)"
                    errors.append(error_entry(["records", i, str(key)], "extra_forbidden", msg))
            if len(errors) > MAX_REPORTED_ERRORS * 4:
                break
        return errors

    # internals ------------------------------------------------------------------------------------

    def _fast(self, records: list[Any]) -> ValidRecords | None:
        n = len(records)
        if n == 1:
            return self._one(records[0])
        if set(map(type, records)) != {dict} or set(map(len, records)) != {len(self.names)}:
            return None
        try:  # every record has exactly as many keys as there are features: a KeyError is the only way out
            numeric = self._numeric(records, n)
            if numeric is None:
                return None
            categorical: dict[str, list[str | None]] = {}
            for name in self.categorical_names:
                column = list(map(self._getters[name], records))
                types = set(map(type, column))
                if not types <= _CATEGORY_TYPES or (type(None) in types and not self._accepts_null[name]):
                    return None
                categorical[name] = column
        except KeyError:
            return None
        return ValidRecords(n, numeric, categorical)

    def _one(self, record: Any) -> ValidRecords | None:
        """:meth:`_fast` for a single record, the most common request: the same rules checked on the
        Python values (numpy's cost per call, a dozen calls, was most of a record's validation)."""
        if type(record) is not dict or len(record) != len(self.names):
            return None
        try:
            numbers = self._numeric_getter(record) if self.numeric_names else ()
            categories = {name: [record[name]] for name in self.categorical_names}
        except KeyError:
            return None
        for value, (kind, accepts_null) in zip(numbers, self._numeric_rules, strict=True):
            kind_of = type(value)
            if value is None or (kind_of is float and math.isnan(value)):
                if not accepts_null:
                    return None
            elif kind_of is float:
                if math.isinf(value) or (kind == "integer" and not value.is_integer()):
                    return None
                if kind == "boolean" and value not in (0.0, 1.0):
                    return None
            elif kind_of is int:
                if kind == "boolean" and value not in (0, 1):
                    return None
            elif kind_of is not bool or kind != "boolean":
                return None
        for name, accepts_null in self._categorical_rules:
            value = categories[name][0]
            if (value is None and not accepts_null) or (value is not None and type(value) is not str):
                return None
        numeric = np.array([numbers], dtype=np.float64).reshape(1, len(self.numeric_names))
        return ValidRecords(1, numeric, categories)

    def _numeric(self, records: list[Any], n: int) -> np.ndarray | None:
        k = len(self.numeric_names)
        if k == 0:
            return np.empty((n, 0), dtype=np.float64)
        rows = list(map(self._numeric_getter, records))
        if not set(map(type, chain.from_iterable(rows))) <= self._numeric_types:
            return None
        matrix = np.array(rows, dtype=np.float64)
        if matrix.shape != (n, k):  # pragma: no cover - rows are tuples of k scalars
            return None
        if np.isinf(matrix).any():
            return None
        nan = np.isnan(matrix)
        if self._not_null_cols.size and nan[:, self._not_null_cols].any():
            return None
        if self._integer_cols.size:
            ints = matrix[:, self._integer_cols]
            if not np.all((ints == np.floor(ints)) | np.isnan(ints)):
                return None
        if self._has_boolean:
            bools = matrix[:, self._boolean_cols]
            if not np.all((bools == 0.0) | (bools == 1.0) | np.isnan(bools)):
                return None
            # A JSON boolean in a number/integer column is a type error.
            others = chain.from_iterable(map(self._non_boolean_getter, records))
            if bool in set(map(type, others)):
                return None
        return matrix


def _tuple_getter(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Like ``itemgetter(*names)`` but always returning a tuple."""
    if len(names) == 1:
        name = names[0]
        return lambda record: (record[name],)
    if not names:
        return lambda record: ()
    return itemgetter(*names)


# --- the pydantic model (OpenAPI and reference) ---------------------------------------------------


class RequestSchema:
    """The pydantic request model generated from the feature specs (every feature nullable but those in
    ``null_refused``, as :class:`RecordValidator`)."""

    def __init__(self, features: Sequence[FeatureLike], max_records: int, null_refused: Iterable[str] = ()) -> None:
        fields: dict[str, Any] = {}
        refused = frozenset(null_refused)
        for feature in features:
            accepts_null = feature.name not in refused
            check = _pydantic_check(feature.type, accepts_null)
            schema = WithJsonSchema(_json_schema(feature, accepts_null))
            fields[feature.name] = Annotated[Any, PlainValidator(check), schema]
        # Built at run time from the specs, hence the functional form (mypy cannot check it statically).
        make: Any = TypedDict
        record = make("PredictRecord", fields)
        record.__pydantic_config__ = ConfigDict(extra="forbid")
        items = Annotated[list[record], Field(min_length=1, max_length=max_records)]  # type: ignore[valid-type]
        request = make("PredictRequest", {"records": items})
        request.__pydantic_config__ = ConfigDict(extra="forbid")
        self.request_adapter: TypeAdapter[Any] = TypeAdapter(request)

    def components(self) -> dict[str, Any]:
        """JSON schemas of ``PredictRequest`` and ``PredictRecord`` for ``components/schemas``."""
        schema = self.request_adapter.json_schema(ref_template="#/components/schemas/{model}")
        defs = schema.pop("$defs", {})
        schema["description"] = "Records to score: every feature of the model, in any order."
        return {**defs, "PredictRequest": schema}
