"""The drift statistics and the rule, for one feature or the score distribution.

Both sides are binned alike (:mod:`clientml_mle.monitor.profile`); then, with ``p`` the reference shares and
``q`` the current ones (non-null values only; the null rate is compared on its own):

- **PSI**, the population stability index, ``sum((q - p) * ln(q / p))`` (Siddiqi 2006, *Credit Risk
  Scorecards*, ch. 8; Yurdakul 2018, *Statistical properties of the population stability index*), computed
  as ``scipy.stats.entropy(p, q) + scipy.stats.entropy(q, p)``: the symmetric Kullback-Leibler divergence,
  which is the same sum. Every bin gets :data:`EPSILON` added before both are renormalised, so an empty bin
  (a share of 0 on one side) gives a large but finite PSI instead of infinity. Read as: < 0.1 stable,
  0.1-0.2 a moderate shift, > 0.2 a significant one (Siddiqi; Yurdakul gives the sampling distribution
  behind these rules of thumb);
- the **Jensen-Shannon distance** ``scipy.spatial.distance.jensenshannon(p, q, base=2)``: in [0, 1], finite
  with empty bins, shown next to the PSI as a bounded reading of the same comparison.

The rule (:class:`DriftThresholds`, settings ``CLIENTML_MONITOR_*``): a feature has drifted when its PSI is
above ``psi`` (0.2) or its null rate moved by more than ``null_rate_change`` (0.1, absolute); it makes the run
drift when the model relies on it (its importance share is at least ``min_importance``, 0.05). The score
distribution drifts on its PSI alone, and always counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.settings import Settings
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from clientml_mle.manifest import FeatureSpec
from clientml_mle.monitor.profile import FeatureProfile, ScoreProfile, category_values
from clientml_mle.monitor.result import SCORE_FEATURE, FeatureDrift
from clientml_mle.schema import coerce_frame

FloatArray = npt.NDArray[np.float64]
# Added to every bin's share before PSI: 1e-4 (0.01%) is far below any share a decile or a top category
# has, so it only matters for an empty bin, where it caps ln(q / p) at about ln(1e4) = 9.2.
EPSILON = 1e-4
# Unseen categories named in a message (the drift_report's ``message``); the rest are counted.
UNSEEN_SHOWN = 10


@dataclass(frozen=True)
class DriftThresholds:
    """When a distribution has drifted, and which features count (module docstring)."""

    psi: float = 0.2
    null_rate_change: float = 0.1
    min_importance: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> DriftThresholds:
        return cls(
            psi=settings.monitor_psi_threshold,
            null_rate_change=settings.monitor_null_rate_change,
            min_importance=settings.monitor_min_importance,
        )


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = EPSILON) -> float:
    """PSI of two vectors of bin shares (same length; each is renormalised after adding ``epsilon``)."""
    p = np.asarray(reference, dtype=np.float64) + epsilon
    q = np.asarray(current, dtype=np.float64) + epsilon
    return float(entropy(p, q) + entropy(q, p))


def js_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two vectors of bin shares."""
    return float(jensenshannon(np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64), base=2))


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.1%}"


def _unseen(values: pd.Series, spec: FeatureSpec) -> dict[str, int]:
    """Values of a categorical feature never seen in training (not in the manifest's categories), by count."""
    if spec.type != "category":
        return {}
    known = set(spec.categories or [])
    counts = values.dropna()[lambda v: ~v.isin(known)].value_counts()
    return {str(k): int(n) for k, n in sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))}


def _unseen_message(unseen: dict[str, int], rows: int) -> str:
    total = sum(unseen.values())
    shown = ", ".join(f"{v!r} ({n})" for v, n in list(unseen.items())[:UNSEEN_SHOWN])
    more = f" and {len(unseen) - UNSEEN_SHOWN} more" if len(unseen) > UNSEEN_SHOWN else ""
    return (
        f"{len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} never seen in training, in {total} rows "
        f"({_pct(total / rows)}): {shown}{more} (the model encodes them as unknown; counted in '(other)')"
    )


