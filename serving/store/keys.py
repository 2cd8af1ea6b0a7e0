"""API keys: created once and shown once, stored only as a SHA-256 hash, each with one role.

Roles: ``scorer`` (POST /score), ``reviewer`` (the review UI and its API), ``lead`` (a QA lead: what a reviewer
may, and rules on appeals), ``agent`` (an agent's key, bound to one agent id: their own calls' scorecards and their
appeals, nothing else), ``metrics`` (GET /metrics, for a Prometheus scraper), ``admin`` (everything). Keys are 32 random bytes, so a plain SHA-256 is enough (no password
stretching needed for high-entropy secrets). A key's id is random too, independent of the secret: reviewers see each
other's ids (leases, history), so an id must reveal nothing of a key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Boolean, DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, make_engine

Role = Literal["scorer", "reviewer", "lead", "agent", "metrics", "admin"]
ROLES: tuple[Role, ...] = ("scorer", "reviewer", "lead", "agent", "metrics", "admin")
# A role that may also use another role's routes: a QA lead reviews too.
INCLUDES = {"lead": {"reviewer"}}
PREFIX = "cqa_"
ID_PREFIX = "key-"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # random, safe to show
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_id: Mapped[str | None] = mapped_column(String(200))  # an agent key's agent


@dataclass(frozen=True)
class KeyHolder:
    """The identity behind a request's key: reviews are recorded under ``id`` (safe to show, never the key)."""

    id: str
    role: str
    name: str = ""
    agent_id: str | None = None  # set for agent keys only


# Who a request is from when auth is off (a local demo on loopback).
LOCAL_DEMO = KeyHolder("local", "admin", "local demo")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_id() -> str:
    return ID_PREFIX + secrets.token_hex(6)


class KeyStore:
    def __init__(self, url: str, cache_seconds: float = 30.0):
        self.engine = make_engine(url)  # refuses a database behind or ahead of this callqa (SchemaVersionError)
        self.cache_seconds = cache_seconds  # a revoked key stops working within this many seconds
        self._cache: dict[str, tuple[float, KeyHolder | None]] = {}

    def create(self, role: Role, name: str = "", agent_id: str | None = None) -> tuple[str, ApiKey]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if (role == "agent") != (agent_id is not None):
            raise ValueError("an agent key needs --agent (the agent id it belongs to); only agent keys take one")
        if agent_id is not None and not 0 < len(agent_id) <= 200:
            raise ValueError("--agent: 1 to 200 characters")
        key = PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(id=new_key_id(), sha256=_hash(key), role=role, name=name, created=datetime.now(UTC),
                     agent_id=agent_id)
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return key, row

    def list(self) -> list[ApiKey]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created)))

    def revoke(self, key_id: str) -> bool:
        with Session(self.engine) as session, session.begin():
            row = session.get(ApiKey, key_id)
            if row is None:
                return False
            row.revoked = True
        self._cache.clear()
        return True

    def lookup(self, key: str) -> KeyHolder | None:
        """Who holds the key (its id, role, name), or None for an unknown or revoked key."""
        digest = _hash(key)
        hit = self._cache.get(digest)
        if hit and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        with Session(self.engine) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.sha256 == digest))
        holder = KeyHolder(row.id, row.role, row.name, row.agent_id) if row is not None and not row.revoked else None
        self._cache[digest] = (time.monotonic(), holder)
        return holder


def allowed(role: str | None, needed: Role) -> bool:
    return role == "admin" or role == needed or needed in INCLUDES.get(role or "", ())
