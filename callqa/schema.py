"""Label schemas: which heads a model has, of which kind, with which classes.

A schema is data (``configs/schemas/*.yaml``), not code: a new label dimension is a YAML edit plus retraining.
Class ids are kept as strings everywhere (YAML ``1`` and JSON ``"1"`` name the same level), in the order the
YAML lists them; for ordinal heads that order is the scale.

A head is scored per call (``scope: call``, labels in ``Call.labels``) or per turn (``scope: turn``, labels in
``Turn.labels``, optionally only for one speaker's turns: STC-3's customer and helpdesk nuggets). The schema keeps
the two apart (``heads`` and ``turn_heads``), so code that scores calls never meets a turn head by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from callqa.calls import Label, Speaker, Turn
from callqa.heads import KINDS, HeadKind, HeadView, LabelError
from callqa.resources import config_dir
from callqa.yamlfile import read_yaml, require_mapping, validate


def _known_kind(name: str) -> str:
    if name not in KINDS:
        raise ValueError(f"unknown head kind {name!r} (kinds: {', '.join(KINDS)})")
    return name


# A head's kind: a key of callqa.heads.KINDS (a new kind registered there is known here without an edit).
KindName = Annotated[str, AfterValidator(_known_kind), WithJsonSchema({"type": "string", "enum": list(KINDS)})]

SCHEMA_DIR = config_dir("schemas")


class SchemaError(ValueError):
    """A schema file that cannot be used; the message names the file and the field."""


class Head(BaseModel):
    """One prediction head: a label dimension and its classes (id → Chinese display name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: KindName
    display: str = Field(description="Chinese display name shown to reviewers, e.g. 服务态度")
    classes: dict[str, str] = Field(description="class id → display name, in order (the scale, for ordinal heads)")
    description: str = ""
    scope: Literal["call", "turn"] = Field(default="call", description="labels per call, or per turn (Turn.labels)")
    speaker: Speaker | None = Field(default=None, description="a turn head only: the speaker whose turns it labels")
    role: Literal["resolution", "satisfaction"] | None = Field(
        default=None, description="what the head measures for reports: resolution (a level in the upper half of its scale "
        "counts as resolved in 来电分析's predicted resolution rate) or satisfaction (set against customer surveys)")

    @field_validator("classes", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): ("" if v is None else str(v)) for k, v in value.items()}
        if isinstance(value, list):  # a bare list of ids: display name = id
            return {str(k): str(k) for k in value}
        return value

    @model_validator(mode="after")
    def _enough_classes(self) -> Head:
        minimum = self.spec.min_classes
        if len(self.classes) < minimum:
            raise ValueError(f"a {self.kind} head needs at least {minimum} classes, got {len(self.classes)}")
        if self.speaker is not None and self.scope != "turn":
            raise ValueError("speaker: only a head with scope: turn labels one speaker's turns")
        return self

    def applies_to(self, turn: Turn) -> bool:
        """Whether this turn head labels ``turn`` (every turn, or only its speaker's)."""
        return self.speaker is None or turn.speaker == self.speaker

    @property
    def spec(self) -> HeadKind:
        """What this head's kind means for activation, metrics and scoring."""
        return KINDS[self.kind]

    def view(self, thresholds: list[float] | None = None) -> HeadView:
        """The UI's descriptor of this head, as its kind describes it."""
        return self.spec.view(self, thresholds)

    @property
    def class_ids(self) -> list[str]:
        return list(self.classes)

    @property
    def size(self) -> int:
        return len(self.classes)

    @property
    def values(self) -> np.ndarray:
        """Numeric value of each ordinal level: the ids themselves where they are numbers (1..5, −2..2), else 0..L−1."""
        try:
            return np.array([float(c) for c in self.classes], dtype=np.float64)
        except ValueError:
            return np.arange(self.size, dtype=np.float64)

    def typed(self, class_id: str) -> int | str:
        """A class id as the call format writes it: a number for numeric levels (attitude 4), else the id."""
        try:
            number = int(class_id)
        except ValueError:
            return class_id
        return number if str(number) == class_id else class_id  # "04" stays text: 4 would name another class

    def index(self, class_id: object) -> int:
        key = str(class_id)
        try:
            return self.class_ids.index(key)
        except ValueError:
            raise LabelError(f"{key!r} is not a class of head {self.name!r} (classes: {', '.join(self.class_ids)})") from None

    def target(self, label: Label | None) -> np.ndarray | None:
        """The training target for a label, in the shape its kind gives it: a distribution, or a 0/1 vector.

        One value → one-hot; annotator votes → the normalised vote distribution; missing → None (the loss masks it).
        """
        if label is None:
            return None
        return self.spec.target(self, label)


