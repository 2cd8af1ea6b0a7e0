"""ASGI middleware in front of every route: what a request may do, and what the server records about it.

- **Auth**: which role a path needs is :data:`ROUTE_ROLES` (first matching prefix); paths not listed (health, the
  OpenAPI docs, the review UI's static files) are public. With auth off (a local demo), requests are served only when
  the server's own address is loopback, so a demo switch can never open an unauthenticated port to a network.
- **Limits**: a body over ``max_body_bytes`` is a 413; a body to the API that is not JSON is a 415.
- **One log line per request**: method, the route *template* (``/api/reviews/calls/{call_id}``, never the path a
  client sent: ids can hold phone numbers, and a path can hold CR/LF to forge lines), status, sizes, time, and for a
  refused request the names of the offending fields — never a value.
- **Metrics**: ``/metrics`` is served here, after auth (role ``metrics`` or ``admin``), with request counts and
  latencies labelled by route template, so their number is bounded by the routes the service has. BentoML's own
  HTTP metrics label by raw path (unbounded series) and are turned off in the service definition.
- **Headers**: every response says nosniff / no-referrer / no framing; the review UI gets a strict
  Content-Security-Policy (its own scripts and styles only).
- **One error shape**: a 400 from BentoML's request validation is rewritten to the shape every other 4xx has,
  ``{"error": "field: message", "errors": [{"field", "message"}]}``.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import os
import re
import signal
import time

import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.routing import compile_path

from callqa.calls import MAX_ID, Identifier

from .store import LOCAL_DEMO, KeyStore, allowed

# The scope entry where routes find who sent the request (a KeyHolder).
KEY_HOLDER = "callqa.key_holder"

# Path prefix → role needed ("any" = any valid key). Checked in order.
ROUTE_ROLES: tuple[tuple[str, str], ...] = (
    ("/score", "scorer"), ("/api/reviews", "reviewer"), ("/api/appeals/mine", "agent"), ("/api/appeals", "lead"),
    ("/api/feedback", "scorer"), ("/api/calibration", "reviewer"), ("/api/", "any"), ("/metrics", "metrics"))

# Routes every callqa server has besides its API methods and mounted apps: BentoML's probes and docs.
FIXED_ROUTES = ("/", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json")
# Not counted in the request metrics: a scraper's and an orchestrator's own polling.
PROBES = ("/metrics", "/healthz", "/livez", "/readyz")
# Prefixes whose paths are files, logged as the prefix plus "*".
FILE_PREFIXES = ("/review/", "/static_content/")
UNMATCHED = "(no route)"

REVIEW_UI_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                  (b"x-frame-options", b"DENY")]
API_PREFIXES = ("/score", "/api/")
BODY_METHODS = ("POST", "PUT", "PATCH")
ERROR_BODY_LIMIT = 64_000  # 4xx bodies read for the log line and the error shape; larger ones pass through as is

CALL_ID = TypeAdapter(Identifier)  # the call format's own id rule, for ids in paths
MAX_APPEAL_ID = 2**62  # the largest appeal (or coaching note) number a path may name (the OpenAPI document says so)
NUMBERED = {"appeal_id": "appeal", "note_id": "coaching note", "session_id": "calibration session"}

log = logging.getLogger("bentoml.callqa.http")


class RouteTable:
    """Path → route template. Templates like ``/api/reviews/calls/{call_id}`` are matched with Starlette's own
    path compiler, so they are written once, where the routes are defined."""

    def __init__(self, templates: list[str] | tuple[str, ...] = ()):
        self.exact = {t for t in (*FIXED_ROUTES, *templates) if "{" not in t}
        self.patterns = [(compile_path(t)[0], t) for t in templates if "{" in t]

    def parameters(self, path: str) -> dict[str, str]:
        """The path parameters of the template ``path`` matches ({} for none)."""
        for regex, _ in self.patterns:
            found = regex.match(path)
            if found:
                return found.groupdict()
        return {}

    def template(self, path: str) -> str:
        if path in self.exact:
            return path
        for regex, template in self.patterns:
            if regex.match(path):
                return template
        for prefix in FILE_PREFIXES:
            if path == prefix.rstrip("/") or path.startswith(prefix):
                return prefix + "*"
        return UNMATCHED


def bad_path_parameter(parameters: dict[str, str]) -> str | None:
    """Why a path parameter cannot name anything (the OpenAPI document's path schemas), or None: ids as the call
    format's (1–200 characters, none of them '/', control or format characters), appeal numbers 1..2^62."""
    for name, value in parameters.items():
        if name in NUMBERED:  # an appeal's or a coaching note's number
            if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_APPEAL_ID):
                return f"no {NUMBERED[name]} {value[:20]!r}"
        else:
            try:
                CALL_ID.validate_python(value)
            except ValidationError:
                return f"{name}: no such id (1–{MAX_ID} characters, no '/', control or format characters)"
    return None


def needed_role(path: str) -> str | None:
    for prefix, role in ROUTE_ROLES:
        if path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/"):
            return role
    return None


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # None, a hostname, or garbage: not provably loopback
        return False


