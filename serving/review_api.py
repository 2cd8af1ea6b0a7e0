"""The review API under /api/reviews (reviewer or admin keys; the middleware checks them):

    GET  /queue?limit=N                 the next calls in queue order, and how many wait in all
    POST /next                          lease the first queued call to me and return it (204: queue empty)
    GET  /calls/{call_id}               a call: transcript, latest prediction, current labels, revision, history
    POST /calls/{call_id}/open          the same, leasing the call to me (423 while another reviewer holds it)
    POST /calls/{call_id}/release       give my lease back
    POST /calls/{call_id}/reviews       save a review {revision, labels, comment} → 201; 409 when the call was
                                        reviewed since that revision, 423 when leased to someone else
    GET  /stats                         calls stored, reviewed, reviews saved
    GET  /me                            who the key belongs to (id, name, role)

Reviews are recorded under the API key's id (shown in `callqa keys list`), never the key.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callqa.schema import LabelSchema

from .auth import LOCAL_DEMO, KeyHolder
from .middleware import KEY_HOLDER
from .reviews import Reviewer, ReviewError, ReviewStore


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: int = Field(ge=0, description="the call's revision when the reviewer loaded it")
    labels: dict[str, StrictStr | list[StrictStr]] = Field(description="head → class id (topics: list of ids)")
    comment: str = Field(default="", max_length=4000)


def _holder(request: Request) -> KeyHolder:
    return request.scope.get(KEY_HOLDER, LOCAL_DEMO)


def _reviewer(request: Request) -> Reviewer:
    holder = _holder(request)
    return Reviewer(holder.id, holder.name)


def _error(err: ReviewError) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=err.status)


def review_routes(store: Callable[[], ReviewStore], schema: LabelSchema) -> list[Route]:
    """Routes over the store ``store()`` returns (made on first use, in the worker that serves them)."""

    def queue(request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", 50)), 1), 500)
        except ValueError:
            return JSONResponse({"error": "limit: not a whole number"}, status_code=400)
        items, total = store().queue(_reviewer(request).id, limit)
        return JSONResponse({"policy": store().policy.model_dump(), "waiting": total,
                             "items": [i.model_dump(mode="json") for i in items]})

    def next_call(request: Request) -> Response:
        call_id = store().next_call(_reviewer(request))
        if call_id is None:
            return Response(status_code=204)
        return JSONResponse(store().view(call_id).model_dump(mode="json"))

    def view(request: Request) -> Response:
        try:
            return JSONResponse(store().view(request.path_params["call_id"]).model_dump(mode="json"))
        except ReviewError as err:
            return _error(err)

    def open_call(request: Request) -> Response:
        try:
            store().lease(request.path_params["call_id"], _reviewer(request))
            return JSONResponse(store().view(request.path_params["call_id"]).model_dump(mode="json"))
        except ReviewError as err:
            return _error(err)

    def release(request: Request) -> Response:
        store().release(request.path_params["call_id"], _reviewer(request))
        return Response(status_code=204)

    async def submit(request: Request) -> Response:
        try:
            body = ReviewRequest.model_validate_json(await request.body())
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=400)
        call_id = request.path_params["call_id"]
        try:
            # Synchronous DB work off the event loop; the review is committed before the 201 goes out.
            record = await run_in_threadpool(store().submit, call_id, _reviewer(request), body.revision, body.labels,
                                             schema, body.comment)
        except ReviewError as err:
            return _error(err)
        return JSONResponse(record.model_dump(mode="json"), status_code=201)

    def stats(_request: Request) -> Response:
        return JSONResponse(store().counts())

    def me(request: Request) -> Response:
        holder = _holder(request)
        return JSONResponse({"id": holder.id, "name": holder.name, "role": holder.role})

    return [
        Route("/queue", queue), Route("/next", next_call, methods=["POST"]), Route("/stats", stats), Route("/me", me),
        Route("/calls/{call_id}", view), Route("/calls/{call_id}/open", open_call, methods=["POST"]),
        Route("/calls/{call_id}/release", release, methods=["POST"]),
        Route("/calls/{call_id}/reviews", submit, methods=["POST"]),
    ]
