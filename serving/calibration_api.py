"""校准 over HTTP (``/api/calibration``, reviewer keys and up): a lead creates and closes sessions; a member labels the
session's calls blind and, once it is closed, reads the results (serving.consensus). An outsider's or an agent's
request for a session answers 404 or 403, as for a missing one."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .appeal_api import _error
from .consensus import HeadCalibration
from .middleware import KEY_HOLDER, MAX_APPEAL_ID
from .openapi import Operation
from .review_api import _reviewer, parse_body
from .store import BlindCall, Calibrations, LabelsRequest, ReviewError, SessionRequest, SessionSummary

SESSION_ID = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "examples": ["1"],
              "description": f"a calibration session's number, 1 to {MAX_APPEAL_ID}"}
LEADS = ("lead", "admin")


class Sessions(BaseModel):
    sessions: list[SessionSummary]


class BlindCalls(BaseModel):
    calls: list[BlindCall]


class Results(BaseModel):
    heads: list[HeadCalibration]


class Saved(BaseModel):
    saved: bool


CALIBRATION_OPERATIONS = [
    Operation("GET", "/api/calibration", "Calibration sessions: mine (a lead: all), newest first", "reviewer", Sessions),
    Operation("POST", "/api/calibration", "Create a calibration session: calls and reviewers (a lead)", "reviewer",
              SessionSummary, body=SessionRequest, status=201, errors=(403, 404)),
    Operation("GET", "/api/calibration/{session_id}/calls", "The session's calls to label blind (transcript, my labels)",
              "reviewer", BlindCalls, errors=(404,), path_params={"session_id": SESSION_ID}),
    Operation("POST", "/api/calibration/{session_id}/calls/{call_id}", "My labels of one call of the session",
              "reviewer", Saved, body=LabelsRequest, errors=(404, 409), path_params={"session_id": SESSION_ID}),
    Operation("POST", "/api/calibration/{session_id}/close", "Close the session: results show to its members (a lead)",
              "reviewer", SessionSummary, errors=(403, 404), path_params={"session_id": SESSION_ID}),
    Operation("GET", "/api/calibration/{session_id}/results", "Votes, consensus, deviations and Krippendorff's α "
              "of a closed session", "reviewer", Results, errors=(404, 409), path_params={"session_id": SESSION_ID}),
]


def _lead(request: Request) -> bool:
    holder = request.scope.get(KEY_HOLDER)
    return holder is not None and holder.role in LEADS


LEADS_ONLY = JSONResponse({"error": "only a QA lead creates and closes calibration sessions"}, status_code=403)


class CalibrationRoutes:
    """The calibration routes (under /api), one method each."""

    def __init__(self, calibrations: Callable[[], Calibrations]):
        self.calibrations = calibrations

    def listing(self, request: Request) -> Response:
        found = self.calibrations().sessions(_reviewer(request).id, _lead(request))
        return JSONResponse(Sessions(sessions=found).model_dump(mode="json"))

    async def create(self, request: Request) -> Response:
        if not _lead(request):
            return LEADS_ONLY
        body = await parse_body(request, SessionRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            made = await run_in_threadpool(self.calibrations().create, _reviewer(request), body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(made.model_dump(mode="json"), status_code=201)

    async def sessions(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create(request)
        return self.listing(request)

    def calls(self, request: Request) -> Response:
        try:
            found = self.calibrations().calls(int(request.path_params["session_id"]), _reviewer(request).id, _lead(request))
        except ReviewError as err:
            return _error(err)
        return JSONResponse(BlindCalls(calls=found).model_dump(mode="json"))

    async def label(self, request: Request) -> Response:
        body = await parse_body(request, LabelsRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            await run_in_threadpool(self.calibrations().label, int(request.path_params["session_id"]),
                                    request.path_params["call_id"], _reviewer(request).id, body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(Saved(saved=True).model_dump())

    async def close(self, request: Request) -> Response:
        if not _lead(request):
            return LEADS_ONLY
        try:
            done = await run_in_threadpool(self.calibrations().close, int(request.path_params["session_id"]), _reviewer(request))
        except ReviewError as err:
            return _error(err)
        return JSONResponse(done.model_dump(mode="json"))

    def results(self, request: Request) -> Response:
        try:
            heads = self.calibrations().closed_results(int(request.path_params["session_id"]), _reviewer(request).id,
                                                  _lead(request))
        except ReviewError as err:
            return _error(err)
        return JSONResponse(Results(heads=heads).model_dump(mode="json"))

    def routes(self) -> list[Route]:
        return [Route("/calibration", self.sessions, methods=["GET", "POST"]),
                Route("/calibration/{session_id}/calls", self.calls),
                Route("/calibration/{session_id}/calls/{call_id}", self.label, methods=["POST"]),
                Route("/calibration/{session_id}/close", self.close, methods=["POST"]),
                Route("/calibration/{session_id}/results", self.results)]


def calibration_routes(calibrations: Callable[[], Calibrations]) -> list[Route]:
    return CalibrationRoutes(calibrations).routes()
