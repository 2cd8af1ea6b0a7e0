"""Summary statistics of a call file: label distributions, token lengths, calls per agent and month."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

from callqa.calls import Call, Votes
from callqa.render import CallEncoder
from callqa.schema import LabelSchema

PERCENTILES = (50, 75, 90, 95, 99, 100)


@dataclass
class HeadStats:
    """For one head: how many calls carry it, how many as votes, and the class distribution.

    A call with votes adds its vote shares (summing to 1), so the distribution counts calls either way.
    """

    labeled: int = 0
    voted: int = 0
    mass: Counter = field(default_factory=Counter)


@dataclass
class CallStats:
    n_calls: int
    heads: dict[str, HeadStats]
    turns: np.ndarray
    chars: np.ndarray
    tokens: np.ndarray | None  # body tokens per call under a tokenizer, when one was given
    windows: np.ndarray | None
    per_agent: Counter
    per_month: Counter

    def percentiles(self, values: np.ndarray) -> dict[int, float]:
        return {p: float(np.percentile(values, p)) for p in PERCENTILES}


def call_stats(calls: list[Call], encoder: CallEncoder | None = None) -> CallStats:
    heads: dict[str, HeadStats] = {}
    for call in calls:
        for name, label in call.labels.items():
            if label is None:
                continue
            stats = heads.setdefault(name, HeadStats())
            stats.labeled += 1
            if isinstance(label, Votes):
                stats.voted += 1
                total = sum(label.votes.values())
                for class_id, count in label.votes.items():
                    stats.mass[class_id] += count / total
            elif isinstance(label, list):
                stats.mass.update(label)
            else:
                stats.mass[str(label)] += 1
    encoded = encoder.encode_batch(calls) if encoder else None
    return CallStats(
        n_calls=len(calls),
        heads=heads,
        turns=np.array([len(c.turns) for c in calls]),
        chars=np.array([sum(len(t.text) for t in c.turns) for c in calls]),
        tokens=np.array([e.n_tokens for e in encoded]) if encoded else None,
        windows=np.array([len(e.windows) for e in encoded]) if encoded else None,
        per_agent=Counter(c.agent_id or "(none)" for c in calls),
        per_month=Counter(c.started_at.strftime("%Y-%m") if c.started_at else "(none)" for c in calls),
    )


def _class_order(class_id: str) -> tuple[int, float, str]:
    try:
        return (0, float(class_id), "")
    except ValueError:
        return (1, 0.0, class_id)


def stats_tables(s: CallStats, schema: LabelSchema | None = None, max_length: int = 256) -> list[Table | str]:
    """`callqa data stats` as rich tables (and one line of text): labels per head, lengths, agents, months. With a
    schema, heads and classes carry their display names, in the schema's order, including classes no call has."""
    out: list[Table | str] = []
    for name, h in s.heads.items():
        head = schema[name] if schema is not None and name in schema.head_names else None
        title = f"labels · {name}" + (f" {head.display}" if head else "")
        t = Table(title=title, caption=f"{h.labeled} labeled · {h.voted} as votes · {s.n_calls - h.labeled} missing")
        t.add_column("class")
        if head:
            t.add_column("name")
        t.add_column("calls", justify="right")
        t.add_column("share", justify="right")
        total = sum(h.mass.values()) or 1.0
        classes = head.class_ids if head else sorted(h.mass, key=_class_order)
        for class_id in classes:
            mass = h.mass.get(class_id, 0.0)
            t.add_row(class_id, *([head.classes[class_id]] if head else []), f"{mass:.1f}", f"{mass / total:.1%}")
        out.append(t)

    lengths = Table(title="lengths per call (percentiles)")
    lengths.add_column("measure")
    for p in PERCENTILES:
        lengths.add_column("max" if p == 100 else f"p{p}", justify="right")
    rows = [("turns", s.turns), ("characters", s.chars)]
    if s.tokens is not None:
        rows += [("tokens", s.tokens), (f"windows of {max_length}", s.windows)]
    for label, values in rows:
        lengths.add_row(label, *(f"{v:.0f}" for v in s.percentiles(values).values()))
    out.append(lengths)
    if s.windows is not None:
        over = int((s.windows > 1).sum())
        out.append(f"{over} calls ({over / s.n_calls:.1%}) need more than one window of {max_length} tokens")

    for title, counter in (("calls per agent", s.per_agent), ("calls per month", s.per_month)):
        t = Table(title=title)
        t.add_column(title.split()[-1])
        t.add_column("calls", justify="right")
        items = sorted(counter.items()) if "month" in title else counter.most_common(15)
        for key, n in items:
            t.add_row(key, str(n))
        if "agent" in title and len(counter) > 15:
            t.add_row(f"… {len(counter) - 15} more", "")
        out.append(t)
    return out
