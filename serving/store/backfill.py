"""Data migrations: what stores written before a table existed get filled in with (Alembic revisions
0003 and 0004 call these)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.orm import Session

from callqa.calls import Call
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .calls import (
    CallRow,
    DeductionCountRow,
    ModelRow,
    PredictionRow,
    PredictionTopicRow,
    ScorecardRow,
    deduction_counts,
    measure_columns,
    schemas_by_model,
)
from .history import counted_of, history_of, refresh_reviewed
from .keys import PREFIX, ApiKey, new_key_id
from .reviews import ReviewRow


def fill_report_tables(bind) -> None:
    """What reports count, for a store written before the report tables existed (schema revision 0003): each call's
    latest prediction and its card's columns, and every prediction's topics. (Reviewed calls get their score of
    record in revision 0004, with the rule counts.)"""
    with Session(bind) as session, session.begin():
        if session.scalar(select(CallRow.call_id).where(CallRow.prediction_id.is_(None)).limit(1)) is not None:
            latest = select(func.max(PredictionRow.id)).where(PredictionRow.call_id == CallRow.call_id).scalar_subquery()
            session.execute(update(CallRow).where(CallRow.prediction_id.is_(None)).values(prediction_id=latest))
        if session.scalar(select(CallRow.call_id).where(CallRow.total.is_(None), CallRow.revision == 0,
                                                        CallRow.prediction_id.in_(select(ScorecardRow.prediction_id)))
                          .limit(1)) is not None:
            card = select(ScorecardRow).where(ScorecardRow.prediction_id == CallRow.prediction_id)
            session.execute(update(CallRow).where(CallRow.total.is_(None), CallRow.revision == 0).values(
                total=card.with_only_columns(ScorecardRow.total).scalar_subquery(),
                max_total=card.with_only_columns(ScorecardRow.max_total).scalar_subquery(),
                red_line=card.with_only_columns(ScorecardRow.red_line).scalar_subquery()))
        if session.scalar(select(PredictionTopicRow.prediction_id).limit(1)) is None:
            schemas = recorded_schemas(session)
            query = (select(PredictionRow.id, PredictionRow.model, PredictionRow.scores, CallRow.call)
                     .join(CallRow, CallRow.call_id == PredictionRow.call_id))
            for pid, model, scores, call in session.execute(query.execution_options(yield_per=2000)):
                meta = call.get("meta") if isinstance(call, dict) else None
                session.add_all(PredictionTopicRow(prediction_id=pid, head=h, topic=t)
                                for h, t in counted_of(scores.get("scores", {}), schemas.get(model), meta))


def recorded_schemas(session: Session) -> dict[str, LabelSchema]:
    """:func:`schemas_by_model`, for a data migration: a store from before the models table knows none."""
    if not inspect(session.get_bind()).has_table(ModelRow.__tablename__):
        return {}
    return schemas_by_model(session)


def fill_call_measures(bind) -> None:
    """来电分析's columns for every stored call (revision 0006): its measures from the stored transcript, and whether
    its latest prediction says resolved (by the schema the store recorded for the bundle, where it did)."""
    with Session(bind) as session, session.begin():
        schemas = recorded_schemas(session)
        query = (select(CallRow.call_id, CallRow.call, PredictionRow.model, PredictionRow.scores)
                 .outerjoin(PredictionRow, PredictionRow.id == CallRow.prediction_id))
        for call_id, call, model, scores in session.execute(query.execution_options(yield_per=2000)).all():
            try:
                parsed = Call.model_validate(call)
            except ValidationError:
                continue  # a row whose transcript does not read as a call: nothing to measure, left unknown
            columns = measure_columns(parsed, scores or {}, schemas.get(model))
            session.execute(update(CallRow).where(CallRow.call_id == call_id).values(**columns))


def fill_deduction_counts(bind) -> None:
    """Rule counts for the predictions of a store from before they were kept, and every reviewed call's score of
    record by today's rules with its rule counts (revision 0004): stores from before kept totals that dropped
    confirmed red lines and 漏扣 that took nothing."""
    with Session(bind) as session, session.begin():
        for pid, scores in session.execute(select(PredictionRow.id, PredictionRow.scores)
                                           .execution_options(yield_per=2000)).all():
            card = scores.get("scorecard") if isinstance(scores, dict) else None
            if card:
                session.add_all(DeductionCountRow(prediction_id=pid, item=item, rule=rule, title=title, hits=hits)
                                for (item, rule), (title, hits)
                                in deduction_counts(ScorecardResult.model_validate(card)).items())
        schemas = recorded_schemas(session)
        for call_id in session.scalars(select(CallRow.call_id).where(CallRow.revision > 0)).all():
            history = history_of(session, call_id)
            shown = session.get(PredictionRow, session.get(ReviewRow, history[0].id).prediction_id)
            refresh_reviewed(session, call_id, shown, history, schemas.get(shown.model))


# Tables outside this module that name a key by its id (the review store's), renamed with it.
KEY_ID_COLUMNS = (("reviews", "reviewer"), ("review_calls", "lease_owner"))


def migrate_key_ids(bind) -> int:
    """Give keys made before ids were random (id = the key's first 12 characters, cqa_ + 8 of the secret) a random
    id, here and wherever reviews name them (schema revision 0003). Returns how many keys were renamed."""
    tables = set(inspect(bind).get_table_names())
    renamed = 0
    with Session(bind) as session, session.begin():
        for old in session.scalars(select(ApiKey.id).where(ApiKey.id.startswith(PREFIX))).all():
            new = new_key_id()
            session.execute(update(ApiKey).where(ApiKey.id == old).values(id=new))
            for table, column in KEY_ID_COLUMNS:
                if table in tables:
                    session.execute(text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                                    {"new": new, "old": old})
            renamed += 1
    return renamed
