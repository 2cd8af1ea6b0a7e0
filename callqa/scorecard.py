"""Scorecards (质检评分表): sections of weighted items, scored from model heads, from rules, or both.

A card is data (``configs/scorecards/*.yaml``) with its phrase lists beside it (``phrases:``), checked completely
before anything is scored: every error names the file, the item or rule, and the field. An item

- starts at its ``points``, or at what its ``head`` maps the model's prediction to (a level → points table, or the
  expected score mapped linearly onto 0..points);
- loses each of its ``rules``' ``deduct`` per hit, never below 0;
- may be a ``red_line`` (一票否决): any hit of its rules zeroes the call's total and flags the call;
- may apply only ``when`` a condition holds (a rule hit, a topic over its threshold, a head at given levels);
  otherwise, and where all its rules are not applicable (timing rules on a call without timestamps), it keeps its
  points and says so.

The card's name and content hash are stamped on every result, as the model tag is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from callqa.calls import Call
from callqa.resources import config_dir
from callqa.rules import CompiledRule, Hit, RuleError
from callqa.schema import LabelSchema
from callqa.scorecard_spec import Condition, HeadPoints, Item, ScorecardSpec
from callqa.scores import CallScores, TopicsScore
from callqa.semantic import TurnEmbeddings
from callqa.yamlfile import read_yaml, require_mapping, validate

SCORECARD_DIR = config_dir("scorecards")


class ScorecardError(ValueError):
    """A scorecard that cannot be used; the message names the file and the field."""


# ----------------------------------------------------------------------------------------------- results


class Deduction(Hit):
    title: str
    points: float = Field(description="points this hit deducted (after the item's cap)")
    deduct: float | None = Field(default=None, description="the rule's points per hit, before the item's cap")
    missed: bool = Field(default=False, description="a deduction a reviewer added (漏扣), not a rule's hit")


class ItemResult(BaseModel):
    id: str
    title: str
    points: float
    max_points: float
    applicable: bool = Field(description="false: the item's condition did not hold or its rules could not judge "
                             "the call (timing rules without timestamps); it keeps its points")
    red_line: bool = Field(description="a red-line item whose rules hit: the call's total is 0")
    red_line_item: bool = Field(default=False, description="the item is a red line (一票否决): any deduction of it "
                                "that stands, a rule's or a reviewer's 漏扣, zeroes the call's total")
    deduct: float | None = Field(default=None, description="what a reviewer's 漏扣 on this item takes by default: "
                                 "the largest deduct of its rules")
    rules: list[str] = Field(default=[], description="the ids of the rules that judge this item: a reviewer's 漏扣 on "
                             "it is a miss of theirs (empty in results stored before it was recorded)")
    from_model: float | None = Field(default=None, description="points the model head gave, before deductions")
    deductions: list[Deduction] = []

    @model_validator(mode="after")
    def _hit_red_line_is_a_red_line_item(self) -> ItemResult:
        # Results stored before red_line_item existed say so only where the red line hit.
        if self.red_line and not self.red_line_item:
            self.red_line_item = True
        return self


class SectionResult(BaseModel):
    id: str
    title: str
    points: float
    max_points: float
    items: list[ItemResult]


class ScorecardResult(BaseModel):
    name: str
    hash: str = Field(description="SHA-256 (first 16 hex digits) of the card and its phrase lists")
    total: float
    max_total: float
    red_line: bool = Field(description="a red-line item hit: total is 0 whatever the items say")
    sections: list[SectionResult]
    praise_at: float | None = Field(default=None, description="the card's 表扬 level: a total at or above it, no red line")

    def items(self) -> dict[str, ItemResult]:
        return {i.id: i for s in self.sections for i in s.items}


# ----------------------------------------------------------------------------------------------- the card


class Scorecard:
    """A checked scorecard with compiled rules: ``score(call, scores)`` for one call."""

    def __init__(self, spec: ScorecardSpec, lists: dict[str, list[str]], source: str, schema: LabelSchema | None = None,
                 encoder=None):
        self.spec, self.source, self.schema, self.encoder = spec, source, schema, encoder
        try:
            self.rules = {rule_id: CompiledRule(rule_id, rule, lists) for rule_id, rule in spec.rules.items()}
        except RuleError as err:
            raise ScorecardError(f"{source}: {err}") from None
        self.semantic = [r for r in self.rules.values() if r.kind == "semantic"]
        if encoder is not None:
            self.use_encoder(encoder)
        self._check(schema)
        canonical = json.dumps([spec.model_dump(mode="json", by_alias=True), lists], sort_keys=True, ensure_ascii=False)
        self.hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def use_encoder(self, encoder) -> None:
        """Run the semantic rules with ``encoder`` (callqa.semantic.SentenceEncoder): their examples embedded once.
        A similarity threshold means something in one embedding space only: an encoder of another depth or prefix
        than the card's ``sentence_layers`` / ``sentence_prefix`` (or one that does not say its depth) is refused."""
        wanted, layers = self.spec.sentence_layers, getattr(encoder, "layers", None)
        if self.semantic and wanted is not None and layers != wanted:
            has = f"{layers} layer(s)" if layers else "a sentence encoder that does not say its depth (no encoder.json)"
            raise ScorecardError(f"{self.source}: its semantic rules' thresholds are tuned on a {wanted}-layer sentence "
                                 f"encoder, and the bundle has {has}; re-export the bundle with `callqa export "
                                 f"--sentence-layers {wanted}`, or tune the rules on this one (`callqa scorecard tune`)")
        wanted, prefix = self.spec.sentence_prefix, getattr(encoder, "prefix", None)
        if self.semantic and wanted is not None and prefix != wanted:
            raise ScorecardError(f"{self.source}: its semantic rules' thresholds are tuned with {wanted!r} before each "
                                 f"turn, and the bundle's sentence encoder puts {prefix!r} (a bundle exported before "
                                 f"2026-12-06); re-export the bundle with `callqa export`, or tune the rules on this "
                                 f"one (`callqa scorecard tune`)")
        self.encoder = encoder
        for rule in self.semantic:
            rule.bind(encoder)

    @property
    def name(self) -> str:
        return self.spec.name

    def _check(self, schema: LabelSchema | None) -> None:
        problems = []
        total = sum(s.points for s in self.spec.sections)
        if abs(total - self.spec.total) > 1e-9:
            per = ", ".join(f"{s.id} {s.points:g}" for s in self.spec.sections)
            problems.append(f"total: the items add up to {total:g} ({per}), not the declared {self.spec.total:g}")
        seen: set[str] = set()
        for section in self.spec.sections:
            for item in section.items:
                where = f"sections.{section.id}.items.{item.id}"
                if item.id in seen:
                    problems.append(f"{where}.id: another item has the id {item.id!r}")
                seen.add(item.id)
                for rule in item.rules:
                    if rule not in self.rules:
                        problems.append(f"{where}.rules: no rule {rule!r} (rules: {', '.join(sorted(self.rules))})")
                if item.when and item.when.rule and item.when.rule not in self.rules:
                    problems.append(f"{where}.when.rule: no rule {item.when.rule!r}")
                if schema is not None:
                    problems += self._check_heads(item, where, schema)
        if problems:
            raise ScorecardError(f"{self.source}: " + "; ".join(problems))

    @staticmethod
    def _check_heads(item: Item, where: str, schema: LabelSchema) -> list[str]:
        problems = []
        for field, ref in (("head", item.head), ("when", item.when)):
            if ref is None or ref.head is None:
                continue
            if ref.head not in schema.head_names:
                problems.append(f"{where}.{field}.head: schema {schema.name!r} has no head {ref.head!r} "
                                f"(heads: {', '.join(schema.head_names)})")
                continue
            head = schema[ref.head]
            levels = ref.levels.keys() if isinstance(ref, HeadPoints) and ref.levels else (
                ref.levels if isinstance(ref, Condition) and ref.levels else ())
            for level in levels:
                if level not in head.classes:
                    problems.append(f"{where}.{field}.levels: {level!r} is not a level of {head.name!r} "
                                    f"(levels: {', '.join(head.class_ids)})")
            if isinstance(ref, HeadPoints):
                if ref.linear and not head.spec.scale:
                    problems.append(f"{where}.head.linear: {head.name!r} is {head.kind}; linear needs an ordinal head")
                if ref.levels and set(ref.levels) != set(head.class_ids):
                    missing = [c for c in head.class_ids if c not in ref.levels]
                    if missing:
                        problems.append(f"{where}.head.levels: no points for {', '.join(missing)}")
                if ref.levels and any(p > item.points for p in ref.levels.values()):
                    problems.append(f"{where}.head.levels: more points than the item's {item.points:g}")
            if isinstance(ref, Condition) and ref.label is not None:
                if not head.spec.multiple:
                    problems.append(f"{where}.when.label: {head.name!r} is {head.kind}; label needs a multilabel head")
                elif ref.label not in head.classes:
                    problems.append(f"{where}.when.label: {ref.label!r} is not a label of {head.name!r}")
        return problems

    def check_schema(self, schema: LabelSchema, model: str = "") -> None:
        """Raise :class:`ScorecardError` if the card is written for another schema (its ``schema:``), or an item names
        a head or level that ``schema`` lacks. ``model`` names whose schema it is, for the message."""
        wanted = self.spec.schema_name
        if wanted is not None and wanted != schema.name:
            whose = f"bundle {model}'s" if model else "the model's"
            raise ScorecardError(f"{self.source}: scorecard {self.name!r} is for schema {wanted!r}; {whose} schema is "
                                 f"{schema.name!r} (pick a card for it, or --scorecard none)")
        problems = [p for s in self.spec.sections for i in s.items
                    for p in self._check_heads(i, f"sections.{s.id}.items.{i.id}", schema)]
        if problems:
            raise ScorecardError(f"{self.source}: " + "; ".join(problems))
        self.schema = schema  # linear items map expected scores over its heads' level values

    def rule_hits(self, call: Call, kind: str | None = None) -> dict[str, list[Hit] | None]:
        """Every rule's hits on the call (or every rule's of one ``kind``); None for a rule that cannot judge it
        (timing without timestamps)."""
        # A call's turns are embedded once, on the first semantic rule that asks, however many there are.
        embeddings = TurnEmbeddings(self.encoder, [t.text for t in call.turns]) if self.encoder and self.semantic else None
        try:
            return {rule_id: rule.run(call, embeddings) if rule.applies(call) else None
                    for rule_id, rule in self.rules.items() if kind is None or rule.kind == kind}
        except RuleError as err:
            raise ScorecardError(f"{self.source}: {err}") from None

    def score(self, call: Call, scores: CallScores | None = None) -> ScorecardResult:
        """The call's scorecard. Without ``scores`` (rules only), items scored by a head keep full points there."""
        hits = self.rule_hits(call)
        sections, red_line = [], False
        for section in self.spec.sections:
            items = [self._item(item, hits, scores) for item in section.items]
            red_line = red_line or any(i.red_line for i in items)
            sections.append(SectionResult(id=section.id, title=section.title, points=sum(i.points for i in items),
                                          max_points=section.points, items=items))
        total = 0.0 if red_line else sum(s.points for s in sections)
        return ScorecardResult(name=self.name, hash=self.hash, total=round(total, 4), max_total=self.spec.total,
                               red_line=red_line, sections=sections, praise_at=self.spec.praise_at)

    def _holds(self, when: Condition, hits: dict[str, list[Hit] | None], scores: CallScores | None) -> bool:
        if when.rule is not None:
            return bool(hits.get(when.rule))
        score = scores.scores.get(when.head) if scores else None
        if score is None:
            return False
        if isinstance(score, TopicsScore):
            return when.label in score.predicted
        return score.level in (when.levels or ())

    def _item(self, item: Item, hits: dict[str, list[Hit] | None], scores: CallScores | None) -> ItemResult:
        traits = {"red_line_item": item.red_line, "rules": list(item.rules),
                  "deduct": max((self.rules[r].spec.deduct for r in item.rules), default=None)}
        if item.when is not None and not self._holds(item.when, hits, scores):
            return ItemResult(id=item.id, title=item.title, points=item.points, max_points=item.points,
                              applicable=False, red_line=False, **traits)
        start, from_model = item.points, None
        score = scores.scores.get(item.head.head) if (item.head and scores) else None
        if score is not None and not isinstance(score, TopicsScore):
            if item.head.levels is not None:
                from_model = item.head.levels[score.level]
            else:
                if self.schema is None:
                    raise ScorecardError(f"{self.source}: item {item.id} maps head {item.head.head!r} linearly; load "
                                         f"the card with the model's schema (load_scorecard(name, schema))")
                values = self.schema[item.head.head].values
                low, high = float(values.min()), float(values.max())
                expected = score.expected if score.expected is not None else low
                from_model = item.points * (expected - low) / ((high - low) or 1.0)
            start = from_model = round(min(max(from_model, 0.0), item.points), 4)
        if item.rules and from_model is None and all(hits.get(r) is None for r in item.rules):
            return ItemResult(id=item.id, title=item.title, points=item.points, max_points=item.points,
                              applicable=False, red_line=False, **traits)
        left, deductions = start, []
        for rule_id in item.rules:
            rule = self.rules[rule_id]
            for hit in hits.get(rule_id) or ():
                take = min(rule.spec.deduct, left)
                left -= take
                deductions.append(Deduction(**hit.__dict__, title=rule.spec.title, points=round(take, 4),
                                            deduct=rule.spec.deduct))
        return ItemResult(id=item.id, title=item.title, points=round(left, 4), max_points=item.points, applicable=True,
                          red_line=item.red_line and bool(deductions), from_model=from_model, deductions=deductions,
                          **traits)


