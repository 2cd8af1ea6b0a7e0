"""What the store answers with and takes: the queue policy, queue and search rows, a call's view with its
history, a reviewed call for export, and who reviews."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from callqa.calls import Call, Label
from callqa.pipeline import ScoredCall
from callqa.schema import LabelSchema
from callqa.scorecard import ScorecardResult

from .record import ScorecardReview, card_of_record

QueueOrder = Literal["least_confident", "lowest_score", "random"]
# 双评 (serving/store/double.py): waiting for a second independent review, the two agreed, they differ (a lead
# adjudicates), adjudicated.
DoubleState = Literal["pending", "agreed", "differs", "adjudicated"]


class QueuePolicy(BaseModel):
    """Which calls reviewers see first (configs/serving/default.yaml, ``review:``)."""

    model_config = ConfigDict(extra="forbid")

    order: QueueOrder = Field(default="random", description="random (the default: on STC-3 it teaches the next model "
                              "fastest, docs/training.md); least_confident: the most uncertain head first; "
                              "lowest_score: the lowest expected score on any ordinal head first")
    confidence: Literal["entropy", "margin"] = Field(default="entropy", description="how least_confident measures "
                                                     "uncertainty: normalised entropy, or the top-two margin")
    sample_rate: float = Field(default=0.05, ge=0, le=1, description="抽检: this share of calls, drawn at random "
                               "(stably, by call id), goes to the front of the queue whatever the order")
    agent_daily_quota: int | None = Field(default=None, ge=1, description="at most this many reviews per agent per "
                                          "day (UTC); an agent's other calls leave the queue until tomorrow")
    lease_minutes: float = Field(default=15, gt=0, description="an opened call is leased to its reviewer this long")
    double_review: float | None = Field(default=None, ge=0, le=1, description="双评: a call whose predicted "
                                        "spread (the most uncertain head's normalised entropy) is at least this when "
                                        "its first review is saved goes to a second reviewer, blind to the first; a "
                                        "lead adjudicates when they differ. null: every call is reviewed once")
    plan: str | None = Field(default=None, description="抽样计划: a sampling plan the queue follows and the report "
                             "shows coverage of (a shipped name in configs/sampling, or a YAML path); null: none")


class QueueItem(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str = Field(default="", description="from the agent directory, where the server has one")
    started_at: datetime | None
    duration: float | None = Field(default=None, description="seconds, where the call's turns have times")
    model: str
    turns: int
    sampled: bool = Field(description="drawn for the random sample (抽检)")
    entropy: float
    margin: float
    low_score: float | None
    leased_to_me: bool
    total: float | None = Field(default=None, description="the scorecard total: the latest prediction's, or the "
                                "reviewed card's once reviewed")
    red_line: bool | None = None
    revision: int = Field(default=0, description="reviews saved (0: not reviewed)")
    double: DoubleState | None = Field(default=None, description="双评 state (null: reviewed once, as usual)")


class CallFilter(BaseModel):
    """A search over the stored calls (the queue page's filters); every field narrows, None = any."""

    model_config = ConfigDict(extra="forbid")

    agents: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=1000)
    started_from: datetime | None = None
    started_before: datetime | None = None
    topic: Annotated[str, Field(max_length=100)] | None = None
    score_min: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = None
    score_max: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = None
    red_line: bool | None = None
    reviewed: bool | None = None
    sampled: bool | None = None
    disputed: bool | None = Field(default=None, description="a customer's survey answer and the model's satisfaction "
                                  "are at least callqa.analytics.DISPUTED_GAP apart")
    double: DoubleState | None = Field(default=None, description="双评 state: pending (待双评), differs (待仲裁), "
                                       "agreed (双评一致), adjudicated (已仲裁)")
    reviewed_by: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="a reviewer's key id: "
                                                                      "calls they reviewed (“my reviews”)")


class Change(BaseModel):
    head: str
    previous: Label | None
    value: Label


class ReviewRecord(BaseModel):
    id: int
    revision: int
    reviewer: str
    reviewer_name: str
    created: datetime
    comment: str
    model: str | None
    changes: list[Change]
    scorecard: ScorecardReview | None = None
    reasons: dict[str, list[int]] = Field(default={}, description="head → turns marked as the reason for its label")
    source: str = Field(default="review", description="review, or appeal: a lead's ruling that overturned deductions")


class CallView(BaseModel):
    """Everything the review UI shows for one call."""

    call: Call
    model: str
    prediction_id: int
    scores: ScoredCall
    labels: dict[str, Label] = Field(description="current label per head (latest correction), where reviewed")
    revision: int = Field(description="send this back with a review; it changes when anyone saves one")
    lease_owner: str | None
    lease_until: datetime | None
    history: list[ReviewRecord] = Field(description="every review of the call, newest first")
    verdicts: ScorecardReview | None = Field(default=None, description="the verdicts the score of record applies: "
                                             "the latest review's on the scorecard, with appeal rulings on top")
    record: ScorecardResult | None = Field(default=None, description="the score of record: the reviewed "
                                           "prediction's scorecard as those verdicts leave it")
    double: DoubleState | None = Field(default=None, description="双评 state (null: reviewed once, as usual)")
    blind: bool = Field(default=False, description="双评: this view hides the other reviewer's labels, verdicts and "
                        "history until the second review is saved")


@dataclass(frozen=True)
class Reviewer:
    id: str
    name: str = ""


@dataclass(frozen=True)
class ReviewedCall:
    """A reviewed call with its current labels: what `reviews export` writes and `reviews agreement` compares."""

    call: Call
    labels: dict[str, Label]
    reviewer: str
    reviewed_at: datetime
    model: str
    predicted: dict[str, Label]  # the model's values in the prediction the latest review saw
    scorecard: ScorecardResult | None = None  # that prediction's scorecard
    reasons: dict[str, list[int]] | None = None  # head → turns reviewers marked as the reason for its current label
    scorecard_review: ScorecardReview | None = None  # the verdicts of record (serving.record.verdicts_of_record)
    source: str = "review"  # of the latest review: review, or appeal
    schema: LabelSchema | None = None  # the label schema of the model that made the prediction (None: not recorded)

    @property
    def record(self) -> ScorecardResult | None:
        """The score of record: the scorecard as the verdicts of record leave it."""
        return None if self.scorecard is None else card_of_record(self.scorecard, self.scorecard_review)
