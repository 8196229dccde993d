"""The small arithmetic language of derived features (``derived_features`` in a dataset config).

An expression is text such as ``totalCharges / tenure`` or ``log1p(spend_365d) - log1p(spend_730d)``:
column names, numbers, ``+ - * /``, unary minus, parentheses and the functions in :data:`FUNCTIONS`.
:func:`parse` reads it with Python's own parser (``ast``, never ``eval``) and keeps only those constructs,
as a tree of the frozen dataclasses below; anything else is refused with a message that says what and
where. Pure Python: :mod:`clientml_de.config` validates expressions with it without importing Ibis, and
:mod:`clientml_de.features.derived` turns a tree into an Ibis expression.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Literal

# Each function is total on every engine (a null where it has no real value), see features.derived.
FUNCTIONS = ("abs", "log1p", "sqrt")
MAX_LENGTH = 1_000  # characters: bounds the parser's recursion and the SQL an expression becomes
_OPERATORS: dict[type[ast.operator], Literal["+", "-", "*", "/"]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
ALLOWED = f"column names, numbers, + - * /, unary minus, parentheses and the functions {', '.join(FUNCTIONS)}"


class ExpressionError(ValueError):
    """An expression that is not in the language (the message says what is wrong and where)."""


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Binary:
    operator: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Negate:
    operand: Expr


@dataclass(frozen=True)
class Call:
    function: str
    argument: Expr


Expr = Column | Number | Binary | Negate | Call


def parse(text: str) -> Expr:
    """The tree of ``text``; raises :class:`ExpressionError` for anything outside the language.

    Errors name the construct and its 1-based column in ``text``, e.g. ``'a ** 2' (column 1) is not
    allowed: only column names, numbers, + - * /, ...``. An expression must use at least one column.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters ({len(text)})")
    if "\n" in text or "\r" in text:  # one line, so that a column in the message is unambiguous
        raise ExpressionError("must be on one line")
    source = _Source(text.strip(), lead=len(text) - len(text.lstrip()))
    try:
        tree = ast.parse(source.text, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset + source.lead}" if exc.offset else ""
        raise ExpressionError(f"not a valid expression{where}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("nested too deeply") from None
    expr = _convert(tree.body, source)
    if not columns(expr):
        raise ExpressionError("uses no column: a derived feature is computed from feature_store columns")
    return expr


def columns(expr: Expr) -> list[str]:
    """The column names ``expr`` reads, in order of first use."""
    match expr:
        case Column(name):
            return [name]
        case Number():
            return []
        case Binary(_, left, right):
            return list(dict.fromkeys(columns(left) + columns(right)))
        case Negate(operand) | Call(_, operand):
            return columns(operand)


@dataclass(frozen=True)
class _Source:
    """The stripped text that is parsed, and how many characters were stripped before it."""

    text: str
    lead: int


def _refuse(node: ast.AST, source: _Source, why: str = "") -> ExpressionError:
    snippet = ast.get_source_segment(source.text, node) or ast.unparse(node)
    column = getattr(node, "col_offset", None)
    where = f" (column {column + 1 + source.lead})" if column is not None else ""
    return ExpressionError(f"{snippet!r}{where} is not allowed{why}: only {ALLOWED}")


def _convert(node: ast.expr, source: _Source) -> Expr:
    if isinstance(node, ast.Name):
        return Column(node.id)
    if isinstance(node, ast.Constant):
        value = node.value
        # bool is an int to Python, not a number to a user.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refuse(node, source, " (a constant must be a number)")
        if not math.isfinite(value):
            raise _refuse(node, source, " (a number must be finite)")
        return Number(float(value))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return Binary(_OPERATORS[type(node.op)], _convert(node.left, source), _convert(node.right, source))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _convert(node.operand, source)
        return Negate(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        return _call(node, source)
    raise _refuse(node, source)


def _call(node: ast.Call, source: _Source) -> Expr:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise _refuse(node.func, source, " as a function")
    if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
        raise _refuse(node, source, f" ({node.func.id} takes exactly one argument)")
    return Call(node.func.id, _convert(node.args[0], source))
