"""A scorecard file as written (configs/scorecards/*.yaml): its sections of items, how an item takes points from a
model head, when it applies, and its rules (callqa.rules). Checked against each other by callqa.scorecard.Scorecard."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callqa.rules import Rule


class HeadPoints(BaseModel):
    """Points from a model head: ``levels`` (level id → points) or ``linear`` (expected score → 0..points)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: str
    levels: dict[str, float] | None = None
    linear: bool = False

    @model_validator(mode="before")
    @classmethod
    def _ids_as_strings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("levels"), dict):
            data = {**data, "levels": {str(k): v for k, v in data["levels"].items()}}
        return data

    @model_validator(mode="after")
    def _one_way(self) -> HeadPoints:
        if (self.levels is None) == (not self.linear):
            raise ValueError("give either levels (level → points) or linear: true")
        return self


class Condition(BaseModel):
    """When an item applies: a rule has hits, a multilabel head predicts ``label``, or a head's level is in ``levels``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str | None = None
    head: str | None = None
    label: str | None = None
    levels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        if (self.rule is None) == (self.head is None):
            raise ValueError("give either rule or head")
        if self.head is not None and (self.label is None) == (self.levels is None):
            raise ValueError("a head condition needs label (multilabel heads) or levels")
        return self


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    points: float = Field(ge=0, le=1000)
    head: HeadPoints | None = None
    rules: tuple[str, ...] = ()
    red_line: bool = False
    when: Condition | None = None
    description: str = ""

    @model_validator(mode="after")
    def _scored_somehow(self) -> Item:
        if self.head is None and not self.rules:
            raise ValueError("an item is scored from a head, from rules, or both: give head or rules")
        if self.red_line and not self.rules:
            raise ValueError("a red line needs rules whose hits trigger it")
        return self


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    items: tuple[Item, ...] = Field(min_length=1)

    @property
    def points(self) -> float:
        return sum(i.points for i in self.items)


class ScorecardSpec(BaseModel):
    """The YAML file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    total: float = Field(gt=0)
    schema_name: str | None = Field(default=None, alias="schema", description="the label schema its heads come from")
    phrases: str | None = Field(default=None, description="phrase list file, relative to the card")
    sections: tuple[Section, ...] = Field(min_length=1)
    rules: dict[str, Rule] = {}
    praise_at: float | None = Field(default=None, gt=0, description="表扬: a call at this total or more, without a red line, is an example")
    sentence_layers: int | None = Field(default=None, ge=1, description="the sentence encoder's depth the semantic "
                                        "rules' thresholds were tuned on: a bundle whose encoder has another is refused")
    sentence_prefix: str | None = Field(default=None, description="the text the sentence encoder put before each "
                                        "turn when the thresholds were tuned ('' for none): a bundle whose encoder "
                                        "puts another is refused")
