"""Customer feedback in and out of the store: survey answers about calls (from `callqa feedback import` or
``POST /api/feedback``), their comments redacted like transcripts, and per period the answers joined with what the
model predicted for the same calls (the report's 客户满意度 section)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from callqa.calls import Call, Identifier
from callqa.redact import redact

from .calls import CallRow, PredictionRow, schemas_by_model
from .db import utcnow
from .feedback import FeedbackRow

Channel = Literal["回访", "短信", "IVR", "在线"]


class FeedbackIn(BaseModel):
    """One customer's answer about one call, on the 1–5 satisfaction scale (a survey's own scale is mapped to it on
    import: serving.feedback_import)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    call_id: Identifier
    answered: datetime | None = Field(default=None, description="when the customer answered (ISO 8601)")
    channel: Channel = Field(description="回访 (a call back), 短信 (SMS), IVR (after the call), 在线 (a web form)")
    rating: Annotated[str, Field(max_length=50)] = Field(description="the rating as the survey wrote it")
    satisfaction: Annotated[float, Field(ge=1, le=5, allow_inf_nan=False)] = Field(
        description="1 very dissatisfied … 5 very satisfied")
    comment: Annotated[str, Field(max_length=2000)] = Field(default="", description="the customer's words; phone, ID "
                                                               "and card numbers are redacted before they are stored")


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback: list[FeedbackIn] = Field(min_length=1, max_length=1000)


class Answered(BaseModel):
    """A period's answer joined with its call and the model's prediction for it."""

    call_id: str
    agent_id: str | None
    satisfaction: float
    channel: str
    scores: dict = Field(description="the call's latest prediction (CallScores as stored)")


def survey_level(head, satisfaction: float) -> str:
    """The class of ``head`` a 1–5 satisfaction falls on: the scale stretched over the head's levels, rounded."""
    return head.class_ids[int(round((satisfaction - 1) / 4 * (head.size - 1)))]


class Feedbacks:
    """The store's feedback API: the one way feedback rows are written and read."""

    def __init__(self, engine):
        self.engine = engine

    def add(self, answers: list[FeedbackIn], source: Literal["import", "api"]) -> int:
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            session.add_all(FeedbackRow(call_id=a.call_id, answered=a.answered.astimezone(UTC) if a.answered and
                                        a.answered.tzinfo else a.answered, channel=a.channel, rating=a.rating,
                                        satisfaction=a.satisfaction, comment=redact(a.comment), source=source,
                                        added=now) for a in answers)
        return len(answers)

    def weak_labels(self, since: datetime | None = None) -> Iterator[Call]:
        """Every stored call with a survey answer (the latest, where several), labelled on its model's ``role:
        satisfaction`` head at the level the customer's 1–5 rating falls on (``meta.source = survey``): weak labels
        for training, which `callqa train` can weigh down (loss.source_weights). Calls whose model's schema has no
        such head are left out."""
        latest = select(func.max(FeedbackRow.id)).group_by(FeedbackRow.call_id)
        query = (select(CallRow.call, CallRow.model, FeedbackRow.satisfaction, FeedbackRow.channel, FeedbackRow.rating)
                 .join(CallRow, CallRow.call_id == FeedbackRow.call_id).where(FeedbackRow.id.in_(latest))
                 .order_by(FeedbackRow.call_id))
        if since is not None:
            query = query.where(FeedbackRow.added >= since)
        with Session(self.engine) as session:
            schemas = schemas_by_model(session)
            for call, model, satisfaction, channel, rating in session.execute(query).all():
                head = schemas[model].with_role("satisfaction") if model in schemas else None
                if head is None:
                    continue
                found = Call.model_validate(call)
                yield found.model_copy(update={"labels": {head.name: head.typed(survey_level(head, satisfaction))},
                                               "meta": {**found.meta, "source": "survey",
                                                        "survey": {"channel": channel, "rating": rating}}})

    def answered(self, start: datetime, end: datetime, agents: list[str] | None) -> list[Answered]:
        """Answers about the calls started in ``[start, end)`` (of ``agents``), with each call's latest prediction."""
        where = [CallRow.started_at >= start, CallRow.started_at < end]
        if agents is not None:
            where.append(CallRow.agent_id.in_(agents))
        query = (select(FeedbackRow.call_id, CallRow.agent_id, FeedbackRow.satisfaction, FeedbackRow.channel,
                        PredictionRow.scores)
                 .join(CallRow, CallRow.call_id == FeedbackRow.call_id)
                 .outerjoin(PredictionRow, PredictionRow.id == CallRow.prediction_id)
                 .where(and_(*where)).order_by(FeedbackRow.id))
        with Session(self.engine) as session:
            return [Answered(call_id=c, agent_id=a, satisfaction=s, channel=ch, scores=sc or {})
                    for c, a, s, ch, sc in session.execute(query)]
