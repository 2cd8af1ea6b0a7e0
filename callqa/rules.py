"""Scorecard rules: torch-free checks over a call's turns, each hit carrying its evidence.

Kinds (``kind:`` in a scorecard's ``rules:``):

- ``phrase``    a phrase or pattern that must not be said (禁语, 推诿, 口头语 hits): one hit per occurrence.
- ``required``  a phrase that must be said: in the first/last agent turns (开场白, 结束语), or within N agent turns
                after a customer turn that triggers it (安抚 after a complaint). One hit per missing occurrence.
- ``rate``      how often phrases occur per agent turn: below ``min`` (敬语 too rare) or above ``max`` (口头语).
- ``interrupt`` 抢话: an agent turn starting before the customer's turn ended, by more than ``tolerance`` s.
- ``silence``   a gap of more than ``max_gap`` s before an agent turn that the agent did not announce (请稍等…).
- ``speech_rate`` agent characters per minute outside ``min``..``max``.
- ``semantic``  a criterion written as example utterances (and counter-examples): a turn matches by the similarity of
                its sentence embedding to the closest example (callqa.semantic), at or above ``threshold``. Like
                ``phrase`` one hit per matching turn, or with ``required: true`` like ``required`` (安抚 after a
                complaint): a hit where no turn in scope matches. The hit names the closest example.

Timing kinds need ``start``/``end`` on the turns they look at, semantic rules a sentence encoder; without them the
rule is *not applicable* (never a deduction). Phrase matches skip ``exceptions`` ("不清楚的地方您可以随时问我" is not the 禁语 "不清楚") and
matches right after a negation ("不生气" is not a complaint about being angry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from callqa.calls import Call, Speaker, Turn
from callqa.semantic import ExampleMatcher


class Hit(BaseModel):
    """One deduction's evidence. Phrase rules: ``turn`` and the character span, ``text == call.turns[turn].text[
    start:end]``. A missing phrase: the turn where it was expected (its whole text). Timing rules: the agent turn,
    the customer turn it concerns (``other_turn``) and the overlap or gap in ``seconds``."""

    rule: str
    turn: int | None = None
    start: int | None = None
    end: int | None = None
    text: str | None = None
    other_turn: int | None = None
    seconds: float | None = None
    value: float | None = Field(default=None, description="rate rules: the measured rate; semantic rules: the "
                                "turn's similarity score")
    example: str | None = Field(default=None, description="semantic rules: the criterion's example closest to the turn")


class RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(description="what a reviewer reads next to the deduction, e.g. 使用禁语")
    deduct: float = Field(ge=0, le=1000, description="points deducted per hit")
    max_hits: int = Field(default=20, ge=1, le=1000, description="hits reported at most (deductions stay capped by the item)")


class PhraseSet(BaseModel):
    """Phrases (literal) and patterns (regular expressions), plus named lists from the card's phrase file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lists: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = Field(default=(), description="phrases in which a match does not count")
    negations: tuple[str, ...] = Field(default=(), description="a match right after one of these does not count")


class PhraseRule(RuleBase, PhraseSet):
    kind: Literal["phrase"]
    speaker: Speaker = "agent"


class Trigger(PhraseSet):
    speaker: Speaker = "customer"
    within: int = Field(default=2, ge=1, le=50, description="agent turns after the trigger that may answer it")


class RequiredRule(RuleBase, PhraseSet):
    kind: Literal["required"]
    where: Literal["first", "last", "after"] = Field(description="first/last: in the first/last `turns` agent turns; "
                                                     "after: after every turn matching `trigger`")
    turns: int = Field(default=1, ge=1, le=50)
    trigger: Trigger | None = None


class RateRule(RuleBase, PhraseSet):
    kind: Literal["rate"]
    min: float | None = Field(default=None, ge=0, description="least matches per agent turn")
    max: float | None = Field(default=None, ge=0, description="most matches per agent turn")


class InterruptRule(RuleBase):
    kind: Literal["interrupt"]
    tolerance: float = Field(default=0.5, ge=0, le=60, description="overlap in seconds that is not yet 抢话")


class SilenceRule(RuleBase, PhraseSet):
    kind: Literal["silence"]
    max_gap: float = Field(default=10.0, gt=0, le=3600, description="seconds of silence before an agent turn")


