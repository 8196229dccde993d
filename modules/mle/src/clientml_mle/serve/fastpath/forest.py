"""A compiled evaluator of a binary LightGBM model's trees (numba), used by the fast path when it applies.

``Booster.predict`` costs about 35 µs per call before any tree is evaluated and walks the trees with
data-dependent branches; this kernel walks the same trees as flat arrays (tree by tree over all rows,
branch-free child selection), which is 2-3x faster on a 10,000-row batch on one thread and a few µs for
one row. It is exact by construction: the same comparisons as LightGBM's ``NumericalDecision`` (``x <=
threshold``; NaN goes the node's default way when its missing type is NaN, and is read as 0.0 when it is
None; the dump's +-1e300 thresholds are LightGBM's +-inf), the leaf values summed in tree order, then
LightGBM's sigmoid; the server still checks it against ``bundle.predict_proba`` before it turns ready.

Models it does not cover (categorical splits, ``zero_as_missing``, linear trees, other objectives, random
forest averaging) raise :class:`UnsupportedForestError`, and the fast path calls the booster instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class UnsupportedForestError(Exception):
    """The model uses a LightGBM feature the compiled evaluator does not implement."""


def _raw_scores(  # noqa: PLR0917 - the kernel, compiled by numba (plain Python is far too slow)
    x: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    nan_left: np.ndarray,
    is_leaf: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    out: np.ndarray,
) -> None:
    n = x.shape[0]
    for t in range(roots.shape[0]):
        root = roots[t]
        for r in range(n):
            node = root
            while not is_leaf[node]:
                f = x[r, feature[node]]
                go_left = f <= threshold[node] or (math.isnan(f) and nan_left[node])
                node = left[node] if go_left else right[node]
            out[r] += value[node]


@functools.cache
def _kernel() -> Callable[..., None]:
    import numba

    compiled: Callable[..., None]
    try:
        # numba's own on-disk cache of the kernel's machine code spares every worker start its compilation
        # (0.3-0.5 s here). It holds no model data: it is keyed by this file and the argument types, the
        # same for every model, and kept where Python keeps this module's bytecode (its __pycache__), else
        # in the user's cache directory, so it is as trusted as the installed code; numba discards it when
        # this file changes.
        compiled = numba.njit(nogil=True, cache=True)(_raw_scores)
    except RuntimeError:  # nowhere to write it (a read-only installation, no home): compiled in memory
        compiled = numba.njit(nogil=True, cache=False)(_raw_scores)
    return compiled


@dataclass(frozen=True)
class Forest:
    """The trees as flat arrays (internal nodes and leaves share one index space)."""

    n_features: int
    feature: np.ndarray  # int32, split column of each node (0 for leaves)
    threshold: np.ndarray  # float64
    left: np.ndarray  # int32 (a leaf points to itself)
    right: np.ndarray  # int32
    nan_left: np.ndarray  # bool: where NaN goes
    is_leaf: np.ndarray  # bool
    value: np.ndarray  # float64, leaf values (0 for internal nodes)
    roots: np.ndarray  # int32, root node of each tree
    sigmoid: float

    def __post_init__(self) -> None:
        """Check that every index stays inside the arrays and every walk ends (children come after their
        parent, as :func:`_flatten` numbers them): the kernel reads the arrays unchecked, and a stored fast
        path is read back from a file. Then compile the kernel now, not on the first request.

        Raises UnsupportedForestError naming the inconsistency.
        """
        n_nodes = len(self.is_leaf)
        node_arrays = (self.feature, self.threshold, self.left, self.right, self.nan_left, self.value)
        if any(array.ndim != 1 or len(array) != n_nodes for array in node_arrays):
            raise UnsupportedForestError("the node arrays differ in length")
        for name, index, bound in (
            ("child", np.concatenate([self.left, self.right, self.roots]), n_nodes),
            ("split feature", self.feature, self.n_features),
        ):
            if len(index) and (index.min() < 0 or index.max() >= bound):
                raise UnsupportedForestError(f"a {name} index outside 0..{bound - 1}")
        inner = np.flatnonzero(~self.is_leaf)
        if (self.left[inner] <= inner).any() or (self.right[inner] <= inner).any():
            raise UnsupportedForestError("a child numbered before its parent")
        self.raw(np.zeros((1, self.n_features)))

    @classmethod
    def from_booster(cls, booster: Any) -> Forest:
        """Compile the trees LightGBM would use (``best_iteration`` when set) and JIT the kernel."""
        model = booster.dump_model()
        objective = str(model.get("objective", ""))
        parts = objective.split()
        if not parts or parts[0] != "binary":
            raise UnsupportedForestError(f"objective {objective!r} (only binary is compiled)")
        sigmoid = 1.0
        for part in parts[1:]:
            if part.startswith("sigmoid:"):
                sigmoid = float(part.split(":", 1)[1])
        if model.get("num_class", 1) != 1 or model.get("num_tree_per_iteration", 1) != 1:
            raise UnsupportedForestError("more than one tree per iteration")
        if model.get("average_output"):
            raise UnsupportedForestError("random-forest averaging")
        nodes: dict[str, list[Any]] = {k: [] for k in ("feature", "threshold", "left", "right", "nan", "leaf", "value")}
        roots = []
        for tree in model["tree_info"]:
            if tree.get("is_linear"):
                raise UnsupportedForestError("linear trees")
            roots.append(_flatten(tree["tree_structure"], nodes))
        return cls(
            n_features=int(model["max_feature_idx"]) + 1,
            feature=np.asarray(nodes["feature"], dtype=np.int32),
            threshold=np.asarray(nodes["threshold"], dtype=np.float64),
            left=np.asarray(nodes["left"], dtype=np.int32),
            right=np.asarray(nodes["right"], dtype=np.int32),
            nan_left=np.asarray(nodes["nan"], dtype=np.bool_),
            is_leaf=np.asarray(nodes["leaf"], dtype=np.bool_),
            value=np.asarray(nodes["value"], dtype=np.float64),
            roots=np.asarray(roots, dtype=np.int32),
            sigmoid=sigmoid,
        )

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of the rows of a float64 model matrix."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} columns, got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.zeros(x.shape[0], dtype=np.float64)
        _kernel()(
            x, self.feature, self.threshold, self.left, self.right, self.nan_left, self.is_leaf, self.value,
            self.roots, out,
        )  # fmt: skip
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(label = 1): LightGBM's binary output transform of the raw scores."""
        return 1.0 / (1.0 + np.exp(-self.sigmoid * self.raw(x)))