class LabelSchema(BaseModel):
    """The heads a model predicts. Travels inside the model bundle so serving and the UI render exactly these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    heads: tuple[Head, ...] = Field(description="call-level heads")
    turn_heads: tuple[Head, ...] = Field(default=(), description="turn-level heads (scope: turn)")

    @model_validator(mode="before")
    @classmethod
    def _heads_from_mapping(cls, data: object) -> object:
        # YAML writes heads as a mapping name → spec, turn heads among them (scope: turn); JSON round-trips write
        # two lists.
        if isinstance(data, dict) and isinstance(data.get("heads"), dict):
            data = dict(data)
            specs = [
                {"name": name, **(spec or {})} if isinstance(spec, dict) or spec is None else spec
                for name, spec in data["heads"].items()
            ]
            turn = [s for s in specs if isinstance(s, dict) and s.get("scope") == "turn"]
            data["heads"] = [s for s in specs if not (isinstance(s, dict) and s.get("scope") == "turn")]
            data["turn_heads"] = [*data.get("turn_heads", ()), *turn]
        return data

    @model_validator(mode="after")
    def _unique_heads(self) -> LabelSchema:
        names = [h.name for h in self.all_heads]
        if not self.heads:
            raise ValueError("a schema needs at least one head of scope call")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate head names: {', '.join(dupes)}")
        misplaced = [h.name for h in self.heads if h.scope != "call"] + [h.name for h in self.turn_heads if h.scope != "turn"]
        if misplaced:
            raise ValueError(f"heads in the wrong list for their scope: {', '.join(misplaced)}")
        return self

    @property
    def all_heads(self) -> tuple[Head, ...]:
        """Call heads, then turn heads: what the model has a linear layer and a loss for."""
        return self.heads + self.turn_heads

    def turn_head(self, name: str) -> Head:
        for head in self.turn_heads:
            if head.name == name:
                return head
        raise KeyError(f"schema {self.name!r} has no turn head {name!r}")

    def narrowed(self, names: list[str]) -> LabelSchema:
        """The schema with only these heads (call or turn), in the schema's order."""
        unknown = [n for n in names if n not in {h.name for h in self.all_heads}]
        if unknown:
            raise KeyError(f"schema {self.name!r} has no head {', '.join(unknown)}")
        return self.model_copy(update={"heads": tuple(h for h in self.heads if h.name in names),
                                       "turn_heads": tuple(h for h in self.turn_heads if h.name in names)})

    def __getitem__(self, name: str) -> Head:
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"schema {self.name!r} has no head {name!r} (heads: {', '.join(self.head_names)})")

    def with_role(self, role: str) -> Head | None:
        """The call head that measures ``role`` (``resolution``, ``satisfaction``), if the schema names one."""
        return next((h for h in self.heads if h.role == role), None)

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.heads]

    def check_labels(self, labels: dict[str, Label | None]) -> list[tuple[str, str]]:
        """(field, message) for every label that does not fit this schema; empty when all fit."""
        problems: list[tuple[str, str]] = []
        for name, label in labels.items():
            if name not in self.head_names:
                turn = " (a turn head: its labels go on turns)" if name in {h.name for h in self.turn_heads} else ""
                problems.append((f"labels.{name}", f"unknown head{turn} (schema {self.name!r} has {', '.join(self.head_names)})"))
                continue
            try:
                self[name].target(label)
            except LabelError as err:
                problems.append((f"labels.{name}", str(err)))
        return problems

    def check_turn_labels(self, turns: list[Turn]) -> list[tuple[str, str]]:
        """(field, message) for every turn label of a turn head that does not fit it. Other turn labels (a
        reviewer's ``reason``) are free-form and not checked."""
        problems: list[tuple[str, str]] = []
        for i, turn in enumerate(turns):
            for head in self.turn_heads:
                label = turn.labels.get(head.name)
                if label is None:
                    continue
                field = f"turns[{i}].labels.{head.name}"
                if not head.applies_to(turn):
                    problems.append((field, f"head {head.name!r} labels {head.speaker} turns; this is a {turn.speaker} turn"))
                    continue
                try:
                    head.target(label)
                except LabelError as err:
                    problems.append((field, str(err)))
        return problems

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabelSchema:
        document = read_yaml(path, SchemaError, "schema")
        data = dict(require_mapping(document, SchemaError, "a schema"))
        data.setdefault("name", Path(path).stem)
        return validate(cls, document, SchemaError, data=data, rename=_head_names(data))


def _head_names(data: dict):
    """Pydantic's error locations name list positions (the YAML's heads mapping becomes two lists, call and turn
    heads); say the head name the file uses instead: heads.empathy.kind."""
    heads = data.get("heads") if isinstance(data.get("heads"), dict) else {}
    turn = [n for n, s in heads.items() if isinstance(s, dict) and s.get("scope") == "turn"]
    by_list = {"heads": [n for n in heads if n not in turn], "turn_heads": turn}

    def rename(where: list[str]) -> list[str]:
        names = by_list.get(where[0], []) if where else []
        if len(where) >= 2 and where[1].isdigit() and int(where[1]) < len(names):
            return ["heads", names[int(where[1])], *where[2:]]
        return where

    return rename


def load_schema(name_or_path: str | Path) -> LabelSchema:
    """A schema by file path, or by the name of one shipped in configs/schemas (``callcenter``, ``stc3``)."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return LabelSchema.from_yaml(path)
    shipped = SCHEMA_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return LabelSchema.from_yaml(shipped)
    known = ", ".join(sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml")))
    raise SchemaError(f"no schema {str(name_or_path)!r}: not a file, and not a shipped schema ({known})")
