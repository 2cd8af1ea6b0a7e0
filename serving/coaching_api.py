"""辅导与表扬 over HTTP: a reviewer sends a reviewed call to its agent (``POST /api/reviews/calls/{call_id}/coaching``);
an agent key lists its own notes (``GET /api/appeals/mine/coaching``) and marks one read (``POST …/{note_id}``)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .appeal_api import NOT_AN_AGENT, _agent_id, _error
from .middleware import MAX_APPEAL_ID
from .openapi import Operation
from .review_api import _reviewer, parse_body
from .store import Coaching, CoachingNote, CoachingNotes, CoachingRequest, ReviewError

NOTE_ID = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "examples": ["1"],
           "description": f"a coaching note's number, 1 to {MAX_APPEAL_ID}"}

COACHING_OPERATIONS = [
    Operation("POST", "/api/reviews/calls/{call_id}/coaching", "Send a reviewed call to its agent with a comment "
              "(辅导, or 表扬 with praise: true)", "reviewer", CoachingNote, body=CoachingRequest, status=201,
              errors=(404, 409)),
    Operation("GET", "/api/appeals/mine/coaching", "My coaching notes (an agent key's agent), unread first", "agent",
              CoachingNotes, errors=(403,)),
    Operation("POST", "/api/appeals/mine/coaching/{note_id}", "Mark one of my coaching notes read (已阅)", "agent",
              CoachingNote, errors=(403, 404), path_params={"note_id": NOTE_ID}),
]


def coaching_routes(coaching: Callable[[], Coaching]) -> list[Route]:
    async def send(request: Request) -> Response:
        body = await parse_body(request, CoachingRequest)
        if isinstance(body, JSONResponse):
            return body
        try:
            note = await run_in_threadpool(coaching().send, request.path_params["call_id"], _reviewer(request), body)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(note.model_dump(mode="json"), status_code=201)

    def mine(request: Request) -> Response:
        agent = _agent_id(request)
        if agent is None:
            return JSONResponse({"error": NOT_AN_AGENT}, status_code=403)
        return JSONResponse(CoachingNotes(notes=coaching().mine(agent)).model_dump(mode="json"))

    async def read(request: Request) -> Response:
        agent = _agent_id(request)
        if agent is None:
            return JSONResponse({"error": NOT_AN_AGENT}, status_code=403)
        try:
            note = await run_in_threadpool(coaching().acknowledge, int(request.path_params["note_id"]), agent)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(note.model_dump(mode="json"))

    return [Route("/reviews/calls/{call_id}/coaching", send, methods=["POST"]),
            Route("/appeals/mine/coaching", mine), Route("/appeals/mine/coaching/{note_id}", read, methods=["POST"])]