def _flatten(root: dict[str, Any], nodes: dict[str, list[Any]]) -> int:
    """Append a tree's nodes (iteratively, children after parents); return the root's index."""
    first = len(nodes["leaf"])
    pending: list[tuple[dict[str, Any], int | None, str]] = [(root, None, "")]
    while pending:
        node, parent, side = pending.pop()
        index = len(nodes["leaf"])
        if parent is not None:
            nodes[side][parent] = index
        if "leaf_value" in node:
            for key, value in (("feature", 0), ("threshold", 0.0), ("nan", False), ("leaf", True)):
                nodes[key].append(value)
            nodes["value"].append(float(node["leaf_value"]))
            nodes["left"].append(index)
            nodes["right"].append(index)
            continue
        if node.get("decision_type") != "<=":
            raise UnsupportedForestError(f"split of type {node.get('decision_type')!r} (categorical)")
        missing = node.get("missing_type", "None")
        threshold = _threshold(float(node["threshold"]))
        if missing == "NaN":
            nan_left = bool(node["default_left"])
        elif missing == "None":
            nan_left = threshold >= 0.0  # LightGBM reads NaN as 0.0
        else:
            raise UnsupportedForestError(f"missing type {missing!r} (zero_as_missing)")
        nodes["feature"].append(int(node["split_feature"]))
        nodes["threshold"].append(threshold)
        nodes["nan"].append(nan_left)
        nodes["leaf"].append(False)
        nodes["value"].append(0.0)
        nodes["left"].append(-1)
        nodes["right"].append(-1)
        pending.append((node["right_child"], index, "right"))
        pending.append((node["left_child"], index, "left"))
    return first


# LightGBM's JSON dump writes an infinite threshold (a split of the numbers from the nulls) as +-1e300
# (``Common::AvoidInf``); a value above 1e300 must still go left of a threshold of +inf.
_AVOID_INF = 1e300


def _threshold(dumped: float) -> float:
    if dumped >= _AVOID_INF:
        return math.inf
    if dumped <= -_AVOID_INF:
        return -math.inf
    return dumped
