"""Declared types survive to the API: each type a dataset config can declare for an extra client column
(category, number, integer, date, boolean) keeps its meaning from the load through feature_store, the
bundle's manifest, ``/v1/model``, OpenAPI and the request validation. Case ``api-boolean-feature``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_cases import CASES, by_ids, case_body, error_fields, probabilities, serving, trained_world
from serve_fixtures import ServeWorld

BOOLEAN_CASE = CASES / "api-boolean-feature"

# The feature each declared extra column becomes, and its type in the manifest and the API.
DECLARED = {"tier": "category", "score": "number", "visits": "integer", "last_visit": "date", "is_vip": "boolean"}
FEATURE_TYPES = {
    "tier": "category",
    "score": "number",
    "visits": "integer",
    "days_since_last_visit": "integer",  # a date: whole days from it to the as-of date
    "is_vip": "boolean",
}
# (feature, value, accepted?): what each type takes in a record, and what it refuses with a 422.
VALUES: list[tuple[str, Any, bool]] = [
    ("tier", "gold", True),
    ("tier", "never-seen", True),
    ("tier", 3, False),
    ("tier", True, False),
    ("score", -1.25, True),
    ("score", 7, True),
    ("score", "1.5", False),
    ("score", True, False),
    ("visits", 4, True),
    ("visits", 4.0, True),
    ("visits", 4.5, False),
    ("visits", "4", False),
    ("visits", False, False),
    ("days_since_last_visit", -30, True),
    ("days_since_last_visit", "2024-01-01", False),
    ("days_since_last_visit", 1.5, False),
    ("is_vip", True, True),
    ("is_vip", False, True),
    ("is_vip", 1, True),
    ("is_vip", 0, True),
    ("is_vip", 2, False),
    ("is_vip", -1, False),
    ("is_vip", 0.5, False),
    ("is_vip", "true", False),
    ("is_vip", "yes", False),
    ("is_vip", [True], False),
]


def _all_types_sources(directory: Path) -> tuple[Path, Path]:
    """The case's clients with one extra column of every declared type (some values empty), and the
    dataset config declaring them."""
    with (BOOLEAN_CASE / "clients.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    extras = [name for name in DECLARED if name != "is_vip"]
    out = [[*header, *extras]]
    for i, row in enumerate(body):
        tier = "" if i % 7 == 0 else ("gold", "silver", "bronze")[i % 3]
        score = "" if i % 11 == 0 else f"{(i * 37) % 100 / 10 - 3:.1f}"
        visits = "" if i % 5 == 0 else str(i % 13)
        last_visit = "" if i % 9 == 0 else (date(2024, 1, 1) + timedelta(days=3 * i)).isoformat()
        if i % 10 == 9:  # every extra empty, is_vip included
            out.append([*row[:-1], "", "", "", "", ""])
            continue
        out.append([*row, tier, score, visits, last_visit])
    clients = directory / "clients.csv"
    with clients.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(out)
    config = directory / "dataset.yaml"
    lines = [f"  - {{name: {name}, type: {kind}}}" for name, kind in DECLARED.items()]
    config.write_text("name: all_types\nextra_columns:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return clients, config


@pytest.fixture(scope="module")
def vip_world(tmp_path_factory: pytest.TempPathFactory) -> ServeWorld:
    case = BOOLEAN_CASE
    directory = tmp_path_factory.mktemp("vip")
    return trained_world(directory, case / "clients.csv", case / "sales.csv", case / "dataset.yaml")


@pytest.fixture(scope="module")
def vip_client(vip_world: ServeWorld) -> Iterator[TestClient]:
    with serving(vip_world) as client:
        yield client


@pytest.fixture(scope="module")
def typed_world(tmp_path_factory: pytest.TempPathFactory) -> ServeWorld:
    directory = tmp_path_factory.mktemp("typed")
    clients, config = _all_types_sources(directory)
    return trained_world(directory, clients, BOOLEAN_CASE / "sales.csv", config)


@pytest.fixture(scope="module")
def typed_client(typed_world: ServeWorld) -> Iterator[TestClient]:
    with serving(typed_world) as client:
        yield client


def _predict(client: TestClient, records: list[dict[str, Any]]) -> Any:
    return client.post("/v1/predict", json={"records": records})


def test_case_api_boolean_feature(vip_client: TestClient, vip_world: ServeWorld) -> None:
    """The declared boolean is served as a boolean: true/false (and 0/1) scored, 2 and -1 refused."""
    spec = next(f for f in vip_world.bundle.manifest.features if f.name == "is_vip")
    assert spec.type == "boolean"
    info = next(f for f in vip_client.get("/v1/model").json()["features"] if f["name"] == "is_vip")
    assert (info["type"], info["nullable"]) == ("boolean", True)

    record = case_body("api-boolean-feature", "body_is_vip_true.json")["records"][0]
    assert set(record) == set(vip_world.feature_names), "the case's body no longer matches the feature set"
    accepted = [{**record, "is_vip": value} for value in (True, False, 1, 0, None)]
    got = probabilities(_predict(vip_client, accepted))
    assert np.max(np.abs(got - vip_world.reference(accepted))) <= 1e-9
    assert got[0] == got[2] and got[1] == got[3]  # true is 1, false is 0

    for name in ("body_is_vip_two.json", "body_is_vip_minus_one.json"):
        response = vip_client.post("/v1/predict", json=case_body("api-boolean-feature", name))
        assert response.status_code == 422, name
        assert error_fields(response) == ["records.0.is_vip"]
        assert response.json()["detail"][0]["type"] == "boolean_type"
    as_text = _predict(vip_client, [{**record, "is_vip": "true"}])
    assert as_text.status_code == 422 and error_fields(as_text) == ["records.0.is_vip"]


def test_a_boolean_row_of_the_store_scores_alike_by_id_and_by_record(
    vip_client: TestClient, vip_world: ServeWorld
) -> None:
    store = vip_world.store
    assert set(store["is_vip"].dropna()) == {0.0, 1.0} and store["is_vip"].isna().any()
    ids = [*store["client_id"][store["is_vip"].isna()][:3], *store["client_id"][store["is_vip"] == 1.0][:3]]
    by_id = by_ids(vip_client, ids)
    records = vip_world.records_of(ids)
    assert np.max(np.abs(probabilities(by_id) - probabilities(_predict(vip_client, records)))) <= 1e-9


def test_every_declared_type_reaches_the_manifest_the_model_route_and_openapi(
    typed_client: TestClient, typed_world: ServeWorld
) -> None:
    manifest = {f.name: f for f in typed_world.bundle.manifest.features}
    assert {name: manifest[name].type for name in FEATURE_TYPES} == FEATURE_TYPES
    assert all(manifest[name].nullable for name in FEATURE_TYPES)  # training saw empty values of each
    assert manifest["tier"].categories == ["bronze", "gold", "silver"]

    info = {f["name"]: f for f in typed_client.get("/v1/model").json()["features"]}
    assert {name: info[name]["type"] for name in FEATURE_TYPES} == FEATURE_TYPES
    assert all(info[name]["nullable"] and info[name]["nulls_in_training"] for name in FEATURE_TYPES)

    properties = typed_client.get("/openapi.json").json()["components"]["schemas"]["PredictRecord"]["properties"]
    schemas = {name: properties[name]["anyOf"] for name in FEATURE_TYPES}
    assert schemas["tier"][0]["type"] == "string"
    assert schemas["score"][0] == {"type": "number"}
    assert schemas["visits"][0] == schemas["days_since_last_visit"][0] == {"type": "integer"}
    assert schemas["is_vip"][0] == {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
    assert all({"type": "null"} in schema for schema in schemas.values())


@pytest.mark.parametrize(("name", "value", "accepted"), VALUES, ids=[f"{n}={v!r}" for n, v, _ in VALUES])
def test_each_type_accepts_its_values_and_refuses_others_naming_the_field(
    typed_client: TestClient, typed_world: ServeWorld, name: str, value: Any, accepted: bool
) -> None:
    record = {**typed_world.records(1)[0], name: value}
    response = _predict(typed_client, [typed_world.records(1)[0], record])
    if accepted:
        expected = typed_world.reference([typed_world.records(1)[0], record])
        assert np.max(np.abs(probabilities(response) - expected)) <= 1e-9
    else:
        assert response.status_code == 422
        assert error_fields(response) == [f"records.1.{name}"]


def test_empty_extras_score_alike_in_both_routes(typed_client: TestClient, typed_world: ServeWorld) -> None:
    """A client whose extra columns are all empty: nulls in every extra feature, by id and by record."""
    store = typed_world.store
    blank = store[store[list(FEATURE_TYPES)].isna().all(axis=1)]
    assert len(blank) >= 1
    ids = blank["client_id"].tolist()[:5]
    by_id = by_ids(typed_client, ids)
    records = typed_world.records_of(ids)
    expected = typed_world.reference(records)
    assert np.max(np.abs(probabilities(by_id) - expected)) <= 1e-9
    assert np.max(np.abs(probabilities(_predict(typed_client, records)) - expected)) <= 1e-9