def _ids(data: dict):
    """Pydantic's locations name list positions of the reshaped sections and items; say the ids the file uses."""
    sections = data.get("sections") if isinstance(data.get("sections"), dict) else {}
    section_ids = list(sections)

    def rename(where: list[str]) -> list[str]:
        if len(where) < 2 or where[0] != "sections" or not where[1].isdigit() or int(where[1]) >= len(section_ids):
            return where
        sid = section_ids[int(where[1])]
        out = ["sections", sid, *where[2:]]
        items = (sections[sid] or {}).get("items") if isinstance(sections[sid], dict) else None
        if isinstance(items, dict) and len(out) >= 4 and out[2] == "items" and out[3].isdigit() and int(out[3]) < len(items):
            out[3] = list(items)[int(out[3])]
        return out

    return rename


def _id_lists(data: dict) -> dict:
    """YAML writes sections and items as mappings id → spec; the model takes lists with ids."""
    data = dict(data)
    if isinstance(data.get("sections"), dict):
        sections = []
        for sid, section in data["sections"].items():
            section = dict(section or {})
            if isinstance(section.get("items"), dict):
                section["items"] = [{"id": iid, **(spec or {})} for iid, spec in section["items"].items()]
            sections.append({"id": sid, **section})
        data["sections"] = sections
    return data