def compare_feature(
    profile: FeatureProfile, spec: FeatureSpec, current: pd.Series | None, thresholds: DriftThresholds
) -> FeatureDrift:
    """Compare one feature's current values (a warehouse column, None when absent) with its profile.

    Never raises for bad data: an absent column counts as null for every row (as the model sees it), values
    of the wrong type are reported in the message.
    """
    relied_on = profile.importance >= thresholds.min_importance
    bins = profile.bins if profile.bins is not None else profile.categories
    labels = bins.labels() if bins is not None else []
    reference = list(bins.proportions) if bins is not None else []
    notes: list[str] = []
    findings: list[str] = []
    shares: FloatArray | None = None
    unseen: dict[str, int] = {}
    null_current: float | None = 1.0
    if current is None:
        notes.append("absent from the current feature_store: the model sees it as null for every client")
    else:
        try:
            values = coerce_frame(current.to_frame(spec.name), [spec])[spec.name]
        except ValueError as exc:  # e.g. a category column now holding numbers' words: the model cannot score it
            values, null_current = None, None
            findings.append(f"current values are not of the trained type ({exc})")
        if values is not None:
            null_current = float(values.isna().mean()) if len(values) else 0.0
            if bins is not None and values.notna().any():
                if profile.bins is not None:
                    shares = profile.bins.shares(values.to_numpy(dtype=np.float64))
                elif profile.categories is not None:
                    categorical = category_values(values, spec)
                    shares = profile.categories.shares(categorical)
                    unseen = _unseen(categorical, spec)
            elif len(values):
                notes.append("every current value is null")
    value = js = None
    if shares is not None and reference:
        value, js = psi(reference, shares), js_distance(reference, shares)
    elif not reference:
        notes.append("no non-null value in the training rows: only the null rate is compared")
    if value is not None and value > thresholds.psi:
        findings.append(f"PSI {value:.2f} > {thresholds.psi:g}")
    if null_current is not None and abs(null_current - profile.null_rate) > thresholds.null_rate_change:
        findings.append(
            f"null rate {profile.null_rate:.2f} -> {null_current:.2f} "
            f"({null_current - profile.null_rate:+.2f}, beyond {thresholds.null_rate_change:g})"
        )
    rows = len(current) if current is not None else 0
    if unseen:
        notes.append(_unseen_message(unseen, rows))
    weight = f"importance {_pct(profile.importance)}"
    if findings and not relied_on:
        notes.append(f"the model relies little on it ({weight} < {_pct(thresholds.min_importance)}): not counted")
    message = "; ".join([*findings, *notes]) or "stable"
    reasons = [f"{finding} on {profile.name} ({weight})" for finding in findings] if relied_on else []
    return FeatureDrift(
        feature=profile.name,
        kind=profile.type,
        value=value,
        js_distance=js,
        null_rate_reference=profile.null_rate,
        null_rate_current=null_current,
        importance=profile.importance,
        relied_on=relied_on,
        drifted=bool(findings),
        message=message,
        labels=labels,
        reference=reference,
        current=shares.tolist() if shares is not None else [],
        unseen_categories=unseen,
        reasons=reasons,
    )


def compare_scores(
    profile: ScoreProfile, scores: FloatArray | None, thresholds: DriftThresholds, note: str
) -> FeatureDrift:
    """Compare the current scores (P(label = 1); None when there are none) with the test rows' scores.

    ``note`` says where the scores come from (or why there are none); it starts the message.
    """
    bins = profile.bins
    shares = bins.shares(np.asarray(scores, dtype=np.float64)) if scores is not None and len(scores) else None
    value = js = None
    if shares is not None and bins.proportions:
        value, js = psi(bins.proportions, shares), js_distance(bins.proportions, shares)
    moved = value is not None and value > thresholds.psi
    finding = f"PSI {value:.2f} > {thresholds.psi:g}" if moved else ""
    return FeatureDrift(
        feature=SCORE_FEATURE,
        kind="score",
        value=value,
        js_distance=js,
        null_rate_reference=None,
        null_rate_current=None,
        importance=None,
        relied_on=True,
        drifted=moved,
        message="; ".join(part for part in (finding, note) if part) or "stable",
        labels=bins.labels(),
        reference=list(bins.proportions),
        current=shares.tolist() if shares is not None else [],
        reasons=[f"{finding} on the score distribution"] if moved else [],
    )
