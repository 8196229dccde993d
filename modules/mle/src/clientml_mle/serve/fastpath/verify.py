"""Verification: candidates -> a :class:`VerifiedPredictor`, or :class:`VerificationError`.

First the features whose null the model cannot score are found (:func:`null_refused_features`; none
for the harness's models, which handle missing values). Then, on a few hundred probe records (both
sides of every tree split, nulls in every other feature, every category, unseen categories) the matrix
must equal the pipeline's transform exactly and the probabilities must equal
``bundle.predict_proba`` within :data:`VERIFY_TOLERANCE`. Encoders and scorers are tried fastest first;
one that disagrees (or fails) gives way to the next, more literal one, logged as a warning.

:func:`verify` is :func:`model_reference` (the model's answers on the probe records: a :class:`Reference`)
then :func:`check` (the candidates against it); a stored fast path is checked against the reference stored
with it (:mod:`.stored`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from clientml_mle.serve.fastpath.base import VERIFY_TOLERANCE, BundleLike, VerificationError, dense
from clientml_mle.serve.fastpath.compile import Candidates
from clientml_mle.serve.fastpath.encoders import Encoder
from clientml_mle.serve.fastpath.predictor import _SEAL, VerifiedPredictor
from clientml_mle.serve.fastpath.records import null_variants, probe_records, reference_frame
from clientml_mle.serve.fastpath.scorers import Scorer
from clientml_mle.serve.schemas import FeatureLike, RecordValidator, ValidRecords

log = logging.getLogger(__name__)

PROBE_RECORDS = 400
# Where the verified stages came from (``verified["source"]``): compiled from the bundle's model in this
# process, or read from the fast path stored in the bundle at training (:mod:`.stored`).
SOURCE_COMPILED = "compiled"
SOURCE_STORED = "stored"


class _Kinded(Protocol):
    @property
    def kind(self) -> str: ...


_Stage = TypeVar("_Stage", bound=_Kinded)
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class Reference:
    """What the bundle's own model gives on the probe records: what a fast path must reproduce."""

    records: list[dict[str, Any]]  # the probe records (JSON-like, valid for the validator)
    matrix: np.ndarray  # (len(records), n_columns): model[:-1].transform, dense float64
    probabilities: np.ndarray  # (len(records),): bundle.predict_proba, P(label = 1)
    null_refused: frozenset[str]  # the features the model cannot score a null in


def verify(candidates: Candidates, bundle: BundleLike, n: int = PROBE_RECORDS, seed: int = 0) -> VerifiedPredictor:
    """The predictor of the first candidate encoder and scorer that match ``bundle`` on ``n`` probe records.

    Each candidate is checked through the very methods the routes call. ``verified`` of the result
    reports the records, the largest |difference|, the tolerance and the stages kept. Raises
    VerificationError when even the literal path (``model[:-1].transform`` and the final estimator's
    ``predict_proba``) disagrees.
    """
    candidates, reference = model_reference(candidates, bundle, n, seed)
    return check(candidates, reference, SOURCE_COMPILED)


def model_reference(
    candidates: Candidates, bundle: BundleLike, n: int = PROBE_RECORDS, seed: int = 0
) -> tuple[Candidates, Reference]:
    """The bundle's own answers on ``n`` probe records (the same for the same ``seed``), and the candidates
    with a validator refusing a null where the model cannot score one (:func:`null_refused_features`)."""
    refused = null_refused_features(bundle, candidates.features)
    if refused:
        log.warning("the model cannot score a null in %s: the API refuses null there", sorted(refused))
        validator = RecordValidator(candidates.features, candidates.validator.max_records, refused)
        candidates = dataclasses.replace(candidates, validator=validator)
    records = probe_records(candidates.features, n, seed, probe_cuts(candidates), refused)
    frame = reference_frame(bundle, records, candidates.features)
    with warnings.catch_warnings():  # the probe records hold unseen categories on purpose
        warnings.simplefilter("ignore", UserWarning)
        matrix = dense(bundle.model[:-1].transform(frame))
        probabilities = np.asarray(bundle.predict_proba(frame), dtype=np.float64)
    return candidates, Reference(records, matrix, probabilities, refused)


def check(candidates: Candidates, reference: Reference, source: str) -> VerifiedPredictor:
    """The predictor of the first candidate encoder and scorer that reproduce ``reference``: the matrix
    exactly, the probabilities within :data:`VERIFY_TOLERANCE`. ``source`` (:data:`SOURCE_COMPILED` or
    :data:`SOURCE_STORED`) goes into the report. Raises VerificationError when no candidate does."""
    valid = candidates.validator.validate_records(reference.records)
    with warnings.catch_warnings():  # the literal encoder warns of the probes' unseen categories
        warnings.simplefilter("ignore", UserWarning)
        encoder, matrix = _first_encoder(candidates, valid, reference.matrix)
        scorer, diff = _first_scorer(candidates, encoder, matrix, reference.probabilities)
    chosen = _predictor(candidates, encoder, scorer, {})
    report = {
        "records": len(reference.records),
        "max_abs_diff": diff,
        "tolerance": VERIFY_TOLERANCE,
        "model_type": candidates.model_type,
        "encoder": encoder.kind,
        "scorer": chosen.kind,
        "explain": chosen.explain_kind,
        "null_refused": sorted(reference.null_refused),
        "source": source,
    }
    return _predictor(candidates, encoder, scorer, report)


