"""The appeals API: ``/api/appeals/mine/…`` for agent keys (their own calls only), ``/api/appeals/…`` for leads.

The middleware checks the role by path prefix; these handlers add the one check a role cannot express: an agent key
reads and appeals only calls whose ``agent_id`` is its own (another agent's call answers 404, as a missing one).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .middleware import KEY_HOLDER, MAX_APPEAL_ID
from .openapi import Operation
from .params import Flag, QueryError, StrictQuery, query_schema
from .review_api import _reviewer, parse_body
from .store import AgentCall, AgentCallView, AppealRecord, AppealRequest, Appeals, ReviewError, RulingRequest


class AgentCalls(BaseModel):
    calls: list[AgentCall]


class AppealList(BaseModel):
    appeals: list[AppealRecord]


class AppealListQuery(StrictQuery):
    open: Flag = Field(default="true", description="false: every appeal, ruled ones too")


APPEAL_OPERATIONS = [
    Operation("GET", "/api/appeals/mine/calls", "My calls (an agent key's agent) with their scorecards, newest first",
              "agent", AgentCalls, errors=(403,)),
    Operation("GET", "/api/appeals/mine/calls/{call_id}", "One of my calls: transcript, scorecard, appeals", "agent",
              AgentCallView, errors=(403, 404)),
    Operation("POST", "/api/appeals/mine/calls/{call_id}", "Appeal deductions (or whole items) of my call's scorecard",
              "agent", AppealRecord, body=AppealRequest, status=201, errors=(403, 404, 409)),
    Operation("GET", "/api/appeals", "Appeals, oldest first (open ones unless open=false)", "lead", AppealList,
              query=query_schema(AppealListQuery)),
    # 400: an entry this appeal does not have (another appeal's, say) is refused, naming it.
    Operation("POST", "/api/appeals/{appeal_id}/rulings", "Uphold or overturn appealed entries (overturned: a correction)",
              "lead", AppealRecord, body=RulingRequest, errors=(400, 404, 409, 423),
              path_params={"appeal_id": {"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "examples": ["1"],
                                         "description": f"an appeal's number, 1 to {MAX_APPEAL_ID}"}}),
]


def _error(err: ReviewError) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=err.status)


def _agent_id(request: Request) -> str | None:
    holder = request.scope.get(KEY_HOLDER)
    return holder.agent_id if holder is not None else None


NOT_AN_AGENT = "this key is not bound to an agent (callqa keys create --role agent --agent ID)"


class AppealRoutes:
    """The appeal routes (paths under /api, mounted next to /model and /reviews), one method each."""

    def __init__(self, appeals: Callable[[], Appeals]):
        self.appeals = appeals

    def routes(self) -> list[Route]:
        return [Route("/appeals/mine/calls", self.my_calls),
                Route("/appeals/mine/calls/{call_id}", self.call, methods=["GET", "POST"]),
                Route("/appeals", self.listing), Route("/appeals/{appeal_id}/rulings", self.rule, methods=["POST"])]

    def my_calls(self, request: Request) -> Response:
        agent = _agent_id(request)
        if agent is None:
            return JSONResponse({"error": NOT_AN_AGENT}, status_code=403)
        return JSONResponse(AgentCalls(calls=self.appeals().my_calls(agent)).model_dump(mode="json"))

    async def call(self, request: Request) -> Response:
        # One route for both methods, so a 405 lists them both in Allow.
        agent = _agent_id(request)
        if agent is None:
            return JSONResponse({"error": NOT_AN_AGENT}, status_code=403)
        return await self.file(request, agent) if request.method == "POST" else self.my_call(request, agent)

    def my_call(self, request: Request, agent: str) -> Response:
        try:
            return JSONResponse(self.appeals().my_call(request.path_params["call_id"], agent).model_dump(mode="json"))
        except ReviewError as err:
            return _error(err)

    async def file(self, request: Request, agent: str) -> Response:
        body = await parse_body(request, AppealRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            found = await run_in_threadpool(self.appeals().file, request.path_params["call_id"], _reviewer(request),
                                            agent, body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(found.model_dump(mode="json"), status_code=201)

    def listing(self, request: Request) -> Response:
        try:
            query = AppealListQuery.parse(request.query_params)
        except QueryError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(AppealList(appeals=self.appeals().list(open_only=query.open == "true")).model_dump(mode="json"))

    async def rule(self, request: Request) -> Response:
        appeal_id = int(request.path_params["appeal_id"])  # GuardMiddleware checked it: 1..MAX_APPEAL_ID
        body = await parse_body(request, RulingRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            found = await run_in_threadpool(self.appeals().rule, appeal_id, _reviewer(request), body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(found.model_dump(mode="json"))


def appeal_routes(appeals: Callable[[], Appeals]) -> list[Route]:
    return AppealRoutes(appeals).routes()