def _json_reply(status: int, payload: dict, headers: list[tuple[bytes, bytes]] | None = None):
    body = json.dumps(payload, ensure_ascii=False).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *(headers or [])]},
            {"type": "http.response.body", "body": body})


# A list index, or a name (with indices, as in calls[0]); never a long number: that could be a phone number.
SAFE_SEGMENT = re.compile(r"(?!.*\d{6})(\d{1,5}|[A-Za-z_][A-Za-z0-9_\-]{0,39}(\[\d{1,5}\])*)")


def loggable_field(field: str) -> str:
    """A field path fit for the log: its segments as the schema names them; a segment a client chose (a label key,
    a dict key in meta) becomes "*", since it may hold anything, a phone number or a CR/LF included."""
    return ".".join(seg if SAFE_SEGMENT.fullmatch(seg) else "*" for seg in field.split("."))[:200]


def error_fields(body: bytes) -> tuple[list[str], dict | None]:
    """The field paths a 4xx body names, and the body in callqa's error shape where BentoML wrote its own.

    Our errors read ``{"error": "calls.0.turns: message"}``; BentoML's validation errors read
    ``{"error": "1 validation error for Input", "detail": [{"loc": [...], "msg": ...}]}``."""
    try:
        payload = json.loads(body)
    except ValueError:
        return [], None
    if isinstance(payload, dict) and isinstance(payload.get("detail"), list):
        errors = [{"field": ".".join(str(p) for p in d.get("loc", [])) or "body", "message": str(d.get("msg", ""))}
                  for d in payload["detail"] if isinstance(d, dict)]
        if errors:
            first = errors[0]
            return [e["field"] for e in errors], {"error": f"{first['field']}: {first['message']}", "errors": errors}
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        head, sep, _ = payload["error"].partition(": ")
        if sep:
            return [head], None
    return [], None


_STATUS_LINES = {404: "no such route", 405: "method not allowed on this route"}