def load_phrases(path: Path) -> dict[str, list[str]]:
    document = read_yaml(path, ScorecardError, "phrase list")
    data = require_mapping(document, ScorecardError, "a phrase file (list names → lists of phrases)")
    lists = {}
    for name, phrases in data.items():
        if name == "version":
            continue
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p for p in phrases):
            raise ScorecardError(document.problem([str(name)], "a list of non-empty phrases"))
        lists[name] = phrases
    return lists


def load_scorecard(name_or_path: str | Path, schema: LabelSchema | None = None, encoder=None) -> Scorecard:
    """A card by file path, or by the name of one shipped in configs/scorecards (``default``); with ``schema``, its
    heads and levels are checked against it; ``encoder`` (callqa.semantic.SentenceEncoder) runs its semantic rules."""
    path = Path(name_or_path)
    if not (path.suffix in {".yaml", ".yml"} or path.exists()):
        shipped = SCORECARD_DIR / f"{name_or_path}.yaml"
        if not shipped.exists():
            known = ", ".join(sorted(p.stem for p in SCORECARD_DIR.glob("*.yaml") if p.stem != "phrases"))
            raise ScorecardError(f"no scorecard {str(name_or_path)!r}: not a file, and not a shipped card ({known})")
        path = shipped
    document = read_yaml(path, ScorecardError, "scorecard")
    data = require_mapping(document, ScorecardError, "a scorecard (name, title, total, sections and rules)")
    spec = validate(ScorecardSpec, document, ScorecardError, data=_id_lists(data), rename=_ids(data))
    lists = load_phrases(path.parent / spec.phrases) if spec.phrases else {}
    return Scorecard(spec, lists, str(path), schema, encoder)
