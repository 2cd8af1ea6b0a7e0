"""What a call's predicted scores look like to the outside: the scoring API's response and the review store's record.

Ordinal and multiclass heads report the whole distribution over levels, the expected score, the most likely level
and its probability (the confidence); multilabel heads (topics) report each label's probability and whether it
passes the threshold tuned on validation data.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from callqa.calls import Label


class LevelScore(BaseModel):
    """An ordinal or multiclass head."""

    display: str = Field(description="the head's name as reviewers see it")
    distribution: dict[str, float] = Field(description="class id → probability, in scale order")
    expected: float | None = Field(default=None, description="Σ probability × level value (ordinal heads only)")
    level: str = Field(description="the most likely class id")
    level_name: str
    confidence: float = Field(description="probability of the most likely class")

    def label(self) -> Label:
        """What the model says, in the label format: the most likely class id."""
        return self.level


class LabelScore(BaseModel):
    id: str
    name: str
    probability: float
    threshold: float
    predicted: bool


class TopicsScore(BaseModel):
    """A multilabel head."""

    display: str
    labels: list[LabelScore] = Field(description="every label, most probable first")
    predicted: list[str] = Field(description="ids of the labels over their threshold")

    def label(self) -> Label:
        """What the model says, in the label format: the labels over their threshold."""
        return list(self.predicted)


class CallScores(BaseModel):
    call_id: str
    scores: dict[str, LevelScore | TopicsScore]
    turns: dict[str, list[LevelScore | TopicsScore | None]] = Field(
        default_factory=dict, description="turn heads (e.g. STC-3 nuggets): per head, one score per turn; null for a "
        "turn the head does not label (another speaker's) or the model did not reach")
    n_tokens: int = Field(description="tokens of the rendered call")
    truncated: bool = Field(description="true when the call was longer than the model reads (max_windows)")

    def predicted(self) -> dict[str, Label]:
        """What the model says per head, in the label format: a class id, or the list of topics over threshold."""
        return {head: s.label() for head, s in self.scores.items()}
