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
above ``psi`` (0.2) and above the sampling noise (:func:`psi_noise`: what two samples of these sizes from
one distribution exceed only 1% of the time; it matters for small samples only), or when its null rate
moved by more than ``null_rate_change`` (0.1, absolute); it makes the run drift when the model relies on
it (:func:`relied_on_features`: it is among the most important features that together hold
``importance_coverage``, 80%, of the model's importance). The score distribution drifts on its PSI alone
(same two conditions), and always counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from clientml_de.settings import Settings
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, entropy

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
    importance_coverage: float = 0.8
    # A PSI counts only beyond what sampling alone reaches this seldom when nothing changed (psi_noise).
    confidence: float = 0.99

    @classmethod
    def from_settings(cls, settings: Settings) -> DriftThresholds:
        return cls(
            psi=settings.monitor_psi_threshold,
            null_rate_change=settings.monitor_null_rate_change,
            importance_coverage=settings.monitor_importance_coverage,
            confidence=settings.monitor_confidence,
        )


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = EPSILON) -> float:
    """PSI of two vectors of bin shares (same length; each is renormalised after adding ``epsilon``)."""
    p = np.asarray(reference, dtype=np.float64) + epsilon
    q = np.asarray(current, dtype=np.float64) + epsilon
    return float(entropy(p, q) + entropy(q, p))


def js_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two vectors of bin shares."""
    return float(jensenshannon(np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64), base=2))


def relied_on_features(importance: Mapping[str, float], coverage: float) -> set[str]:
    """The features the model relies on: the fewest, taken in decreasing importance share, whose shares add
    up to at least ``coverage`` (0 to 1; ties at the boundary all included).

    A cumulative share rather than a per-feature minimum: with many features the shares are small
    (1/33 = 3% each when uniform), and a fixed minimum would leave out features that together decide most
    of the score.
    """
    ordered = sorted(importance.items(), key=lambda item: -item[1])
    chosen: set[str] = set()
    total, boundary = 0.0, None
    for name, share in ordered:
        if boundary is not None and share < boundary:
            break
        chosen.add(name)
        total += share
        if total >= coverage - 1e-12 and boundary is None:
            boundary = share
    return chosen


def psi_noise(n_reference: int, n_current: int, bins: int, confidence: float) -> float:
    """The PSI that two samples of ``n_reference`` and ``n_current`` values in ``bins`` bins exceed with
    probability ``1 - confidence`` when they come from the same distribution: ``(1/n + 1/m) * chi2(bins - 1)``'s
    ``confidence`` quantile (Yurdakul 2018: the PSI of two such samples is asymptotically that chi-square,
    scaled). Infinite when a side is empty; 0 with a single bin."""
    if n_reference <= 0 or n_current <= 0:
        return math.inf
    if bins < 2:
        return 0.0
    return float((1 / n_reference + 1 / n_current) * chi2.ppf(confidence, bins - 1))


def _psi_verdict(
    value: float | None, n_reference: int, n_current: int, bins: int, thresholds: DriftThresholds
) -> tuple[str, str]:
    """(why ``value`` counts as drift, or ""; a note when it is above the threshold but within the noise)."""
    if value is None or value <= thresholds.psi:
        return "", ""
    limit = psi_noise(n_reference, n_current, bins, thresholds.confidence)
    if value <= limit:
        return "", (
            f"PSI {value:.2f} is within the sampling noise of {n_reference} reference and {n_current} current "
            f"values (up to {limit:.2f} at {thresholds.confidence:.0%}): not counted"
        )
    if limit > thresholds.psi:
        return f"PSI {value:.2f} > {limit:.2f} (the sampling noise of {n_reference} and {n_current} values)", ""
    return f"PSI {value:.2f} > {thresholds.psi:g}", ""


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
    profile: FeatureProfile,
    spec: FeatureSpec,
    current: pd.Series | None,
    thresholds: DriftThresholds,
    *,
    reference_rows: int,
    relied_on: bool,
) -> FeatureDrift:
    """Compare one feature's current values (a warehouse column, None when absent) with its profile, made
    from ``reference_rows`` training rows; its drift counts for the run when ``relied_on``
    (:func:`relied_on_features`).

    Never raises for bad data: an absent column counts as null for every row (as the model sees it), values
    of the wrong type are reported in the message.
    """
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
    n_reference = round(reference_rows * (1 - profile.null_rate))
    n_current = round(len(current) * (1 - null_current)) if current is not None and null_current is not None else 0
    finding, noise = _psi_verdict(value, n_reference, n_current, len(reference), thresholds)
    findings.extend([finding] if finding else [])
    notes.extend([noise] if noise else [])
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
        notes.append(
            f"the model relies little on it ({weight}, outside the features holding "
            f"{_pct(thresholds.importance_coverage)} of its importance): not counted"
        )
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
    n_current = len(scores) if scores is not None else 0
    finding, noise = _psi_verdict(value, profile.rows, n_current, len(bins.proportions), thresholds)
    moved = bool(finding)
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
        message="; ".join(part for part in (finding, noise, note) if part) or "stable",
        labels=bins.labels(),
        reference=list(bins.proportions),
        current=shares.tolist() if shares is not None else [],
        reasons=[f"{finding} on the score distribution"] if moved else [],
    )
