"""Derived features: the dataset config's expressions (:mod:`clientml_de.expressions`) as Ibis columns.

Each expression reads feature_store columns (and derived features declared before it) by name, in
float64 arithmetic, so every engine computes the same IEEE operations:

- ``a / b`` is null when ``b`` is 0 (or null), never inf or NaN;
- ``log1p(x)`` is ``ln(1 + x)``, null for ``x <= -1``; ``sqrt(x)`` is null for ``x < 0``; ``abs(x)``;
- a null operand gives null.

A result beyond the float64 range (about 1.8e308) is an engine error, not a value (only inputs near
that range can reach it).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import ibis
import ibis.expr.types as ir

from clientml_de.config import DatasetConfig
from clientml_de.expressions import Binary, Call, Column, Expr, Negate, Number, parse
from clientml_de.expressions import columns as columns_read
from clientml_de.features.plan import FeatureBuildError


class DerivedFeatureError(FeatureBuildError):
    """A derived feature that cannot be computed from this feature_store (names the config file and line)."""


def _compile(expr: Expr, namespace: Mapping[str, ir.Value]) -> ir.FloatingValue:
    match expr:
        case Column(name):
            return namespace[name].cast("float64")
        case Number(value):
            return ibis.literal(value, type="float64")
        case Negate(operand):
            return -_compile(operand, namespace)
        case Binary(operator, left, right):
            a, b = _compile(left, namespace), _compile(right, namespace)
            if operator == "+":
                return a + b
            if operator == "-":
                return a - b
            if operator == "*":
                return a * b
            return a / b.nullif(0.0)
        case Call(function, argument):
            x = _compile(argument, namespace)
            if function == "abs":
                return x.abs()
            if function == "log1p":
                return ibis.ifelse(x > -1.0, (x + 1.0).ln(), ibis.null("float64"))
            return ibis.ifelse(x >= 0.0, x.sqrt(), ibis.null("float64"))
    raise AssertionError(f"unhandled expression node {expr!r}")  # parse() returns only the nodes above


def _check_column(name: str, namespace: Mapping[str, ir.Value], hidden: set[str]) -> str | None:
    """Why ``name`` cannot be read by an expression, or None."""
    if name in hidden:
        return f"column {name!r} cannot be used: the key, the label and the bookkeeping columns are not features"
    if name not in namespace:
        close = difflib.get_close_matches(name, list(namespace), n=3)
        return f"unknown column {name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
    kind = namespace[name].type()
    if not kind.is_numeric():
        return f"column {name!r} is {str(kind).removeprefix('!')}, not a number"
    return None


def derived_columns(features: Mapping[str, ir.Value], hidden: set[str], config: DatasetConfig) -> dict[str, ir.Value]:
    """The config's derived features, as ``name -> float64 expression`` over ``features``.

    ``features`` maps the feature columns of feature_store to their expressions; ``hidden`` names the
    other columns (key, label, bookkeeping), which an expression may not read. A derived feature may read
    the ones declared before it.

    Raises:
        DerivedFeatureError: a name already taken, or an expression reading an unknown, hidden or
            non-numeric column; the message names the config file, the line and the derived feature.
    """
    namespace = dict(features)
    out: dict[str, ir.Value] = {}
    for index, derived in enumerate(config.derived_features):
        where = f"{config.where('derived_features', index)}: derived feature {derived.name!r}"
        taken = {n.casefold(): n for n in [*namespace, *hidden]}
        if derived.name.casefold() in taken:
            existing = taken[derived.name.casefold()]
            raise DerivedFeatureError(f"{where}: the name is already a feature_store column ({existing!r})")
        expr = parse(derived.expression)  # valid: the config was checked when it was read
        for name in columns_read(expr):
            problem = _check_column(name, namespace, hidden)
            if problem:
                raise DerivedFeatureError(f"{where}: {problem}")
        namespace[derived.name] = out[derived.name] = _compile(expr, namespace)
    return out
