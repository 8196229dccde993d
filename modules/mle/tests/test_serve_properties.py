"""Property-based tests of the request schema (hypothesis): random valid records score, random invalid
ones get a 4xx naming the field (never a 500), and the columnar hot path agrees with the pydantic model
generated from the same feature specs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from clientml_mle.manifest import FeatureSpec
from clientml_mle.serve.app import create_app
from clientml_mle.serve.schemas import InvalidRequestError, RecordValidator, RequestSchema
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from serve_fixtures import ServeWorld

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
_SAFE_INT = 2**53


# --- strategies from the feature specs -----------------------------------------------------------


def valid_value(spec: Any, null_refused: frozenset[str] = frozenset()) -> st.SearchStrategy[Any]:
    if spec.type == "category":
        known = st.sampled_from(spec.categories) if spec.categories else st.nothing()
        strategy: st.SearchStrategy[Any] = known | st.text(max_size=12)
    elif spec.type == "integer":
        ints = st.integers(-_SAFE_INT, _SAFE_INT)
        strategy = ints | ints.map(float)
    elif spec.type == "boolean":
        strategy = st.booleans() | st.sampled_from([0, 1, 0.0, 1.0])
    else:
        strategy = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-_SAFE_INT, _SAFE_INT)
    return strategy if spec.name in null_refused else strategy | st.none()


def invalid_value(spec: Any, null_refused: frozenset[str] = frozenset()) -> st.SearchStrategy[Any]:
    junk = st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    if spec.type == "category":
        strategy: st.SearchStrategy[Any] = st.integers() | st.floats(allow_nan=False) | st.booleans() | junk
    elif spec.type == "integer":
        fractional = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer())
        strategy = fractional | st.text(max_size=5) | st.booleans() | junk
    elif spec.type == "boolean":
        strategy = st.integers().filter(lambda x: x not in (0, 1)) | st.text(max_size=5) | junk
    else:
        strategy = st.text(max_size=5) | st.booleans() | junk
    return strategy | st.none() if spec.name in null_refused else strategy


def valid_record(specs: list[Any], null_refused: frozenset[str] = frozenset()) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({spec.name: valid_value(spec, null_refused) for spec in specs})


@st.composite
def invalid_records(
    draw: st.DrawFn, specs: list[Any], null_refused: frozenset[str] = frozenset()
) -> tuple[list[Any], set[tuple[Any, ...]]]:
    """A batch with at least one broken record, and the locations that must be reported."""
    records: list[Any] = draw(st.lists(valid_record(specs, null_refused), min_size=1, max_size=4))
    broken: set[tuple[Any, ...]] = set()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(records) - 1))
        if not isinstance(records[i], dict):
            continue
        record = dict(records[i])
        spec = draw(st.sampled_from(specs))
        how = draw(st.sampled_from(["drop", "extra", "value", "not_object"]))
        if how == "drop":
            record.pop(spec.name, None)
            broken.add(("records", i, spec.name))
        elif how == "extra":
            name = draw(st.text(min_size=1, max_size=8).filter(lambda n: n not in {s.name for s in specs}))
            record[name] = draw(st.integers())
            broken.add(("records", i, name))
        elif how == "value":
            record[spec.name] = draw(invalid_value(spec, null_refused))
            broken.add(("records", i, spec.name))
        else:
            records[i] = draw(st.sampled_from([[], "record", 3, None]))
            broken = {loc for loc in broken if loc[1] != i} | {("records", i)}
            continue
        records[i] = record
    return records, broken


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(serve_world: ServeWorld) -> Iterator[TestClient]:
    with TestClient(create_app(serve_world.bundle)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def specs(serve_world: ServeWorld) -> list[Any]:
    return list(serve_world.bundle.manifest.features)


# --- properties -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_valid_records_score_like_the_bundle(client: TestClient, serve_world: ServeWorld, specs: list[Any]) -> None:
    @PROPERTY_SETTINGS
    @given(st.lists(valid_record(specs), min_size=1, max_size=5))
    def check(records: list[dict[str, Any]]) -> None:
        response = client.post("/v1/predict", json={"records": records})
        assert response.status_code == 200, response.text
        got = np.array([p["probability"] for p in response.json()["predictions"]])
        assert np.all((got >= 0) & (got <= 1))
        assert np.max(np.abs(got - serve_world.reference(records))) <= 1e-9

    check()


def test_invalid_records_get_422_naming_the_fields(client: TestClient, specs: list[Any]) -> None:
    @PROPERTY_SETTINGS
    @given(invalid_records(specs))
    def check(case: tuple[list[Any], set[tuple[Any, ...]]]) -> None:
        records, broken = case
        response = client.post("/v1/predict", json={"records": records})
        assert response.status_code == 422, response.text
        body = response.json()
        reported = {tuple(e["loc"]) for e in body["detail"]}
        assert broken <= reported, (broken, reported)
        assert all(e["field"] == ".".join(map(str, e["loc"])) for e in body["detail"])

    check()


@pytest.mark.slow
@pytest.mark.parametrize("refuse", [False, True], ids=["nulls-everywhere", "some-nulls-refused"])
def test_hot_path_agrees_with_the_generated_pydantic_model(specs: list[Any], refuse: bool) -> None:
    # A model that cannot score a null in some features (found at startup) refuses null there only.
    refused = frozenset([specs[0].name, next(s.name for s in specs if s.type == "category")] if refuse else [])
    validator = RecordValidator(specs, max_records=100, null_refused=refused)
    adapter = RequestSchema(specs, max_records=100, null_refused=refused).request_adapter
    valid = st.lists(valid_record(specs, refused), min_size=1, max_size=3)

    @settings(max_examples=300 if not refuse else 100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(valid, invalid_records(specs, refused).map(lambda c: c[0])))
    def check(records: list[Any]) -> None:
        try:
            adapter.validate_python({"records": records})
            pydantic_locs: set[tuple[Any, ...]] = set()
        except ValidationError as exc:
            pydantic_locs = {tuple(e["loc"]) for e in exc.errors()}
        try:
            validator.validate_records(records)
            ours: set[tuple[Any, ...]] = set()
        except InvalidRequestError as exc:
            ours = {tuple(e["loc"]) for e in exc.errors}
        assert ours == pydantic_locs
        # The columnar fast path and the exhaustive scan agree too.
        assert (validator._fast(records) is None) == bool(validator.record_errors(records))

    check()


# JSON-like values of every kind, and what numpy or Python could pass in process (nan, inf, large ints).
ODD_VALUES = [None, float("nan"), float("inf"), -float("inf"), True, False, 0, 1, 2, -1, 0.0, 1.0, 0.5, 3.0, -2.5]
ODD_VALUES += [2**60, "x", "", "0", [], {}, [1]]


@pytest.mark.parametrize("refuse", [False, True], ids=["nulls-everywhere", "nulls-refused"])
def test_a_single_record_is_validated_as_in_a_batch(specs: list[Any], refuse: bool) -> None:
    """A single record has a path of its own (the same rules on Python values, no arrays): every value of
    every feature is accepted or refused as in a batch, and as the exhaustive scan says for what JSON can
    hold (a NaN or an infinity reaches the validator only in process), and gives what a batch gives."""
    specs = [*specs, FeatureSpec(name="flag", type="boolean"), FeatureSpec(name="count", type="integer")]
    refused = frozenset(s.name for s in specs) if refuse else frozenset()
    validator = RecordValidator(specs, max_records=100, null_refused=refused)
    base = {s.name: (s.categories[0] if s.categories else "a") if s.type == "category" else 1 for s in specs}
    for spec in specs:
        for value in [*ODD_VALUES, *(spec.categories or [])[:2]]:
            record = {**base, spec.name: value}
            single, batch = validator._fast([record]), validator._fast([record, record])
            assert (single is None) == (batch is None), (spec.name, spec.type, value)
            if not (isinstance(value, float) and not math.isfinite(value)):
                assert (single is None) == bool(validator.record_errors([record])), (spec.name, spec.type, value)
            if single is not None and batch is not None:
                np.testing.assert_array_equal(single.numeric, batch.numeric[:1])
                assert single.categorical == {k: v[:1] for k, v in batch.categorical.items()}
    for odd in ([], "record", {**base, "extra": 1}, {k: v for k, v in base.items() if k != specs[0].name}):
        assert validator._fast([odd]) is None


def test_arbitrary_bodies_never_500(client: TestClient) -> None:
    @settings(max_examples=80, deadline=None)
    @given(
        st.binary(max_size=200) | st.text(max_size=100).map(str.encode) | st.from_type(dict).map(repr).map(str.encode)
    )
    def check(body: bytes) -> None:
        response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code in (413, 422), response.text
        assert response.json()["detail"][0]["field"]

    check()
