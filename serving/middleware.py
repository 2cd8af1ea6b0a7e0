"""ASGI middleware in front of every route: request size limit, then API-key authentication by role.

Which role a path needs is :data:`ROUTE_ROLES` (first matching prefix); paths not listed (health, metrics, OpenAPI
docs, the review UI's static files) are public. With auth off (a local demo), requests are served only when the
server's own address is loopback, so a demo switch can never open an unauthenticated port to a network.
"""

from __future__ import annotations

import ipaddress
import json

from .auth import LOCAL_DEMO, KeyStore, allowed

# The scope entry where routes find who sent the request (a KeyHolder).
KEY_HOLDER = "callqa.key_holder"

# Path prefix → role needed ("any" = any valid key). Checked in order.
ROUTE_ROLES: tuple[tuple[str, str], ...] = (("/score", "scorer"), ("/api/reviews", "reviewer"), ("/api/", "any"))


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


async def _reply(send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app, database: str, auth: bool, max_body_bytes: int):
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.keys = KeyStore(database) if auth else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        role = needed_role(scope["path"])
        if role is not None:
            if not self.auth:
                host = (scope.get("server") or (None, None))[0]
                if not is_loopback(host):
                    return await _reply(send, 403, f"auth is off (local demo mode) but the server listens on {host}; "
                                                    f"turn auth on or bind 127.0.0.1")
                scope[KEY_HOLDER] = LOCAL_DEMO
            else:
                key = _api_key(headers)
                if not key:
                    return await _reply(send, 401, "missing API key: send 'Authorization: Bearer KEY' "
                                                    "(create one with `callqa keys create --role scorer`)",
                                        [(b"www-authenticate", b"Bearer")])
                holder = self.keys.lookup(key)
                if holder is None:
                    return await _reply(send, 401, "unknown or revoked API key", [(b"www-authenticate", b"Bearer")])
                if role != "any" and not allowed(holder.role, role):
                    return await _reply(send, 403, f"this key's role is {holder.role}; {scope['path']} needs {role}")
                scope[KEY_HOLDER] = holder

        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _reply(send, 400, "content-length is not a number")
            if int(length) > self.max_body_bytes:
                return await _reply(send, 413, f"request body of {int(length)} bytes is over the limit of "
                                               f"{self.max_body_bytes} (limits.max_body_bytes)")
            return await self.app(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
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
                    return await _reply(send, 413, f"request body is over the limit of {self.max_body_bytes} bytes")
            body = b"".join(chunks)
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
