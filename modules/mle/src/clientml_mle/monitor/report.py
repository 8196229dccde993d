"""The drift report: one self-contained HTML file a person reads (no network, no CDN, no other file).

A summary (drifted or not, why, the thresholds, retrain or not), a table of every feature (PSI, Jensen-Shannon
distance, null rates, importance, relied on, drifted, message) and, for the score distribution and every
feature, a bar chart of the reference's bin shares next to the current ones. The charts are PNGs drawn
with matplotlib on its Agg canvas (no display, no global state) and inlined as base64 ``data:`` URIs; the
page is rendered by Jinja2 with autoescaping (``templates/drift_report.html.j2``). Written atomically.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from clientml_de.files import atomic_file

from clientml_mle.monitor.drift import EPSILON
from clientml_mle.monitor.result import SCORE_FEATURE, FeatureDrift, MonitorResult

DPI = 80
# Colours of the two sides (reference: grey-blue, current: orange; drifted current: red).
REFERENCE_COLOUR, CURRENT_COLOUR, DRIFTED_COLOUR = "#7a90a8", "#f0a030", "#d03030"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def bar_chart(drift: FeatureDrift) -> str:
    """A PNG (base64) of the reference's and the current bin shares of ``drift``, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = drift.labels or ["all"]
    width = max(5.0, min(11.0, 0.45 * len(labels) + 2.5))
    fig = Figure(figsize=(width, 2.9), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(len(labels)))
    if drift.reference:
        ax.bar([p - 0.2 for p in positions], drift.reference, width=0.4, color=REFERENCE_COLOUR, label="reference")
    if drift.current:
        colour = DRIFTED_COLOUR if drift.drifted else CURRENT_COLOUR
        ax.bar([p + 0.2 for p in positions], drift.current, width=0.4, color=colour, label="current")
    slanted = len(labels) > 4
    ax.set_xticks(positions, labels, rotation=35 if slanted else 0, ha="right" if slanted else "center")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("share of rows")
    name = "score distribution (P(label = 1))" if drift.feature == SCORE_FEATURE else drift.feature
    stat = f"PSI {_fmt(drift.value)}, JS {_fmt(drift.js_distance)}"
    nulls = (
        f", nulls {_pct(drift.null_rate_reference)} -> {_pct(drift.null_rate_current)}"
        if drift.null_rate_reference is not None
        else ""
    )
    ax.set_title(f"{name}: {stat}{nulls}", fontsize=9, color=DRIFTED_COLOUR if drift.drifted else "black")
    if not drift.current:
        ax.text(0.5, 0.9, "no current values", transform=ax.transAxes, ha="center", fontsize=8, color="#777777")
    if drift.reference or drift.current:  # a legend of no bars is a warning, not a legend
        ax.legend(fontsize=7, frameon=False)
    # Fixed margins (room for the slanted bin labels): tight_layout would draw every figure once more.
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, top=0.88, bottom=0.3 if slanted else 0.14)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ordered(features: list[FeatureDrift]) -> list[FeatureDrift]:
    """What counts first: drifted and relied on, then drifted, then by importance."""
    return sorted(features, key=lambda d: (not (d.drifted and d.relied_on), not d.drifted, -(d.importance or 0.0)))


def render(result: MonitorResult) -> str:
    """The report's HTML."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("clientml_mle.monitor", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["fmt"] = _fmt
    env.filters["pct"] = _pct
    features = _ordered(result.features)
    charts = [(d, bar_chart(d)) for d in ([result.score_drift] if result.score_drift else []) + features]
    return env.get_template("drift_report.html.j2").render(
        r=result, features=features, charts=charts, epsilon=EPSILON, score_feature=SCORE_FEATURE
    )


def write_report(result: MonitorResult, path: Path) -> Path:
    """Write the report of ``result`` to ``path`` atomically (parents created); return ``path``."""
    page = render(result)
    with atomic_file(path) as handle:
        handle.write(page.encode("utf-8"))
    return path