class SpeechRateRule(RuleBase):
    kind: Literal["speech_rate"]
    min: float = Field(default=120, ge=0, description="agent characters per minute, at least")
    max: float = Field(default=330, gt=0, description="agent characters per minute, at most")


class SemanticRule(RuleBase):
    kind: Literal["semantic"]
    speaker: Speaker = "agent"
    examples: tuple[str, ...] = Field(default=(), description="utterances that meet the criterion")
    example_lists: tuple[str, ...] = Field(default=(), description="named lists of examples in the card's phrase file")
    counter_examples: tuple[str, ...] = Field(default=(), description="utterances that look alike but do not")
    counter_lists: tuple[str, ...] = ()
    threshold: float = Field(ge=-1, le=1, description="the least similarity score that matches (callqa.semantic)")
    required: bool = Field(default=False, description="deduct where no turn in scope matches, instead of where one does")
    where: Literal["any", "first", "last", "after"] = Field(default="any", description="required rules: in the "
                                                            "first/last `turns` turns of the speaker, or after `trigger`")
    turns: int = Field(default=1, ge=1, le=50)
    trigger: Trigger | None = None


Rule = Annotated[PhraseRule | RequiredRule | RateRule | InterruptRule | SilenceRule | SpeechRateRule | SemanticRule,
                 Field(discriminator="kind")]
TIMING_KINDS = frozenset({"interrupt", "silence", "speech_rate"})


class RuleError(ValueError):
    """A rule that cannot run: an unknown phrase list or a pattern that does not compile."""


@dataclass(frozen=True)
class Matcher:
    """One compiled alternation of a phrase set, with its exceptions and negations."""

    pattern: re.Pattern | None
    exceptions: re.Pattern | None
    negations: tuple[str, ...]

    @classmethod
    def of(cls, spec: PhraseSet, lists: dict[str, list[str]], where: str) -> Matcher:
        phrases = list(spec.phrases)
        for name in spec.lists:
            if name not in lists:
                raise RuleError(f"{where}.lists: no phrase list {name!r} (lists: {', '.join(sorted(lists))})")
            phrases += lists[name]
        alternatives = [re.escape(p) for p in sorted(set(phrases), key=len, reverse=True) if p]
        for i, pattern in enumerate(spec.patterns):
            try:
                re.compile(pattern)
            except re.error as err:
                raise RuleError(f"{where}.patterns[{i}]: {pattern!r} does not compile: {err}") from None
            alternatives.append(f"(?:{pattern})")
        exceptions = [re.escape(p) for p in sorted(set(spec.exceptions), key=len, reverse=True) if p]
        return cls(re.compile("|".join(alternatives)) if alternatives else None,
                   re.compile("|".join(exceptions)) if exceptions else None, spec.negations)

    def find(self, text: str) -> list[tuple[int, int]]:
        """Spans of the matches in ``text`` that are neither inside an exception nor right after a negation."""
        if self.pattern is None:
            return []
        spans = [m.span() for m in self.pattern.finditer(text) if m.end() > m.start()]
        if not spans:
            return spans
        if self.exceptions is not None:
            excepted = [m.span() for m in self.exceptions.finditer(text)]
            spans = [(s, e) for s, e in spans if not any(a < e and s < b for a, b in excepted)]
        if self.negations:
            spans = [(s, e) for s, e in spans if not any(text[max(0, s - len(n)):s] == n for n in self.negations)]
        return spans

    def matches(self, text: str) -> bool:
        return bool(self.find(text))


def _listed(texts: tuple[str, ...], names: tuple[str, ...], lists: dict[str, list[str]], where: str) -> list[str]:
    out = list(texts)
    for name in names:
        if name not in lists:
            raise RuleError(f"{where}: no list {name!r} in the phrase file (lists: {', '.join(sorted(lists))})")
        out += lists[name]
    return out


def _timed(turn: Turn) -> bool:
    return turn.start is not None and turn.end is not None


