"""The review store: scored calls, their predictions and reviewers' corrections, append-only (the tables are
in calls.py and reviews.py; migrations/ versions them).


Tables (SQLAlchemy; SQLite with WAL by default, PostgreSQL by URL — :func:`.db.make_engine`):

- ``review_calls``: one row per call: the transcript, and the queue's sort keys taken from its latest prediction
  (uncertainty, lowest expected score, a stable random key), its review ``revision`` and its lease.
- ``predictions``: every prediction ever stored for a call (model tag, the API's per-head scores). Never updated.
- ``reviews`` / ``corrections``: one review per submission (reviewer, time, comment, the prediction shown) and one
  correction per head it set (previous value, new value). Never updated or deleted: a call's current label for a
  head is the value of its latest correction.

Two reviewers cannot silently overwrite each other: a submission names the revision it was made on, and is stored
only by one conditional ``UPDATE … WHERE revision = :seen`` (atomic in SQLite and PostgreSQL); a stale one is a
:class:`Conflict` (HTTP 409). Opening a call leases it to the reviewer for a while, so the queue hands it to no one else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from callqa.calls import Call, Label
from callqa.evidence import CallEvidence
from callqa.pipeline import ScoredCall
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult
from callqa.scores import CallScores

from .calls import (
    CallRow,
    DeductionCountRow,
    EvidenceRow,
    ModelRow,
    PredictionRow,
    PredictionTopicRow,
    ScorecardItemRow,
    ScorecardRow,
    deduction_counts,
    latest_prediction,
    measure_columns,
    sample_key,
    schemas_by_model,
)
from .db import as_utc, make_engine, utcnow
from .double import blind, next_state, source_of_review
from .errors import Conflict, Leased, Mismatch, NotFound, ReviewError
from .history import (
    canonical,
    counted_of,
    current_labels,
    current_reasons,
    history_of,
    refresh_reviewed,
    scorecard_problems,
    scorecard_rows,
)
from .models import CallView, Change, QueuePolicy, ReviewedCall, Reviewer, ReviewRecord
from .plan import load_plan
from .queue import ReviewQueue, lease_free_for, queue_keys
from .record import ScorecardReview, card_of_record, verdicts_of_record
from .report_rows import ReportRows
from .reviews import CorrectionRow, ReasonRow, ReviewRow


class ReviewStore(ReviewQueue):
    def __init__(self, url: str, policy: QueuePolicy | None = None):
        self.engine = make_engine(url)  # refuses a database behind or ahead of this callqa (SchemaVersionError)
        self.policy = policy or QueuePolicy()
        self.plan = load_plan(self.policy.plan) if self.policy.plan else None  # a bad plan fails here, with its line

    # --- calls and predictions in -------------------------------------------------------------------------------
    def add_scored(self, calls: Iterable[Call], scores: Iterable[CallScores], model: str, schema: LabelSchema) -> int:
        """Store calls with their predictions, in one transaction. A call stored before gets a new prediction (its
        transcript is replaced by this one, its reviews kept); an identical repeat prediction is not stored twice."""
        now, count = utcnow(), 0
        with Session(self.engine) as session, session.begin():
            if session.get(ModelRow, model) is None:
                session.add(ModelRow(tag=model, schema_name=schema.name, label_schema=schema.model_dump(mode="json"),
                                     added=now))
            for call, score in zip(calls, scores, strict=True):
                entropy, margin, low = queue_keys(score, schema)
                stored = score.model_dump(mode="json", exclude={"evidence"})  # evidence has a table of its own
                row = session.get(CallRow, call.call_id)
                transcript = call.model_dump(mode="json", exclude={"labels"}, exclude_none=True)
                if row is None:
                    row = CallRow(call_id=call.call_id, added=now, sample_key=sample_key(call.call_id), revision=0)
                    session.add(row)
                else:
                    last = latest_prediction(session, call.call_id)
                    if last is not None and last.model == model and last.scores == stored \
                            and row.call == transcript:
                        continue
                # SQLite keeps no time zone: store UTC (a time without a zone is taken as UTC).
                started = call.started_at.astimezone(UTC) if call.started_at and call.started_at.tzinfo else call.started_at
                row.agent_id, row.started_at, row.turns, row.call = call.agent_id, started, len(call.turns), transcript
                row.duration = max((t.end for t in call.turns if t.end is not None), default=None)
                row.model, row.entropy, row.margin, row.low_score = model, entropy, margin, low
                for column, value in measure_columns(call, score, schema).items():
                    setattr(row, column, value)
                prediction = PredictionRow(call_id=call.call_id, model=model, scores=stored,
                                           created=now)
                session.add(prediction)
                session.flush()  # the prediction's id
                row.prediction_id = prediction.id
                session.add_all(PredictionTopicRow(prediction_id=prediction.id, head=head, topic=topic)
                                for head, topic in counted_of(score.scores, schema, call.meta))
                card = getattr(score, "scorecard", None)
                if row.revision == 0:  # a reviewed call keeps counting with its reviewed card
                    row.total, row.max_total, row.red_line = (card.total, card.max_total, card.red_line) if card else (None,) * 3
                if card is not None:
                    session.add(ScorecardRow(prediction_id=prediction.id, call_id=call.call_id, name=card.name,
                                             hash=card.hash, total=card.total, max_total=card.max_total,
                                             red_line=card.red_line))
                    session.add_all(DeductionCountRow(prediction_id=prediction.id, item=item, rule=rule, title=title,
                                                      hits=hits)
                                    for (item, rule), (title, hits) in deduction_counts(card).items())
                    session.add_all(ScorecardItemRow(prediction_id=prediction.id, item=i.id, section=s.id,
                                                     points=i.points, max_points=i.max_points,
                                                     deductions=len(i.deductions), applicable=i.applicable,
                                                     red_line=i.red_line)
                                    for s in card.sections for i in s.items)
                count += 1
        return count

    # --- reading a call -----------------------------------------------------------------------------------------
    def view(self, call_id: str, viewer: str | None = None) -> CallView:
        """A call as the review UI shows it; to ``viewer``, blind while it waits for their independent 双评."""
        with Session(self.engine) as session:
            row = session.get(CallRow, call_id)
            if row is None:
                raise NotFound(f"no call {call_id!r} in the review store")
            prediction = latest_prediction(session, call_id)
            history = history_of(session, call_id)
            scores = ScoredCall.model_validate(prediction.scores)
            verdicts = verdicts_of_record(history)
            record = None if scores.scorecard is None else card_of_record(scores.scorecard, verdicts)
            view = CallView(call=Call.model_validate(row.call), model=prediction.model, prediction_id=prediction.id,
                            scores=scores, labels=current_labels(history), revision=row.revision,
                            lease_owner=row.lease_owner, lease_until=as_utc(row.lease_until), history=history,
                            verdicts=verdicts, record=record, double=row.double_review)
        return blind(view, viewer)

    def preview_record(self, call_id: str, verdicts: ScorecardReview) -> ScorecardResult:
        """The score of record the call would have if these verdicts were saved on its latest prediction (the
        review UI shows it while the reviewer marks 误判 / 漏扣): checked exactly as a saved review is."""
        with Session(self.engine) as session:
            row = session.get(CallRow, call_id)
            if row is None:
                raise NotFound(f"no call {call_id!r} in the review store")
            shown = ScoredCall.model_validate(latest_prediction(session, call_id).scores)
            # Checked as save_review checks them: a 误判 of a 漏扣 may refer to one of the verdicts of record.
            problems = scorecard_problems(verdicts, shown, row.call["turns"],
                                           verdicts_of_record(history_of(session, call_id)))
        if problems:
            raise Mismatch("; ".join(problems))
        return card_of_record(shown.scorecard, verdicts)

    def evidence(self, call_id: str, model: str) -> CallEvidence | None:
        """The call's cached evidence under ``model``, if computed before."""
        with Session(self.engine) as session:
            row = session.get(EvidenceRow, (call_id, model))
            return CallEvidence.model_validate(row.data) if row else None

    def save_evidence(self, evidence: CallEvidence) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(EvidenceRow(call_id=evidence.call_id, model=evidence.model,
                                      data=evidence.model_dump(mode="json"), created=utcnow()))

    # --- saving a review ----------------------------------------------------------------------------------------
    def submit(self, call_id: str, reviewer: Reviewer, revision: int, labels: dict[str, Label], schema: LabelSchema,
               comment: str = "", scorecard: ScorecardReview | None = None,
               reasons: dict[str, list[int]] | None = None, lead: bool = False) -> ReviewRecord:
        """Save a review made on ``revision`` of the call: one correction per head in ``labels``, and the verdicts
        on the prediction's scorecard. Raises :class:`Conflict` when the call has a newer review, :class:`Leased`
        when another reviewer holds it, :class:`AwaitsLead` when its 双评 differ and ``lead`` is false (a lead's
        review of it is the adjudication). The review is committed (and on SQLite, synced to disk) before this returns."""
        problems = schema.check_labels(labels)
        if not labels and scorecard is None:
            problems.append(("labels", "no labels given: set at least one head, or judge the scorecard"))
        if problems:
            raise ReviewError("; ".join(f"{field}: {message}" for field, message in problems))
        with Session(self.engine) as session, session.begin():
            return self.save_review(session, call_id, reviewer, revision, labels, schema, comment, scorecard, reasons,
                                    lead=lead)

    def save_review(self, session: Session, call_id: str, reviewer: Reviewer, revision: int, labels: dict[str, Label],
                    schema: LabelSchema, comment: str = "", scorecard: ScorecardReview | None = None,
                    reasons: dict[str, list[int]] | None = None, source: str = "review",
                    lead: bool = False) -> ReviewRecord:
        """:meth:`submit`'s work inside the caller's transaction (an appeal's ruling saves its correction and the
        ruling together). The caller has checked ``labels`` against the schema."""
        now = utcnow()
        done = session.execute(
            update(CallRow).where(CallRow.call_id == call_id, CallRow.revision == revision,
                                  lease_free_for(reviewer.id, now))
            .values(revision=revision + 1, reviewed_at=now, lease_owner=None, lease_until=None)).rowcount
        if not done:
            self._why_not(session, call_id, reviewer, now, revision)
        row = session.get(CallRow, call_id)
        if source == "review":
            source = source_of_review(row.double_review, lead)  # raises before anything is written but the lock
        prediction = latest_prediction(session, call_id)
        earlier = history_of(session, call_id)
        before = current_labels(earlier)
        model_says = CallScores.model_validate(prediction.scores).predicted()
        review = ReviewRow(call_id=call_id, revision=revision + 1, reviewer=reviewer.id, reviewer_name=reviewer.name,
                           created=now, comment=comment, prediction_id=prediction.id, source=source,
                           scorecard_judged=scorecard is not None)
        session.add(review)
        session.flush()
        changes = [Change(head=head, previous=canonical(before.get(head, model_says.get(head))),
                          value=canonical(labels[head]))
                   for head in schema.head_names if head in labels]
        session.add_all(CorrectionRow(review_id=review.id, call_id=call_id, head=c.head, previous=c.previous,
                                      value=c.value) for c in changes)
        reasons = {head: sorted(set(turns)) for head, turns in (reasons or {}).items() if turns}
        if reasons:
            n_turns = len(row.call["turns"])
            bad = [f"reasons.{head}: no head {head!r} in schema {schema.name!r}" for head in reasons
                   if head not in schema.head_names]
            bad += [f"reasons.{head}: turn {t} is not one of the call's {n_turns} turns"
                    for head, turns in reasons.items() for t in turns if t >= n_turns]
            if bad:  # a turn the call does not have: a conflict with the call, like a stale revision
                raise Mismatch("; ".join(bad))  # rolls the whole review back
            session.add_all(ReasonRow(review_id=review.id, head=head, turn=t, call_id=call_id)
                            for head, turns in reasons.items() for t in turns)
        if scorecard is not None:
            shown = ScoredCall.model_validate(prediction.scores)
            problems = scorecard_problems(scorecard, shown, row.call["turns"],
                                           verdicts_of_record(earlier))
            if problems:
                raise Mismatch("; ".join(problems))  # rolls the whole review back
            session.add_all(scorecard_rows(scorecard, review.id, call_id))
        session.flush()
        history = history_of(session, call_id)
        refresh_reviewed(session, call_id, prediction, history, schema)
        row.double_review = next_state(row.double_review, history, row.entropy, self.policy.double_review, model_says,
                                       ScoredCall.model_validate(prediction.scores).scorecard, schema)
        # Built here, not read back: the session commits (and SQLite syncs) when this block exits.
        return ReviewRecord(id=review.id, revision=review.revision, reviewer=reviewer.id, reviewer_name=reviewer.name,
                            created=now, comment=comment, model=prediction.model, changes=changes,
                            scorecard=scorecard, reasons=reasons, source=source)

    def _why_not(self, session: Session, call_id: str, reviewer: Reviewer, now: datetime,
                 revision: int | None = None) -> None:
        row = session.get(CallRow, call_id)
        if row is None:
            raise NotFound(f"no call {call_id!r} in the review store")
        if revision is not None and row.revision != revision:
            last = session.scalar(select(ReviewRow).where(ReviewRow.call_id == call_id).order_by(ReviewRow.revision.desc()))
            who = f" by {last.reviewer_name or last.reviewer} at {as_utc(last.created):%H:%M:%S} UTC" if last else ""
            raise Conflict(f"call {call_id} was reviewed{who} since you opened it (revision {row.revision}, yours "
                           f"{revision}); reload it to see that review, then save again")
        raise Leased(f"call {call_id} is being reviewed by {row.lease_owner} until "
                     f"{as_utc(row.lease_until):%H:%M:%S} UTC")

    # --- reviewed calls out -------------------------------------------------------------------------------------
    def reviewed(self, since: date | datetime | None = None, started: tuple[datetime, datetime] | None = None,
                 agents: Iterable[str] | None = None) -> Iterator[ReviewedCall]:
        """Every reviewed call (last reviewed on or after ``since``; started in ``[start, end)``; of these agents)
        with its current labels, oldest review first."""
        with Session(self.engine) as session:
            query = select(CallRow).where(CallRow.revision > 0).order_by(CallRow.reviewed_at, CallRow.call_id)
            if since is not None:
                if not isinstance(since, datetime):
                    since = datetime.combine(since, datetime.min.time())
                query = query.where(CallRow.reviewed_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
            if started is not None:
                query = query.where(CallRow.started_at >= started[0], CallRow.started_at < started[1])
            if agents is not None:
                query = query.where(CallRow.agent_id.in_(list(agents)))
            # Ids first, then one call at a time: nothing holds every transcript in memory at once.
            for call_id in session.scalars(query.with_only_columns(CallRow.call_id)).all():
                row = session.get(CallRow, call_id)
                history = history_of(session, row.call_id)
                latest = history[0]
                shown = session.get(PredictionRow, session.get(ReviewRow, latest.id).prediction_id)
                scores = ScoredCall.model_validate(shown.scores)
                yield ReviewedCall(call=Call.model_validate(row.call), labels=current_labels(history), reviewer=latest.reviewer,
                                   reviewed_at=latest.created, model=shown.model, predicted=scores.predicted(),
                                   scorecard=scores.scorecard, scorecard_review=verdicts_of_record(history),
                                   reasons=current_reasons(history), source=latest.source,
                                   schema=self._schema_of(session, shown.model))
                session.expunge_all()

    def latest_started(self) -> datetime | None:
        """When the latest stored call started (UTC): where a report of "the latest month with calls" looks."""
        with Session(self.engine) as session:
            return as_utc(session.scalar(select(func.max(CallRow.started_at))))

    def models(self) -> dict[str, LabelSchema]:
        """Every bundle whose predictions the store holds and knows the schema of: tag → label schema."""
        with Session(self.engine) as session:
            return schemas_by_model(session)

    def _schema_of(self, session: Session, model: str) -> LabelSchema | None:
        row = session.get(ModelRow, model)
        return LabelSchema.model_validate(row.label_schema) if row is not None else None

    def report_rows(self, start: datetime, end: datetime, agents: list[str] | None = None) -> ReportRows:
        """The aggregates reports read for calls started in ``[start, end)`` (UTC) of ``agents`` (None: all)."""
        return ReportRows(self.engine, start, end, agents)

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return {"calls": session.scalar(select(func.count()).select_from(CallRow)) or 0,
                    "reviewed": session.scalar(select(func.count()).select_from(CallRow).where(CallRow.revision > 0)) or 0,
                    "reviews": session.scalar(select(func.count()).select_from(ReviewRow)) or 0}
