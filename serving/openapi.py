"""The served API's OpenAPI document, built from the same pydantic models the routes validate and answer with.

BentoML documents only its own API methods (/score), with a generic error shape, and not the review API or the
keys; its docs page loads Google Tag Manager, which fails offline. Here every route is an :class:`Operation` written
next to its handler, and :func:`build_spec` turns them into one OpenAPI 3.1 document, true to what the server does:
every status a route can answer, the error body every 4xx has, and the bearer-key security scheme. A client
generated from it scores a call (tested).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from callqa.calls import ID_PATTERN, MAX_ID


class FieldError(BaseModel):
    field: str = Field(description="where in the body, e.g. calls.0.turns.2.text")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: one line naming the field, and for a body that failed validation, every field."""

    error: str = Field(description="the first problem, as 'field: message'")
    errors: list[FieldError] = Field(default_factory=list, description="every field that failed validation")


STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content", 400: "Invalid body or parameter: the error names the "
               "field", 401: "No key, or an unknown or revoked key", 403: "The key's role may not use this route",
               404: "No such call", 405: "Method not allowed", 409: "Conflicts with the resource as it is now (reviewed by someone else since you loaded it, a reference to a "
               "deduction, item or turn its scorecard does not have, a ruling made already): reload", 413: "Body over the "
               "limit", 415: "Body is not application/json", 423: "Leased to another reviewer",
               500: "The server failed; see its log", 503: "Busy: the work was given up; try again later"}


@dataclass(frozen=True)
class Operation:
    """One route as a client sees it. ``role`` None means public; ``response`` None means no JSON body."""

    method: str
    path: str
    summary: str
    role: str | None
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: dict[str, dict] = field(default_factory=dict)  # name → schema ("x-required": true for a required one)
    path_params: dict[str, dict] = field(default_factory=dict)  # name → schema, where not an id (ID_SCHEMA)
    media_type: str = "application/json"
    also: tuple[int, ...] = ()  # other success statuses without a body (204 from /next)


ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": ID_PATTERN}


def _parameters(op: Operation) -> list[dict]:
    params = [{"name": name, "in": "path", "required": True, "schema": op.path_params.get(name, ID_SCHEMA)}
              for name in re.findall(r"{(\w+)}", op.path)]
    for name, schema in op.query.items():
        schema = dict(schema)
        params.append({"name": name, "in": "query", "required": bool(schema.pop("x-required", False)),
                       "schema": schema})
    return params


def build_spec(operations: list[Operation], title: str, version: str, description: str) -> dict:
    models = {ErrorBody}
    for op in operations:
        models.update(m for m in (op.body, op.response) if m is not None)
    keyed = [(m, "validation") for m in models] + [(m, "serialization") for m in models]
    refs, definitions = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    error = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}

    paths: dict[str, dict] = {}
    for op in operations:
        responses: dict[str, dict] = {}
        ok = {"description": STATUS_TEXT[op.status]}
        if op.response is not None:
            ok["content"] = {op.media_type: {"schema": refs[(op.response, "serialization")]}}
        elif op.media_type != "application/json":
            ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
        responses[str(op.status)] = ok
        for status in op.also:
            responses[str(status)] = {"description": STATUS_TEXT[status]}
        statuses = set(op.errors) | {500}
        if op.role is not None:
            statuses |= {401, 403}
        if op.body is not None:
            statuses |= {400, 413, 415}
        if op.query:
            statuses |= {400}
        for status in sorted(statuses):
            responses[str(status)] = {"description": STATUS_TEXT[status], "content": error}
        operation = {"summary": op.summary, "operationId": _operation_id(op), "responses": responses}
        if op.role is not None:
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Needs a key with role {op.role} (or admin)."
        if parameters := _parameters(op):
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key from `callqa keys create` "
                           "(an X-API-Key header with the key works too)"},
            },
        },
    }


def _operation_id(op: Operation) -> str:
    words = [w for w in re.split(r"[^a-zA-Z]+", op.path) if w and w not in ("api",)]
    return "_".join([op.method.lower(), *words]) or op.method.lower()


DOCS_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>callqa 智能质检 · 接口文档</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static_content/swagger-ui.css"></head>
<body><header class="callqa-links" style="font-family:sans-serif;padding:.6em 1.2em;background:#f2f4f7">
<strong>callqa 智能质检</strong> ·
<a href="/review/">复核工作台</a> · <a href="/review/dashboard.html">质检看板</a> ·
<a href="/review/appeals.html">申诉</a> · 以下为评分与复核接口文档（OpenAPI）</header>
<div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script><script src="/docs.js"></script></body></html>
"""
# A file, not an inline script: the page works under a script-src 'self' policy, and loads nothing from outside.
DOCS_SCRIPT = 'window.ui = SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui"});\n'
