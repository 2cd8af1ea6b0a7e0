"""The review API under /api/reviews (reviewer or admin keys; the middleware checks them):

    GET  /queue?limit=N                 the next calls in queue order, and how many wait in all
    POST /next                          lease the first queued call to me and return it (204: queue empty)
    GET  /calls/{call_id}               a call: transcript, latest prediction, current labels, revision, history
    POST /calls/{call_id}/open          the same, leasing the call to me (423 while another reviewer holds it)
    POST /calls/{call_id}/release       give my lease back
    POST /calls/{call_id}/reviews       save a review {revision, labels, comment, scorecard} → 201; 409 when the call was
                                        reviewed since that revision, 423 when leased to someone else, 403 when its
                                        双评 differ and the key is not a lead's (a lead's review is the 仲裁)
    GET  /calls/{call_id}/evidence      per head, each turn's attribution (occlusion on the served model), cached
    GET  /stats                         calls stored, reviewed, reviews saved
    GET  /me                            who the key belongs to (id, name, role)

Reviews are recorded under the API key's id (shown in `callqa keys list`), never the key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, WithJsonSchema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callqa.calls import MAX_TURNS, SingleLabel, json_int
from callqa.evidence import CallEvidence
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .middleware import KEY_HOLDER, REVIEW_UI_CSP
from .openapi import Operation
from .params import Day, Flag, Name, Score, StrictQuery, ecma, query_schema
from .report import PERIOD_PATTERN, REPORT_STYLE, Report
from .store import (
    LOCAL_DEMO,
    CallFilter,
    CallView,
    DoubleState,
    KeyHolder,
    QueueItem,
    QueuePolicy,
    Reviewer,
    ReviewError,
    ReviewRecord,
    ScorecardReview,
    TurnIndex,
)

log = logging.getLogger("bentoml.callqa.reviews")
_STYLE_HASH = base64.b64encode(hashlib.sha256(REPORT_STYLE.encode()).digest()).decode()
REPORT_PAGE_CSP = REVIEW_UI_CSP.replace("style-src 'self'", f"style-src 'self' 'sha256-{_STYLE_HASH}'")



class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: json_int(ge=0, le=2**31 - 1) = Field(description="the call's revision when the reviewer loaded it")
    # As the call format takes one annotator's label (4, "4", "resolved", a list of topics); votes are for
    # calibration files, not one reviewer's decision.
    labels: dict[Annotated[str, Field(max_length=100)], SingleLabel] = Field(
        max_length=100, description="head → class id (topics: list of ids)")
    comment: StrictStr = Field(default="", max_length=4000)
    scorecard: ScorecardReview | None = Field(default=None, description="verdicts on the prediction's scorecard: "
                                              "deductions marked wrong (误判), missed ones (漏扣), items' points")
    reasons: dict[Annotated[str, Field(max_length=100)],
                  Annotated[list[TurnIndex], Field(max_length=100)]] = Field(
        default={}, max_length=100, description="head → turns (indices) the reviewer marks as the reason for the label")


def labels_json_schema(schema: LabelSchema) -> dict:
    """A review's labels as JSON Schema under ``schema``: each head by name with its class ids (numeric levels also as
    numbers, as the call format takes them) — what :meth:`LabelSchema.check_labels` accepts."""
    heads = {head.name: head.spec.label_json_schema(head) for head in schema.heads}
    return {"type": "object", "properties": heads, "additionalProperties": False,
            "description": "head → class id (topics: a list of ids)"}


@functools.lru_cache(maxsize=8)
def _review_request(schema_json: str) -> type[ReviewRequest]:
    schema = LabelSchema.model_validate_json(schema_json)
    heads = {"enum": list(schema.head_names)}

    class ServedReviewRequest(ReviewRequest):
        """A review under the served model's label schema: its heads and classes, and labels or a scorecard
        verdict (or both)."""

        model_config = ConfigDict(extra="forbid", title="ReviewRequest", json_schema_extra={"anyOf": [
            {"properties": {"labels": {"minProperties": 1}}},
            {"required": ["scorecard"], "properties": {"scorecard": {"type": "object"}}}]})

        labels: Annotated[dict[Annotated[str, Field(max_length=100)], SingleLabel],
                          WithJsonSchema(labels_json_schema(schema))] = Field(max_length=100)
        reasons: Annotated[dict[Annotated[str, Field(max_length=100)], Annotated[list[TurnIndex], Field(max_length=100)]],
                           WithJsonSchema({"type": "object", "propertyNames": heads, "maxProperties": 100,
                                           "additionalProperties": {"type": "array", "maxItems": 100, "items": {
                                               "type": "integer", "minimum": 0, "maximum": MAX_TURNS - 1}},
                                           "description": "head → turns (indices) marked as the reason for its label"})
                           ] = Field(default={}, max_length=100)

    return ServedReviewRequest


def review_request(schema: LabelSchema) -> type[ReviewRequest]:
    """The review body the server takes and its spec states, for the served label schema (one class per schema)."""
    return _review_request(schema.model_dump_json())


class QueuePage(BaseModel):
    policy: QueuePolicy
    waiting: int = Field(description="calls waiting in all; with filters, calls matching them")
    items: list[QueueItem] = Field(description="the next calls, in queue order; with filters, newest first")
    filtered: bool = Field(default=False, description="true when filters chose the calls (a search, not the queue)")
    time_zone: str = Field(default="UTC", description="the zone the UI shows times in (the server's report zone)")


class QueueQuery(StrictQuery):
    """GET /api/reviews/queue: ``limit``, and filters — any filter turns the queue into a search over every stored
    call."""

    limit: Annotated[int, Field(ge=1, le=500)] = 50
    agent: Name | None = None
    team: Name | None = Field(default=None, description="agents of this team (directory)")
    from_: Day | None = Field(default=None, alias="from", description="calls started on or after this day (server zone)")
    to: Day | None = Field(default=None, description="calls started on or before this day (server zone)")
    topic: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    score_min: Score | None = None
    score_max: Score | None = None
    red_line: Flag | None = None
    reviewed: Flag | None = None
    sampled: Flag | None = None
    mine: Flag | None = Field(default=None, description="calls I reviewed")
    disputed: Flag | None = Field(default=None, description="calls whose customer's survey answer and the model's "
                                  "satisfaction disagree (客户评价与模型不一致)")
    double: DoubleState | None = Field(default=None, description="双评 state: pending 待双评, differs 待仲裁, agreed "
                                       "双评一致, adjudicated 已仲裁")


def call_filter(query: QueueQuery, reviewer: str, directory, tz) -> CallFilter | None:
    """The search the query asks for, or None without filters (the queue)."""
    given = query.model_dump(exclude_unset=True, exclude={"limit"})
    if not given:
        return None
    out: dict = {}
    if query.team is not None:
        out["agents"] = directory.members(query.team)
    if query.agent is not None:
        out["agents"] = [a for a in out.get("agents", [query.agent]) if a == query.agent]
    if query.from_ is not None:
        out["started_from"] = datetime.combine(query.from_, datetime.min.time(), tzinfo=tz)
    if query.to is not None:
        out["started_before"] = datetime.combine(query.to + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    for name in ("red_line", "reviewed", "sampled", "disputed"):
        if given.get(name) is not None:
            out[name] = given[name] == "true"
    if query.mine == "true":
        out["reviewed_by"] = reviewer
    out.update({k: given[k] for k in ("topic", "score_min", "score_max", "double") if given.get(k) is not None})
    return CallFilter(**out)


class ReportQuery(StrictQuery):
    period: Annotated[str, Field(pattern=ecma(PERIOD_PATTERN), description="a month (2026-03) or an ISO week "
                                 "(2026-W10), 1970–2099")]
    team: Name | None = None
    agent: Name | None = None


class StoreCounts(BaseModel):
    calls: int
    reviewed: int
    reviews: int
    latest_period: str | None = Field(default=None, description="the month (in the report time zone) of the latest "
                                      "stored call: where the dashboard opens")


class KeyInfo(BaseModel):
    id: str = Field(description="the key's id (random; reviews are recorded under it)")
    name: str
    role: str


ROLE = "reviewer"
REPORT_QUERY = query_schema(ReportQuery)
CALL_ERRORS = (404,)
# The routes as clients see them (serving/openapi.py); the handlers below answer with these models.
def review_operations(schema: LabelSchema) -> list[Operation]:
    """The routes as clients see them, for the served label schema."""
    return [op if op.body is not ReviewRequest else replace(op, body=review_request(schema))
            for op in REVIEW_OPERATIONS]


REVIEW_OPERATIONS = [
    Operation("GET", "/api/reviews/queue", "The next calls in queue order, and how many wait; with filters, a search "
              "over every stored call", ROLE, QueuePage, errors=(400,),
              query=query_schema(QueueQuery)),
    Operation("POST", "/api/reviews/next", "Lease the first queued call to me and return it (204: queue empty)",
              ROLE, CallView, also=(204,)),
    Operation("GET", "/api/reviews/calls/{call_id}", "A call: transcript, prediction, current labels, history", ROLE,
              CallView, errors=CALL_ERRORS),
    Operation("POST", "/api/reviews/calls/{call_id}/open", "The call, leased to me", ROLE, CallView,
              errors=(404, 423)),
    Operation("POST", "/api/reviews/calls/{call_id}/release", "Give my lease back", ROLE, status=204,
              errors=CALL_ERRORS),
    Operation("POST", "/api/reviews/calls/{call_id}/reviews", "Save a review made on a revision of the call", ROLE,
              ReviewRecord, body=ReviewRequest, status=201, errors=(403, 404, 409, 423)),
    Operation("POST", "/api/reviews/calls/{call_id}/record", "The score of record these verdicts would give the call "
              "(the review UI's live total; nothing is saved)", ROLE, ScorecardResult, body=ScorecardReview,
              errors=(400, 404, 409)),
    Operation("GET", "/api/reviews/calls/{call_id}/evidence", "Per head, each turn's attribution (occlusion), cached; "
              "computed only while /score leaves the model a run free (503 past the server's time limit)",
              ROLE, CallEvidence, errors=(404, 503)),
    Operation("GET", "/api/reviews/stats", "Calls stored, reviewed, reviews saved", ROLE, StoreCounts),
    Operation("GET", "/api/reviews/me", "Who this key belongs to", ROLE, KeyInfo),
    Operation("GET", "/api/reviews/report", "A period's QA report (质检月报/周报) as data: the tables of `callqa report`",
              ROLE, Report, errors=(400, 404), query=REPORT_QUERY),
    Operation("GET", "/api/reviews/report/page", "The same report as a self-contained HTML page (the dashboard shows it)",
              ROLE, errors=(400, 404), query=REPORT_QUERY, media_type="text/html"),
]


def _holder(request: Request) -> KeyHolder:
    return request.scope.get(KEY_HOLDER, LOCAL_DEMO)


def _reviewer(request: Request) -> Reviewer:
    holder = _holder(request)
    return Reviewer(holder.id, holder.name)


def key_info(request: Request) -> Response:
    """Who the request's key belongs to (GET /api/reviews/me, and GET /api/me for any role)."""
    holder = _holder(request)
    return JSONResponse(KeyInfo(id=holder.id, name=holder.name, role=holder.role).model_dump())


def _error(err: ReviewError) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=err.status)


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The request's JSON body as ``model``, or a 400 naming the first bad field (never echoing its value)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=400)