class CompiledRule:
    """A rule ready to run: its phrase sets compiled once, applied to call after call."""

    def __init__(self, rule_id: str, spec, lists: dict[str, list[str]]):
        self.id, self.spec = rule_id, spec
        where = f"rules.{rule_id}"
        self.matcher = Matcher.of(spec, lists, where) if isinstance(spec, PhraseSet) else None
        trigger = getattr(spec, "trigger", None)
        self.trigger = Matcher.of(trigger, lists, f"{where}.trigger") if trigger else None
        if isinstance(spec, RequiredRule) and (spec.where == "after") != (trigger is not None):
            raise RuleError(f"{where}.trigger: give a trigger exactly when where is 'after'")
        if isinstance(spec, RateRule) and spec.min is None and spec.max is None:
            raise RuleError(f"{where}: a rate rule needs min or max")
        if isinstance(spec, SemanticRule):
            self.examples = _listed(spec.examples, spec.example_lists, lists, f"{where}.example_lists")
            self.counter_examples = _listed(spec.counter_examples, spec.counter_lists, lists, f"{where}.counter_lists")
            if not self.examples:
                raise RuleError(f"{where}.examples: a semantic rule needs at least one example")
            if (spec.where == "after") != (trigger is not None):
                raise RuleError(f"{where}.trigger: give a trigger exactly when where is 'after'")
        self.matcher_of_examples = None  # bound to a sentence encoder by bind()

    def bind(self, encoder) -> None:
        """Embed a semantic rule's examples with ``encoder`` (callqa.semantic.SentenceEncoder), once."""
        if self.kind == "semantic":
            self.matcher_of_examples = ExampleMatcher.of(encoder, self.examples, self.counter_examples)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def applies(self, call: Call) -> bool:
        """False where the rule cannot judge the call: timing rules on turns without start/end, semantic rules with no
        sentence encoder (a card scored alone, in Python; every scoring session gives it the bundle's, or refuses)."""
        if self.kind == "semantic":
            return self.matcher_of_examples is not None
        if self.kind not in TIMING_KINDS:
            return True
        return sum(_timed(t) for t in call.turns) >= 2

    def run(self, call: Call, embeddings=None) -> list[Hit]:
        """The rule's hits on ``call`` (empty when it passes); call :meth:`applies` first. ``embeddings``: the call's
        turn embeddings (callqa.semantic.TurnEmbeddings), which semantic rules need."""
        if self.kind == "semantic":
            if self.matcher_of_examples is None or embeddings is None:
                raise RuleError(f"rules.{self.id}: a semantic rule needs a sentence encoder; score with a bundle that "
                                f"has one, or give the scorecard one (load_scorecard(..., encoder=...))")
            hits = self._semantic(call, embeddings)
        else:
            hits = getattr(self, f"_{self.kind}")(call)
        return hits[: self.spec.max_hits]

    def _semantic(self, call: Call, embeddings) -> list[Hit]:
        """Turns of the rule's speaker whose score meets the threshold (callqa.semantic.ExampleMatcher); required:
        where none in scope does. A hit names the closest example and carries the turn's score."""
        spec, turns = self.spec, call.turns
        mine = [i for i, t in enumerate(turns) if t.speaker == spec.speaker]
        matches = dict(zip(mine, self.matcher_of_examples.match(embeddings(mine)) if mine else []))

        def hit(i: int, start: int = 0, end: int | None = None, scored: bool = True) -> Hit:
            found = self._hit(turns, i, start, len(turns[i].text) if end is None else end)
            if not scored:
                return found
            return found.model_copy(update={"value": round(matches[i].score, 4),
                                            "example": self.examples[matches[i].example]})

        def meets(i: int) -> bool:
            return matches[i].score >= spec.threshold

        if not spec.required:
            return [hit(i) for i in mine if meets(i)]
        # Where nothing in scope meets it: the trigger, or (no trigger) the turn that came nearest, for the reviewer.
        return [hit(*trigger, scored=False) if trigger else hit(max(window, key=lambda i: matches[i].score))
                for trigger, window in self.scopes(call) if not any(meets(i) for i in window)]

    def scopes(self, call: Call) -> list[tuple[tuple[int, int, int] | None, list[int]]]:
        """Where a required semantic rule judges ``call``: (the trigger's turn and span, or None, and the speaker's
        turns that may meet the criterion) — after each trigger, or one window of turns; none on a call without the
        speaker's turns. The rule and its tuning (callqa.rule_tuning) both read it."""
        spec, turns = self.spec, call.turns
        mine = [i for i, t in enumerate(turns) if t.speaker == spec.speaker]
        if not mine:
            return []
        if spec.where != "after":
            return [(None, mine if spec.where == "any" else mine[: spec.turns] if spec.where == "first"
                     else mine[-spec.turns:])]
        return [((i, *found[0]), [j for j in mine if j > i][: spec.trigger.within]) for i, t in enumerate(turns)
                if t.speaker == spec.trigger.speaker and (found := self.trigger.find(t.text))]

    def _hit(self, turns: list[Turn], i: int, start: int, end: int) -> Hit:
        return Hit(rule=self.id, turn=i, start=start, end=end, text=turns[i].text[start:end])

    def _whole(self, turns: list[Turn], i: int) -> Hit:
        return self._hit(turns, i, 0, len(turns[i].text))

    def _phrase(self, call: Call) -> list[Hit]:
        return [self._hit(call.turns, i, s, e) for i, t in enumerate(call.turns) if t.speaker == self.spec.speaker
                for s, e in self.matcher.find(t.text)]

    def _required(self, call: Call) -> list[Hit]:
        spec, turns = self.spec, call.turns
        agent = [i for i, t in enumerate(turns) if t.speaker == "agent"]
        if not agent:
            return []
        if spec.where in ("first", "last"):
            window = agent[: spec.turns] if spec.where == "first" else agent[-spec.turns:]
            if any(self.matcher.matches(turns[i].text) for i in window):
                return []
            return [self._whole(turns, window[0] if spec.where == "first" else window[-1])]
        hits = []
        for i, t in enumerate(turns):
            if t.speaker != spec.trigger.speaker:
                continue
            found = self.trigger.find(t.text)
            if not found:
                continue
            answers = [j for j in agent if j > i][: spec.trigger.within]
            if not any(self.matcher.matches(turns[j].text) for j in answers):
                s, e = found[0]
                hits.append(self._hit(turns, i, s, e))
        return hits

    def _rate(self, call: Call) -> list[Hit]:
        spec, turns = self.spec, call.turns
        agent = [i for i, t in enumerate(turns) if t.speaker == "agent"]
        if not agent:
            return []
        found = {i: self.matcher.find(turns[i].text) for i in agent}
        rate = sum(len(v) for v in found.values()) / len(agent)
        if spec.max is not None and rate > spec.max:
            hits = [self._hit(turns, i, s, e) for i in agent for s, e in found[i]]
            return [h.model_copy(update={"value": rate}) for h in hits[:1]] + hits[1:]
        if spec.min is not None and rate < spec.min:
            bare = next((i for i in agent if not found[i]), agent[0])
            return [self._whole(turns, bare).model_copy(update={"value": rate})]
        return []

    def _interrupt(self, call: Call) -> list[Hit]:
        hits, turns = [], call.turns
        for i in range(1, len(turns)):
            prev, cur = turns[i - 1], turns[i]
            if cur.speaker == "agent" and prev.speaker == "customer" and _timed(prev) and _timed(cur):
                overlap = prev.end - cur.start
                if overlap > self.spec.tolerance:
                    hits.append(Hit(rule=self.id, turn=i, other_turn=i - 1, seconds=round(overlap, 3)))
        return hits

    def _silence(self, call: Call) -> list[Hit]:
        hits, turns = [], call.turns
        for i in range(1, len(turns)):
            prev, cur = turns[i - 1], turns[i]
            if cur.speaker != "agent" or not (_timed(prev) and _timed(cur)):
                continue
            gap = cur.start - prev.end
            if gap <= self.spec.max_gap:
                continue
            last_agent = next((j for j in range(i - 1, -1, -1) if turns[j].speaker == "agent"), None)
            if last_agent is not None and self.matcher.matches(turns[last_agent].text):
                continue  # announced: 请稍等, 我帮您查一下
            hits.append(Hit(rule=self.id, turn=i, other_turn=i - 1, seconds=round(gap, 3)))
        return hits

    def _speech_rate(self, call: Call) -> list[Hit]:
        timed = [(i, t) for i, t in enumerate(call.turns) if t.speaker == "agent" and _timed(t) and t.end > t.start]
        seconds = sum(t.end - t.start for _, t in timed)
        if seconds < 5:  # too little agent speech to measure
            return []
        rate = 60 * sum(len(t.text) for _, t in timed) / seconds
        if self.spec.min <= rate <= self.spec.max:
            return []
        # The turn that is furthest out of range is the one a reviewer should listen to.
        per_turn = [(60 * len(t.text) / (t.end - t.start), i) for i, t in timed]
        _, worst = max(per_turn) if rate > self.spec.max else min(per_turn)
        return [Hit(rule=self.id, turn=worst, value=round(rate, 1))]
