"""Import of the NTCIR-14 STC-3 Chinese dialogue-quality data (DCH-1) into the call format.

Each dialogue becomes a call; helpdesk turns are agent turns. A, S and E become vote distributions over −2..2
(one vote per annotator, so disagreement is kept as the target); the per-turn nugget labels are kept as votes on
each turn, under the stc3 schema's turn head for the turn's speaker (``customer_nugget`` or ``helpdesk_nugget``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from callqa.calls import Call, Turn, Votes

SPEAKERS = {"customer": "customer", "helpdesk": "agent"}
QUALITY_HEADS = ("A", "S", "E")
NUGGET_HEADS = {"customer": "customer_nugget", "agent": "helpdesk_nugget"}


class Stc3FormatError(ValueError):
    pass


def _votes(values: list[object]) -> Votes:
    return Votes(votes={str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: int(kv[0]))})


def convert_dialogue(item: dict, where: str) -> Call:
    try:
        turns = [
            Turn(speaker=SPEAKERS[t["sender"]], text="\n".join(u.strip() for u in t["utterances"] if u.strip()) or "…")
            for t in item["turns"]
        ]
        annotations = item.get("annotations") or []
        labels = {h: _votes([a["quality"][h] for a in annotations]) for h in QUALITY_HEADS} if annotations else {}
        for i, turn in enumerate(turns):
            nuggets = [a["nugget"][i] for a in annotations if i < len(a.get("nugget", []))]
            if nuggets:
                turn.labels[NUGGET_HEADS[turn.speaker]] = Votes(votes=dict(Counter(nuggets).most_common()))
    except (KeyError, TypeError, IndexError) as err:
        raise Stc3FormatError(f"{where}: not an STC-3 dialogue (missing or malformed {err})") from None
    return Call(
        call_id=f"stc3-{item['id']}",
        channel="weibo",
        turns=turns,
        labels=labels,
        meta={"source": "stc3", "annotators": len(annotations)},
    )


def read_stc3(path: str | Path) -> Iterator[Call]:
    """Calls from an STC-3 JSON file (a list of dialogues)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise Stc3FormatError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, list):
        raise Stc3FormatError(f"{path}: expected a JSON list of dialogues, got {type(data).__name__}")
    for i, item in enumerate(data):
        yield convert_dialogue(item, f"{path}[{i}]")
