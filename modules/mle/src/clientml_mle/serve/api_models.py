"""The request and response models that document the API (OpenAPI): the routes parse and serialise with
orjson themselves, and validate records with :class:`clientml_mle.serve.schemas.RecordValidator`; only
``ClientsRequest`` also validates (the client ids of ``/v1/predict/clients``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from clientml_mle.serve.schemas import FeatureType


class ModelRef(BaseModel):
    name: str
    version: str


class Contribution(BaseModel):
    feature: str
    value: Any = Field(description="The record's value of the feature")
    contribution: float = Field(description="Contribution to the raw score (log-odds), SHAP-like")


class Prediction(BaseModel):
    probability: float = Field(ge=0, le=1)
    label: int = Field(description="1 when probability >= threshold, else 0")
    contributions: list[Contribution] | None = Field(
        default=None, description="With ?explain=true: the 5 largest contributions by absolute value"
    )


class PredictResponse(BaseModel):
    model: ModelRef
    threshold: float
    request_id: str
    predictions: list[Prediction]


MAX_CLIENT_ID_CHARS = 256
# C0 and C1 control characters (NUL, tab, newline, escape, ...): no client id in a feature store holds one.
CLIENT_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_client_id(value: Any) -> str:
    """``value`` when it can be a client id: a string of 1 to MAX_CLIENT_ID_CHARS characters, none of them
    a control character. Raises PydanticCustomError (a 422 naming ``client_ids.<index>``) otherwise."""
    if type(value) is not str:
        raise PydanticCustomError("string_type", "Input should be a string (a client id)")
    if not value:
        raise PydanticCustomError("client_id_empty", "A client id is not empty")
    if len(value) > MAX_CLIENT_ID_CHARS:
        limit, n = MAX_CLIENT_ID_CHARS, len(value)
        raise PydanticCustomError("client_id_too_long", f"A client id has at most {limit} characters, got {n}")
    found = _CONTROL_CHARACTER.search(value)
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        msg = f"A client id holds no control character (found {code} at position {found.start()})"
        raise PydanticCustomError("client_id_control_character", msg)
    return value


ClientId = Annotated[
    str,
    PlainValidator(check_client_id),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CLIENT_ID_CHARS,
            "pattern": CLIENT_ID_PATTERN,
            "description": "A client id: 1 to 256 characters, no control characters (NUL, tab, newline, ...)",
        }
    ),
]


class ClientsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_ids: list[ClientId] = Field(min_length=1, description="Ids to score; a repeated id is scored once")


class ClientPrediction(Prediction):
    client_id: str
    as_of_date: str | None = None


class ClientsResponse(BaseModel):
    model: ModelRef
    threshold: float
    request_id: str
    predictions: list[ClientPrediction]
    not_found: list[str] = Field(description="Requested ids with no row in the feature store")


class FeatureInfo(BaseModel):
    name: str
    type: FeatureType
    nullable: bool = Field(description="Whether a record may hold null (a missing value) for this feature")
    nulls_in_training: bool = Field(description="Whether the training rows had nulls in this feature")
    categories: list[str] | None = None


class ProcessInfo(BaseModel):
    pid: int
    started_at: str = Field(description="When this worker's app started (UTC): a model swap keeps it")


class RefusedInfo(BaseModel):
    version: str | None = Field(description="The version the pointer names (null: the pointer is unreadable)")
    reason: str


class ModelInfo(BaseModel):
    name: str
    version: str
    loaded_at: str = Field(description="When this version began to serve in this process (UTC)")
    process: ProcessInfo
    refused: RefusedInfo | None = Field(
        None, description="The bundle the pointer names, which this worker refused to serve (it serves this one)"
    )
    threshold: float
    metrics: dict[str, Any]
    features: list[FeatureInfo]
    created_at: str | None = None
    training_data: dict[str, Any] | None = None
    predictor: dict[str, Any] = Field(description="The serving fast path and its verification")
    max_records: int = Field(description="Records accepted per request")


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted location, e.g. records.3.age_years")
    loc: list[str | int]
    type: str
    msg: str


class ErrorResponse(BaseModel):
    error: str
    detail: list[ErrorDetail] | None = None
    request_id: str | None = None