def null_refused_features(bundle: BundleLike, features: Sequence[FeatureLike]) -> frozenset[str]:
    """The features the bundle's model cannot score a null in, whatever training saw: those where
    ``bundle.predict_proba`` of an ordinary record with that feature null raises or is not finite (e.g. a
    bare ``LogisticRegression`` on the column). Models that handle missing values (LightGBM, one-hot
    encoders, imputers) give the empty set, after one call on ``len(features) + 1`` records."""

    def finite(records: list[dict[str, Any]]) -> np.ndarray:
        proba = np.asarray(bundle.predict_proba(reference_frame(bundle, records, features)), dtype=np.float64)
        return np.isfinite(proba)

    records = null_variants(features)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if finite(records).all():
                return frozenset()
        except Exception:  # some feature's null breaks the model: find which, one by one
            pass
        refused = set()
        for feature, record in zip(features, records[1:], strict=True):
            try:
                ok = bool(finite([record])[0])
            except Exception:
                ok = False
            if not ok:
                refused.add(feature.name)
    return frozenset(refused)


def probe_cuts(candidates: Candidates) -> dict[str, list[float]]:
    """Raw values of every feature near the trees' split thresholds (where the first encoder is
    invertible): feature name -> sorted values."""
    cuts: dict[str, set[float]] = {}
    for booster in candidates.split_boosters:
        for column, thresholds in split_thresholds(booster).items():
            for threshold in thresholds:
                found = candidates.encoders[0].raw_value(column, threshold)
                if found is not None:
                    cuts.setdefault(found[0], set()).add(found[1])
    return {name: sorted(values) for name, values in cuts.items()}


def split_thresholds(booster: Any) -> dict[int, list[float]]:
    """Numeric split thresholds of every model column of a LightGBM booster: column -> sorted values."""
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


def _predictor(candidates: Candidates, encoder: Encoder, scorer: Scorer, report: dict[str, Any]) -> VerifiedPredictor:
    return VerifiedPredictor(
        **candidates.spec_fields(),
        encoder=encoder,
        scorer=scorer,
        explainer=candidates.explainer,
        verified=report,
        seal=_SEAL,
    )


def _first_encoder(candidates: Candidates, valid: ValidRecords, reference: np.ndarray) -> tuple[Encoder, np.ndarray]:
    def check(encoder: Encoder) -> tuple[np.ndarray, str | None]:
        matrix = _predictor(candidates, encoder, candidates.scorers[0], {}).encode(valid)
        return matrix, _matrix_difference(matrix, reference)

    def failure(problems: str) -> str:
        return f"the encoder differs from the pipeline's transform ({problems})"

    return _first_passing("encoder", candidates.encoders, check, failure)


def _first_scorer(
    candidates: Candidates, encoder: Encoder, matrix: np.ndarray, reference: np.ndarray
) -> tuple[Scorer, float]:
    def check(scorer: Scorer) -> tuple[float, str | None]:
        fast = _predictor(candidates, encoder, scorer, {}).predict_matrix(matrix)
        diff = float(np.max(np.abs(fast - reference))) if len(fast) else 0.0
        return diff, None if diff <= VERIFY_TOLERANCE else f"differs by up to {diff:.3g}"

    def failure(problems: str) -> str:
        return (
            f"fast-path probabilities differ from bundle.predict_proba (tolerance {VERIFY_TOLERANCE:g}) on "
            f"{matrix.shape[0]} probe records: {problems}"
        )

    return _first_passing("scorer", candidates.scorers, check, failure)


def _first_passing(
    what: str,
    stages: Sequence[_Stage],
    check: Callable[[_Stage], tuple[_Result, str | None]],
    failure: Callable[[str], str],
) -> tuple[_Stage, _Result]:
    """The first stage whose check finds no problem (trial predictors: checked, never served), and what
    the check computed; VerificationError naming every stage's problem when none passes."""
    problems: list[str] = []
    for stage in stages:
        try:
            result, problem = check(stage)
        except Exception as exc:  # a stage that cannot even run is rejected like a wrong one
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            if problems:
                log.warning("%s %s rejected (%s); serving with %s", what, stages[0].kind, problems, stage.kind)
            return stage, result
        problems.append(f"{stage.kind}: {problem}")
    raise VerificationError(failure("; ".join(problems)))


def _matrix_difference(matrix: np.ndarray, reference: np.ndarray) -> str | None:
    if matrix.shape == reference.shape and np.array_equal(matrix, reference, equal_nan=True):
        return None
    if matrix.shape != reference.shape:
        return f"shapes {matrix.shape} vs {reference.shape}"
    bad = np.argwhere(~np.isclose(reference, matrix, equal_nan=True, rtol=0, atol=0))
    return f"first differences at {bad[:5].tolist()}"