class GuardMiddleware:
    def __init__(self, app, database: str, auth: bool, max_body_bytes: int, routes: RouteTable | None = None,
                 metrics_text=None, recycle_after: int | None = None):
        self.app = app
        self.recycle_after = recycle_after
        self.served = 0
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.keys = KeyStore(database) if auth else None
        self.routes = routes or RouteTable()
        self.metrics_text = metrics_text  # () -> (bytes, content type): the Prometheus exposition
        self._metrics = None

    # --- metrics, made on first use (in the worker that serves requests) -----------------------------------------
    def _instruments(self):
        if self._metrics is None:
            import bentoml

            self._metrics = (
                bentoml.metrics.Counter(name="callqa_http_requests", documentation="HTTP requests by route template",
                                        labelnames=["route", "method", "status"]),
                bentoml.metrics.Histogram(name="callqa_http_request_duration_seconds",
                                          documentation="HTTP request latency by route template",
                                          labelnames=["route", "method"],
                                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)),
            )
        return self._metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route = self.routes.template(path)
        extra = COMMON_HEADERS + ([(b"content-security-policy", REVIEW_UI_CSP.encode())]
                                  if path == "/review" or path.startswith("/review/") else [])
        seen = {"status": 0, "in": 0, "out": 0, "fields": [], "buffer": None}

        async def reply(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            start, body = _json_reply(status, {"error": message}, headers)
            await observed_send(start)
            await observed_send(body)

        async def observed_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = [*message.get("headers", []), *extra]
                api = path.startswith(API_PREFIXES)
                if 400 <= message["status"] < 500 and (message["status"] != 404 or api):
                    # Hold a 4xx back until its body is read: its fields go to the log, and BentoML's error
                    # shape is rewritten to ours (which changes its length).
                    seen["buffer"] = ({**message, "headers": headers}, [])
                    return
                return await send({**message, "headers": headers})
            if message["type"] == "http.response.body" and seen["buffer"] is not None:
                start, chunks = seen["buffer"]
                chunks.append(message.get("body", b""))
                if message.get("more_body") and sum(map(len, chunks)) < ERROR_BODY_LIMIT:
                    return
                body = b"".join(chunks)
                fields, rewritten = error_fields(body)
                json_answer = any(k.lower() == b"content-type" and v.startswith(b"application/json")
                                  for k, v in start["headers"])
                if rewritten is None and path.startswith(API_PREFIXES) and not json_answer:
                    # Starlette's own text answers (an unmatched path, a method not allowed) as the JSON the spec
                    # declares for every error.
                    rewritten = {"error": _STATUS_LINES.get(start["status"], "refused")}
                    start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-type"]
                    start["headers"].append((b"content-type", b"application/json"))
                seen["fields"] = [loggable_field(f) for f in fields]
                if rewritten is not None:
                    body = json.dumps(rewritten, ensure_ascii=False).encode()
                    start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    start["headers"].append((b"content-length", str(len(body)).encode()))
                seen["buffer"] = None
                seen["out"] += len(body)
                await send(start)
                return await send({"type": "http.response.body", "body": body,
                                   "more_body": bool(message.get("more_body"))})
            if message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            return await send(message)

        try:
            await self._guarded(scope, receive, observed_send, reply, seen)
        finally:
            elapsed = time.perf_counter() - started
            status = seen["status"] or 500
            refused = f"; fields: {', '.join(seen['fields'][:5])}" if seen["fields"] else ""
            log.info("%s %s %d in %.0f ms, %d B in, %d B out%s", method, route, status, 1000 * elapsed, seen["in"],
                     seen["out"], refused)
            if route not in PROBES:
                requests, latency = self._instruments()
                requests.labels(route=route, method=method, status=str(status)).inc()
                latency.labels(route=route, method=method).observe(elapsed)
            self.served += 1
            if self.served == self.recycle_after:
                self._recycle()

    def _refusal(self, scope, headers: dict, path: str) -> tuple | None:
        """(status, message[, headers]) for a request refused before it reaches a route — an id no route can name,
        no key, a key of the wrong role, a body that is not JSON — or None; sets the request's key holder."""
        bad = bad_path_parameter(self.routes.parameters(path))
        if bad is not None:
            return 404, bad
        role = needed_role(path)
        if role is not None:
            refused = self._authenticate(scope, headers, role)
            if refused is not None:
                return refused
        if scope["method"] in BODY_METHODS and path.startswith(API_PREFIXES):
            content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
            if content_type != b"application/json":
                return 415, "content-type: send the body as application/json"
        return None

    def _authenticate(self, scope, headers: dict, role: str) -> tuple | None:
        if not self.auth:
            host = (scope.get("server") or (None, None))[0]
            if not is_loopback(host):
                return 403, f"auth is off (local demo mode) but the server listens on {host}; turn auth on or bind " \
                            f"127.0.0.1"
            scope[KEY_HOLDER] = LOCAL_DEMO
            return None
        key = _api_key(headers)
        if not key:
            return 401, "missing API key: send 'Authorization: Bearer KEY' (create one with `callqa keys create " \
                        "--role scorer`)", [(b"www-authenticate", b"Bearer")]
        holder = self.keys.lookup(key)
        if holder is None:
            return 401, "unknown or revoked API key", [(b"www-authenticate", b"Bearer")]
        if role != "any" and not allowed(holder.role, role):
            return 403, f"this key's role is {holder.role}; this route needs {role}"
        scope[KEY_HOLDER] = holder
        return None

    def _recycle(self) -> None:
        """Stop this worker: the process manager starts a fresh one on the same listening socket. BentoML 1.4 keeps
        ~5 KB per request that nothing frees (docs/serving.md), and offers no max-requests setting of its own.

        First this worker stops accepting (the socket stays open for the others), then, once connections it already
        accepted have had time to send their requests, it gets SIGTERM: uvicorn finishes requests in flight but
        drops a connection whose request it has not read yet, which a client sees as a broken pipe."""
        log.info("served %d requests: restarting this worker to return its memory", self.served)
        # uvicorn's listeners (asyncio's or uvloop's servers, which share no base class): stop accepting;
        # connections already open are untouched.
        for server in (o for o in gc.get_objects() if isinstance(o, uvicorn.Server)):
            for listener in server.servers:
                listener.close()
        asyncio.get_running_loop().call_later(1.0, os.kill, os.getpid(), signal.SIGTERM)

    async def _guarded(self, scope, receive, send, reply, seen):
        headers = dict(scope.get("headers") or [])
        path = scope["path"]
        refused = self._refusal(scope, headers, path)
        if refused is not None:
            return await reply(*refused)
        if path == "/metrics" and self.metrics_text is not None:
            if scope["method"] not in ("GET", "HEAD"):
                return await reply(405, "method: /metrics answers GET", [(b"allow", b"GET, HEAD")])
            body, content_type = self.metrics_text()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode()),
                                    (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})

        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await reply(400, "content-length: not a number")
            seen["in"] = int(length)
            if int(length) > self.max_body_bytes:
                return await reply(413, f"body: {int(length)} bytes, over the limit of {self.max_body_bytes} "
                                        f"(limits.max_body_bytes)")
            return await self.app(scope, receive, send)
        if scope["method"] in BODY_METHODS:
            # No length given (chunked): read up to the limit here, then hand the body on.
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_body_bytes:
                    return await reply(413, f"body: over the limit of {self.max_body_bytes} bytes")
            body = b"".join(chunks)
            seen["in"] = size
            sent = False

            async def replay():
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            return await self.app(scope, replay, send)
        return await self.app(scope, receive, send)


def _api_key(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization", b"").decode("latin-1")
    if value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return headers.get(b"x-api-key", b"").decode("latin-1").strip() or None


class QuietValidationErrors(logging.Filter):
    """BentoML logs every refused request as an error with the traceback of pydantic's ValidationError, whose text
    quotes the input (``input_value='我的手机13700003333'``) and whose first line holds the raw path. The guard's one
    line per request already says which fields were refused, so those records are dropped; other errors keep their
    traceback, with the path replaced by its route template."""

    def __init__(self, routes: RouteTable):
        super().__init__()
        self.routes = routes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ValidationError):
            return False
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str) \
                and record.args[0].startswith("/"):
            record.args = (self.routes.template(record.args[0]), *record.args[1:])
        return True
