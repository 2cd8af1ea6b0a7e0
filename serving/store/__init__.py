"""The store: everything callqa keeps in its database, behind one read/write API.

What lives here: the tables, one module per aggregate — ``calls.py`` (stored calls, predictions, the bundles that
made them, scorecards in columns, topics, rule counts, evidence), ``reviews.py`` (reviews and their head
corrections, reason turns and scorecard verdicts; what reports count for a reviewed call), ``appeals.py`` (appeals,
their entries and rulings, with the operations on them), ``keys.py`` (API keys); the API every other module uses —
:class:`ReviewStore` (``review_store.py``, with the queue and leases in ``queue.py`` and a call's history in
``history.py``), :class:`Appeals`, :class:`KeyStore`, and the report aggregates of ``report_rows.py``; the **score
of record** (``record.py``: :func:`score_of_record`, the one function that applies a call's reviews and rulings to
its card); the engine and its schema check (``db.py``) and the versioned migrations (``migrations/``, Alembic, data
migrations in ``backfill.py``).

What it may import: the torch-free core (``callqa.*``) and SQLAlchemy/Alembic, nothing else of ``callqa.serving``.
No module outside this package builds SQL, opens a Session or imports a row class (tests/test_code_shape.py holds
that line).
"""

from __future__ import annotations

from .appeal_store import (
    AgentCall,
    AgentCallView,
    AppealEntry,
    AppealRecord,
    AppealRequest,
    Appeals,
    AppealTarget,
    Ruling,
    RulingInput,
    RulingRequest,
)
from .calibration_store import BlindCall, Calibrations, LabelsRequest, SessionRequest, SessionSummary
from .calls import sample_key
from .coaching_store import Coaching, CoachingNote, CoachingNotes, CoachingRequest
from .db import make_engine, open_engine
from .double import ADJUDICATION, AwaitsLead, DoubleCounts
from .errors import Conflict, Leased, Mismatch, NotFound, ReviewError
from .feedback_store import Answered, FeedbackBatch, FeedbackIn, Feedbacks
from .keys import INCLUDES, LOCAL_DEMO, PREFIX, ROLES, KeyHolder, KeyStore, Role, allowed
from .migrations import SchemaVersionError
from .models import (
    CallFilter,
    CallView,
    Change,
    DoubleState,
    QueueItem,
    QueuePolicy,
    ReviewedCall,
    Reviewer,
    ReviewRecord,
)
from .plan import KIND_NAMES, PlanError, PlannedCall, SamplingPlan, Stratum, load_plan
from .queue import queue_keys
from .record import (
    MISSED,
    CharIndex,
    HitRef,
    ItemId,
    MissedDeduction,
    ScorecardReview,
    TurnIndex,
    card_of_record,
    item_points,
    score_of_record,
    verdicts_of_record,
)
from .report_rows import CallFigures, ItemInfo, ItemSums, ReportRows, Sums, WorstCall, all_agents
from .review_store import ReviewStore

__all__ = [
    "ADJUDICATION", "AwaitsLead", "DoubleCounts", "DoubleState", "INCLUDES", "KIND_NAMES", "BlindCall", "Calibrations", "LabelsRequest", "SessionRequest", "SessionSummary", "Coaching", "CoachingNote", "CoachingNotes", "CoachingRequest", "Answered", "FeedbackBatch", "FeedbackIn", "Feedbacks", "LOCAL_DEMO", "PlanError", "PlannedCall", "SamplingPlan", "Stratum", "load_plan", "CallFigures", "ItemInfo", "ItemSums", "ReportRows", "Sums", "WorstCall", "all_agents", "MISSED", "PREFIX", "ROLES", "AgentCall", "AgentCallView", "AppealEntry",
    "AppealRecord", "AppealRequest", "AppealTarget", "Appeals", "CallFilter", "CallView", "Change", "CharIndex",
    "Conflict", "HitRef", "ItemId", "KeyHolder", "KeyStore", "Leased", "Mismatch", "MissedDeduction", "NotFound",
    "QueueItem", "QueuePolicy", "ReviewError", "ReviewRecord", "ReviewStore", "ReviewedCall", "Reviewer", "Role",
    "Ruling", "RulingInput", "RulingRequest", "SchemaVersionError", "ScorecardReview", "TurnIndex", "allowed",
    "card_of_record", "item_points", "make_engine", "open_engine", "queue_keys", "sample_key",
    "score_of_record", "verdicts_of_record",
]
