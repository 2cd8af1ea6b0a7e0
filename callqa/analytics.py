"""来电分析: how a call went, measured from its turns' times and its metadata — the facts the month report's call
analytics aggregate by category, hour and weekday.

A voice call (channel ``phone`` or none given) is measured by talk time, silence between turns and interruptions; a
chat (any other channel: 在线, app, 微信…) by how fast the agent answers — a chat's "silence" is the customer
waiting, and its turns do not overlap. Transfers and repeat calls come from the call's metadata where the telephony
or CRM system recorded them (``meta.transfers``: a count; ``meta.repeat_call``: true when the customer called about
the same matter before); otherwise they are unknown, never guessed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from callqa.calls import Call, Turn
from callqa.schema import LabelSchema
from callqa.scores import CallScores

VOICE_CHANNELS = frozenset({"phone", "voice", "电话", "语音"})
# An overlap shorter than this is two people finishing and starting a sentence, not an interruption (抢话); the same
# default as the scorecard's interrupt rule.
OVERLAP_TOLERANCE = 0.5


class CallMeasures(BaseModel):
    """A call's measures; None where the call does not tell (no times, not in the metadata, not this channel)."""

    chat: bool = Field(description="a text channel: response times instead of talk time")
    duration: float | None = Field(default=None, description="seconds from the start to the last turn's end")
    talk_seconds: float | None = Field(default=None, description="voice: seconds someone was speaking")
    silence_seconds: float | None = Field(default=None, description="voice: seconds between turns with nobody speaking")
    interruptions: int | None = Field(default=None, description="voice: turns begun over the other side by more "
                                      "than the tolerance")
    transfers: int | None = Field(default=None, description="meta.transfers")
    repeat_call: bool | None = Field(default=None, description="meta.repeat_call")
    first_response: float | None = Field(default=None, description="chat: seconds from the customer's first message "
                                         "to the agent's first answer after it")
    avg_response: float | None = Field(default=None, description="chat: mean seconds a customer waited for an answer "
                                       "(from the first of their unanswered messages)")

    @classmethod
    def of(cls, call: Call) -> CallMeasures:
        chat = call.channel is not None and call.channel.lower() not in VOICE_CHANNELS
        timed = [t for t in call.turns if t.start is not None and t.end is not None]
        out = cls(chat=chat, transfers=_count(call.meta.get("transfers")), repeat_call=_flag(call.meta.get("repeat_call")))
        if len(timed) < len(call.turns) or not timed:
            return out  # times on some turns only: no measure would mean what it says
        out.duration = max(t.end for t in timed)
        if chat:
            out.first_response, out.avg_response = _responses(timed)
        else:
            out.talk_seconds, out.silence_seconds, out.interruptions = _voice(timed)
        return out


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _voice(turns: list[Turn]) -> tuple[float, float, int]:
    """(talk, silence, interruptions): speech is the union of the turns' spans, silence the gaps in it."""
    spans = sorted((t.start, t.end) for t in turns)
    talk, silence, reach = 0.0, 0.0, spans[0][0]
    for start, end in spans:
        if start > reach:
            silence += start - reach
        talk += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    interruptions = sum(1 for prev, cur in zip(turns, turns[1:])
                        if cur.speaker != prev.speaker and prev.end - cur.start > OVERLAP_TOLERANCE)
    return round(talk, 3), round(silence, 3), interruptions


def _responses(turns: list[Turn]) -> tuple[float | None, float | None]:
    """Each run of customer messages answered by the agent's next message: the delay from the run's first message."""
    delays, waiting_since = [], None
    for turn in turns:
        if turn.speaker == "customer":
            waiting_since = turn.start if waiting_since is None else waiting_since
        elif waiting_since is not None:
            delays.append(max(0.0, turn.start - waiting_since))
            waiting_since = None
    if not delays:
        return None, None
    return round(delays[0], 3), round(sum(delays) / len(delays), 3)


def _role_score(scores: CallScores | dict, schema: LabelSchema | None, role: str, field: str):
    """(head, the ``field`` of its score) for the schema's head with ``role``, from scores as stored or as objects;
    (head or None, None) where the schema names no such head or the scores lack it."""
    head = schema.with_role(role) if schema is not None else None
    found = (scores.get("scores", {}) if isinstance(scores, dict) else scores.scores).get(head.name) if head else None
    if found is None:
        return head, None
    return head, found.get(field) if isinstance(found, dict) else getattr(found, field, None)


def scaled(head, expected: float) -> float:
    """An expected score on ``head``'s scale, stretched over 0..1."""
    values = head.values
    return float((expected - values.min()) / ((values.max() - values.min()) or 1.0))


def predicted_satisfaction(scores: CallScores | dict, schema: LabelSchema | None) -> float | None:
    """The model's satisfaction on 0..1: the expected score of the schema's ``role: satisfaction`` head, scaled over
    its levels (None without such a head or score)."""
    head, expected = _role_score(scores, schema, "satisfaction", "expected")
    return None if expected is None else scaled(head, expected)


def survey_gap(predicted: float, satisfaction: float) -> float:
    """How far the model and the customer are apart, both on 0..1 (the customer's 1–5 stretched over it)."""
    return abs(predicted - (satisfaction - 1) / 4)


# The queue's 客户不同意 filter and the report count a call as disputed at this gap or more: a customer at 1 (非常不满意)
# against a model above 0.5, or at 5 against one below 0.5.
DISPUTED_GAP = 0.5


def predicted_resolved(scores: CallScores | dict, schema: LabelSchema | None) -> bool | None:
    """Whether the model predicts the call resolved: the schema's resolution head (``role: resolution``) at a level in
    the upper half of its scale (已解决 of 未解决/部分解决/已解决; 1 or 2 of −2..2). None when the schema names no such
    head or the scores lack it."""
    head, level = _role_score(scores, schema, "resolution", "level")
    if level is None or level not in head.classes:
        return None
    return head.class_ids.index(level) > (head.size - 1) / 2
