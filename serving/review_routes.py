"""The review API's handlers under /api/reviews (the routes and their models are in serving/review_api.py): one
method per route, each parsing strictly, asking the store and answering."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callqa.calls import Call
from callqa.evidence import CallEvidence
from callqa.schema import LabelSchema

from .directory import AgentDirectory
from .explainer import ClientGone
from .params import QueryError
from .report import ReportBuilder, UnknownTeam, render_html
from .review_api import (
    REPORT_PAGE_CSP,
    QueuePage,
    QueueQuery,
    ReportQuery,
    StoreCounts,
    _error,
    _holder,
    _reviewer,
    call_filter,
    key_info,
    parse_body,
    review_request,
)
from .store import ReviewError, ReviewStore, ScorecardReview, allowed

log = logging.getLogger("bentoml.callqa.reviews")

Explain = Callable[[Call, Callable[[], Awaitable[bool]]], Awaitable[CallEvidence]]


class ReviewRoutes:
    """Routes over the store ``store()`` returns (made on first use, in the worker that serves them); ``explain``
    computes a call's evidence with the served model, tagged ``model`` (evidence is cached per call and model);
    ``reports()`` builds QA reports over the same store."""

    def __init__(self, store: Callable[[], ReviewStore], schema: LabelSchema, explain: Explain | None = None,
                 model: str = "", reports: Callable[[], ReportBuilder] | None = None):
        self.store, self.schema, self.explain, self.model, self.reports = store, schema, explain, model, reports
        self.review = review_request(schema)

    def routes(self) -> list[Route]:
        return [
            Route("/queue", self.queue), Route("/next", self.next_call, methods=["POST"]), Route("/stats", self.stats),
            Route("/me", key_info), Route("/calls/{call_id}", self.view),
            Route("/calls/{call_id}/open", self.open_call, methods=["POST"]),
            Route("/calls/{call_id}/release", self.release, methods=["POST"]),
            Route("/calls/{call_id}/reviews", self.submit, methods=["POST"]),
            Route("/calls/{call_id}/record", self.record, methods=["POST"]),
            Route("/calls/{call_id}/evidence", self.evidence), Route("/report", self.report),
            Route("/report/page", self.report),
        ]

    def queue(self, request: Request) -> Response:
        me = _reviewer(request).id
        context = self.reports() if self.reports is not None else None
        try:
            query = QueueQuery.parse(request.query_params)
        except QueryError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        directory = context.directory if context else AgentDirectory()
        search = call_filter(query, me, directory, context.tz if context else UTC)
        items, total = self.store().search(search, me, query.limit) if search else self.store().queue(me, query.limit)
        items = [i.model_copy(update={"agent_name": directory.name(i.agent_id) if i.agent_id in directory.agents
                                      else ""}) for i in items]
        return JSONResponse(QueuePage(policy=self.store().policy, waiting=total, items=items,
                                      filtered=search is not None,
                                      time_zone=context.tz_name if context else "UTC").model_dump(mode="json"))

    def next_call(self, request: Request) -> Response:
        reviewer = _reviewer(request)
        call_id = self.store().next_call(reviewer)
        if call_id is None:
            return Response(status_code=204)
        try:
            return JSONResponse(self.store().view(call_id, reviewer.id).model_dump(mode="json"))
        except Exception as err:
            # A call that cannot be shown is not left leased to this reviewer (who would get it again at every `n`).
            self.store().release(call_id, reviewer)
            log.error("review queue: a stored call could not be shown (%s); its lease was released", type(err).__name__)
            return JSONResponse({"error": "the next call could not be shown and was released; see the server log"},
                                status_code=500)

    def view(self, request: Request) -> Response:
        try:
            return JSONResponse(self.store().view(request.path_params["call_id"], _reviewer(request).id)
                                .model_dump(mode="json"))
        except ReviewError as err:
            return _error(err)

    def open_call(self, request: Request) -> Response:
        try:
            self.store().lease(request.path_params["call_id"], _reviewer(request))
            return JSONResponse(self.store().view(request.path_params["call_id"], _reviewer(request).id)
                                .model_dump(mode="json"))
        except ReviewError as err:
            return _error(err)

    def release(self, request: Request) -> Response:
        self.store().release(request.path_params["call_id"], _reviewer(request))
        return Response(status_code=204)

    async def submit(self, request: Request) -> Response:
        body = await parse_body(request, self.review)
        if isinstance(body, JSONResponse):
            return body
        try:
            # Synchronous DB work off the event loop; the review is committed before the 201 goes out.
            record = await run_in_threadpool(self.store().submit, request.path_params["call_id"], _reviewer(request),
                                             body.revision, body.labels, self.schema, body.comment, body.scorecard,
                                             body.reasons, allowed(_holder(request).role, "lead"))
        except ReviewError as err:
            return _error(err)
        return JSONResponse(record.model_dump(mode="json"), status_code=201)

    async def record(self, request: Request) -> Response:
        body = await parse_body(request, ScorecardReview)
        if isinstance(body, JSONResponse):
            return body
        try:
            card = await run_in_threadpool(self.store().preview_record, request.path_params["call_id"], body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(card.model_dump(mode="json"))

    async def evidence(self, request: Request) -> Response:
        call_id = request.path_params["call_id"]
        try:
            view = await run_in_threadpool(self.store().view, call_id)
        except ReviewError as err:
            return _error(err)
        found = await run_in_threadpool(self.store().evidence, call_id, self.model)
        if found is not None:
            return JSONResponse(found.model_dump(mode="json"))
        if self.explain is None:
            return JSONResponse({"error": "this server computes no evidence"}, status_code=404)
        try:
            found = await self.explain(view.call, request.is_disconnected)
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; the computation was stopped
        except TimeoutError:
            return JSONResponse({"error": "evidence: the server is busy scoring calls and gave this call's evidence "
                                 "up; try again later"}, status_code=503)
        await run_in_threadpool(self.store().save_evidence, found)
        return JSONResponse(found.model_dump(mode="json"))

    def stats(self, _request: Request) -> Response:
        latest = self.store().latest_started()
        tz = self.reports().tz if self.reports is not None else UTC
        period = f"{latest.astimezone(tz):%Y-%m}" if latest is not None else None
        return JSONResponse(StoreCounts(**self.store().counts(), latest_period=period).model_dump())

    async def report(self, request: Request) -> Response:
        try:
            query = ReportQuery.parse(request.query_params)
        except QueryError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        if self.reports is None:
            return JSONResponse({"error": "reports are not configured"}, status_code=400)
        try:
            found = await run_in_threadpool(self.reports().build, query.period, query.team, query.agent)
        except UnknownTeam as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        if request.url.path.endswith("/page"):
            # The review UI's policy, with the report's one inline style element allowed by its hash.
            return Response(await run_in_threadpool(render_html, found), media_type="text/html",
                            headers={"content-security-policy": REPORT_PAGE_CSP})
        return JSONResponse(found.model_dump(mode="json"))


def review_routes(store: Callable[[], ReviewStore], schema: LabelSchema, explain: Explain | None = None,
                  model: str = "", reports: Callable[[], ReportBuilder] | None = None) -> list[Route]:
    return ReviewRoutes(store, schema, explain, model, reports).routes()
