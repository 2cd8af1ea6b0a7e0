"""``POST /api/feedback``: a survey system (or the CRM) posts customers' answers about calls as they come in — the
same answers `callqa feedback import` reads from a file, on the 1–5 scale; comments are redacted before they are
stored. A scorer key posts them (the systems that send calls send their surveys)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .openapi import Operation
from .review_api import parse_body
from .store import FeedbackBatch, Feedbacks


class FeedbackAdded(BaseModel):
    added: int


FEEDBACK_OPERATIONS = [
    Operation("POST", "/api/feedback", "Store customers' survey answers about calls (客户满意度: 回访, 短信, IVR, 在线)",
              "scorer", FeedbackAdded, body=FeedbackBatch, status=201),
]


def feedback_routes(feedbacks: Callable[[], Feedbacks]) -> list[Route]:
    async def add(request: Request) -> Response:
        body = await parse_body(request, FeedbackBatch)
        if isinstance(body, JSONResponse):
            return body
        added = await run_in_threadpool(feedbacks().add, body.feedback, "api")
        return JSONResponse(FeedbackAdded(added=added).model_dump(), status_code=201)

    return [Route("/feedback", add, methods=["POST"])]
