"""Summary statistics of a call file: label distributions, token lengths, calls per agent and month."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from callqa.calls import Call, Votes
from callqa.render import CallEncoder

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
