"""``POST /v1/predict`` (records in the body) and ``POST /v1/predict/clients`` (ids looked up in the
feature store).

Both bodies are read and parsed by the route itself (orjson, size guarded; the
:data:`~clientml_mle.serve.deps.JsonBody` dependency for ``/v1/predict/clients``), not by FastAPI, so that a
10,000-record batch is validated column by column instead of as 10,000 pydantic objects, and only once
the API key has been checked; the OpenAPI document still describes them (``PredictRequest``, generated
from the feature specs, and ``ClientsRequest``). ``/v1/predict``, the hot route, takes the request alone
and reads the model, the body and ``explain`` itself: FastAPI's resolution of those three dependencies
cost more than validating, encoding and scoring a record (a request took 272 µs with them, 197 µs without,
measured in process), and it raises the same errors in the same order (503 not ready, then 413/422 of the
body, then ``explain``).

``/v1/predict/clients``: ids without a row in the feature store are listed in ``not_found`` (the
response is 200 with the others' predictions); an id that cannot be one (empty, a control character,
over 256 characters) is a 422 naming ``client_ids.<index>``. The ids reach the warehouse as data (see
:func:`clientml_mle.features.latest_rows`), never as SQL text. A server without a warehouse URL answers
503, and so does a failing warehouse, without its message (logged with the request id).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from clientml_mle.serve.api_models import ClientsRequest, ClientsResponse, PredictResponse
from clientml_mle.serve.deps import (
    JsonBody,
    ReadyModelDep,
    Served,
    ServeState,
    StateDep,
    get_model,
    parse_json,
    read_body,
    request_id,
)
from clientml_mle.serve.fastpath import VerifiedPredictor, records_from_frame
from clientml_mle.serve.routers import ERRORS, json_response
from clientml_mle.serve.schemas import (
    InvalidRequestError,
    ValidRecords,
    error_entry,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["predict"])

MAX_EXPLAIN_RECORDS = 1000
EXPLAIN_HELP = (
    f"Add each prediction's 5 largest feature contributions (log-odds); at most {MAX_EXPLAIN_RECORDS} "
    f"records per request"
)
EXPLAIN = Query(False, description=EXPLAIN_HELP)
# How FastAPI documents EXPLAIN, for the route that parses the parameter itself (``explain_param``).
EXPLAIN_PARAMETER = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "description": EXPLAIN_HELP, "default": False, "title": "Explain"},
    "description": EXPLAIN_HELP,
}
_BOOLEAN = TypeAdapter(bool)


def _request_body(schema: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route parses itself, by its component's name."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def explain_param(request: Request) -> bool:
    """The ``explain`` query parameter as FastAPI parses a ``bool`` (``true``/``1``/``yes``/``on``...,
    false when absent); RequestValidationError (422, ``explain``) for anything else."""
    if not request.scope["query_string"]:  # the common case, without parsing a query string
        return False
    raw = request.query_params.get("explain")
    if raw is None:
        return False
    try:
        return _BOOLEAN.validate_python(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", "explain")} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def check_explain(n: int) -> None:
    """InvalidRequestError 413 when ``explain=true`` is asked for more than MAX_EXPLAIN_RECORDS records."""
    if n > MAX_EXPLAIN_RECORDS:
        msg = f"explain=true is limited to {MAX_EXPLAIN_RECORDS} records per request (got {n})"
        raise InvalidRequestError(413, msg, [error_entry(["records"], "too_long", msg)])


async def _predictions(
    served: Served, valid: ValidRecords, records: list[dict[str, Any]], explain: bool
) -> list[dict[str, Any]]:
    predictor = served.predictor
    matrix = predictor.encode(valid)
    probabilities = predictor.predict_matrix(matrix)
    labels = predictor.labels(probabilities)
    out = [{"probability": p, "label": label} for p, label in zip(probabilities.tolist(), labels.tolist(), strict=True)]
    if explain:
        # TreeSHAP costs about a millisecond per record: off the event loop (LightGBM releases the GIL).
        tops = await run_in_threadpool(predictor.top_contributions, matrix, records)
        for prediction, top in zip(out, tops, strict=True):
            prediction["contributions"] = top
    # Counted once the predictions are certain to be served (explain may still refuse them above).
    served.metrics.record(probabilities, int(labels.sum()), valid.categorical)
    return out


def _model_ref(predictor: VerifiedPredictor) -> dict[str, str]:
    return {"name": predictor.name, "version": predictor.version}


@router.post(
    "/predict",
    summary="Score records",
    responses={200: {"model": PredictResponse}, **ERRORS},
    openapi_extra={**_request_body("PredictRequest"), "parameters": [EXPLAIN_PARAMETER]},
)
async def predict(request: Request) -> Response:
    """P(label = 1) and the label of every record, in order (``PredictResponse``)."""
    state: ServeState = request.app.state.serve
    served = (await get_model(state)).served
    assert served is not None  # get_model answered 503 otherwise
    predictor = served.predictor
    payload = parse_json(await read_body(request, state.max_body_bytes))
    explain = explain_param(request)
    records = payload.get("records") if type(payload) is dict else None
    if type(records) is list:
        request.state.n_records = len(records)
    valid: ValidRecords = predictor.validator.validate_payload(payload)
    assert records is not None
    if explain:
        check_explain(valid.n)
    return json_response(
        {
            "model": _model_ref(predictor),
            "threshold": predictor.threshold,
            "request_id": request_id(request),
            "predictions": await _predictions(served, valid, records, explain),
        }
    )


def _lookup(state: ServeState, ids: list[str]) -> Any:
    from clientml_mle.features import latest_rows

    assert state.warehouse_url is not None
    return latest_rows(state.warehouse_url, ids)


@router.post(
    "/predict/clients",
    summary="Score clients by id from their latest feature-store rows",
    responses={200: {"model": ClientsResponse}, **ERRORS},
    openapi_extra=_request_body("ClientsRequest"),
)
async def predict_clients(
    request: Request, state: StateDep, model: ReadyModelDep, payload: JsonBody, explain: bool = EXPLAIN
) -> Response:
    """Predictions of the requested clients found in the feature store, in request order (duplicates
    once), and the ids not found (``ClientsResponse``)."""
    try:
        body = ClientsRequest.model_validate(payload)
    except ValidationError as exc:  # answered like FastAPI's own body validation errors
        raise RequestValidationError(exc.errors(include_url=False)) from None
    served = model.served
    assert served is not None  # ReadyModelDep answered 503 otherwise
    predictor = served.predictor
    ids = list(dict.fromkeys(body.client_ids))
    request.state.n_records = len(ids)
    if len(ids) > state.max_records:
        msg = f"too many client_ids: {len(ids)} > limit {state.max_records} per request"
        raise InvalidRequestError(413, msg, [error_entry(["client_ids"], "too_long", msg)])
    if explain:
        check_explain(len(ids))
    if not state.warehouse_url:
        raise InvalidRequestError(
            503,
            "this server has no feature store: start it with a warehouse URL (--warehouse or "
            "CLIENTML_WAREHOUSE_URL) to score clients by id, or POST records to /v1/predict",
            [],
        )
    try:
        frame = await run_in_threadpool(_lookup, state, ids)
    except Exception:
        # The warehouse's own message may quote the query: it goes to the log, never to the client.
        log.exception("feature store lookup failed (request %s)", request_id(request))
        message = "feature store lookup failed: the warehouse could not be queried (details in the server log)"
        raise InvalidRequestError(503, message, []) from None
    try:
        records = records_from_frame(frame, predictor.features)
    except KeyError as exc:
        raise InvalidRequestError(503, f"feature store rows do not fit the model's schema: {exc.args[0]}", []) from None
    found_ids = [str(c) for c in frame["client_id"].tolist()]
    as_of = [_iso(v) for v in frame["as_of_date"].tolist()] if "as_of_date" in frame else [None] * len(frame)
    predictions: list[dict[str, Any]] = []
    if records:
        try:
            valid = predictor.validator.validate_records(records)
        except InvalidRequestError as exc:
            raise InvalidRequestError(
                503, f"feature store rows do not fit the model's schema: {exc.message}", exc.errors
            ) from None
        rows = await _predictions(served, valid, records, explain)
        by_id = {
            cid: {"client_id": cid, "as_of_date": date, **row}
            for cid, date, row in zip(found_ids, as_of, rows, strict=True)
        }
        predictions = [by_id[c] for c in ids if c in by_id]
    found = set(found_ids)
    return json_response(
        {
            "model": _model_ref(predictor),
            "threshold": predictor.threshold,
            "request_id": request_id(request),
            "predictions": predictions,
            "not_found": [c for c in ids if c not in found],
        }
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    text = iso() if iso is not None else str(value)
    return text[:10] if len(text) >= 10 and text[10:11] in ("T", " ", "") else text
