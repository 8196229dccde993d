"""What a monitoring run found: one :class:`FeatureDrift` per feature (and one for the scores), and the run's
:class:`MonitorResult` with its decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The drift_report row of the score distribution (no feature of the feature store can have this name:
# feature names are SQL column names, and the DE feature definition never starts one with "__").
SCORE_FEATURE = "__score__"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the score distribution, ``feature == SCORE_FEATURE``) compared with its reference.

    ``value`` is the PSI (``statistic``) of the binned distributions (None when it cannot be computed: the
    feature is absent, or one side has no non-null value); ``js_distance`` the Jensen-Shannon distance
    (base 2, in [0, 1]); null rates are shares of rows; ``importance`` the feature's share of the model's
    importance (None for the scores). ``drifted``: the distribution moved beyond the thresholds (PSI, or
    the null rate); it makes the run drift only when ``relied_on`` (the scores always are). ``message``
    says what was found, in words. The bins (``labels``, ``reference``, ``current`` shares) are what the
    HTML report plots; ``unseen_categories`` maps each value never seen in training to its row count.
    """

    feature: str
    kind: str  # number, integer, category, boolean, or score
    value: float | None
    js_distance: float | None
    null_rate_reference: float | None
    null_rate_current: float | None
    importance: float | None
    relied_on: bool
    drifted: bool
    message: str
    statistic: str = "psi"
    labels: list[str] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    unseen_categories: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # why it counts towards the run's drift, when it does

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MonitorResult:
    """A monitoring run: what was compared, whether it drifted and why, and whether to retrain.

    ``reasons``: every reason for the decision, human-readable (drift found, labels changed, no champion,
    no reference profile); ``messages``: what else the run met (faults in the data, what was not compared).
    ``retrain``: ``feature_store`` has rows, and the run drifted, or ``labels_changed``, or there is no champion
    (or no profile to watch it with).
    """

    run_id: str
    model_version: str | None
    drifted: bool
    reasons: list[str]
    features: list[FeatureDrift]
    score_drift: FeatureDrift | None
    report_path: Path | None
    labels_changed: bool
    retrain: bool
    messages: list[str] = field(default_factory=list)
    created_at: str = ""  # ISO 8601, UTC
    rows_current: int = 0  # clients compared (each client's newest feature_store row)
    score_source: str = ""  # where the current scores came from (the predictions table, or scored here)
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as text."""
        out = asdict(self)
        out["report_path"] = str(self.report_path) if self.report_path is not None else None
        return out


def _num(value: float | None, spec: str) -> str:
    """``value`` in format ``spec`` (e.g. ``7.3f``), or a dash as wide."""
    return format(value, spec) if value is not None else "-".rjust(int(spec.split(".", maxsplit=1)[0]))


def summary_text(result: MonitorResult) -> str:
    """What ``clientml monitor`` prints: a table of the score distribution and every feature (drifted first),
    then the decision and its reasons, what else the run met, and the report's path."""
    columns = f"{'PSI':>7} {'JS':>6} {'null ref':>8} {'null now':>8} {'importance':>10}  relied-on  drifted"
    header = f"{'feature':<36} {columns}"
    lines = [f"champion {result.model_version or '(none)'}, run {result.run_id}, {result.rows_current} clients", header]
    compared = [*([result.score_drift] if result.score_drift else []), *result.features]
    ordered = sorted(compared, key=lambda d: (not (d.drifted and d.relied_on), not d.drifted, -(d.importance or 1.0)))
    for d in ordered:
        name = "(score distribution)" if d.feature == SCORE_FEATURE else d.feature
        lines.append(
            f"{name[:36]:<36} {_num(d.value, '7.3f')} {_num(d.js_distance, '6.3f')} "
            f"{_num(d.null_rate_reference, '8.1%')} {_num(d.null_rate_current, '8.1%')} "
            f"{_num(d.importance, '10.1%')}  {'yes' if d.relied_on else 'no':<9}  {'YES' if d.drifted else 'no'}"
        )
    lines.append("")
    lines.append(f"decision: {'DRIFT' if result.drifted else 'no drift'}; retrain: {'yes' if result.retrain else 'no'}")
    lines.extend(f"  - {reason}" for reason in result.reasons)
    if result.messages:
        lines.append("notes:")
        lines.extend(f"  - {message}" for message in result.messages)
    if result.report_path is not None:
        lines.append(f"report: {result.report_path}")
    return "\n".join(lines)
