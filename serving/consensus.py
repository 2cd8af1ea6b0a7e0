"""What a calibration session (校准) shows when it closes, per head: each call's votes, the consensus and the spread,
each reviewer's deviation from the consensus, and Krippendorff's α over all the session's calls (the `krippendorff`
package: ordinal for a head whose levels are a scale, nominal otherwise)."""

from __future__ import annotations

import math
from collections import Counter

import krippendorff
import numpy as np
from pydantic import BaseModel, Field

from callqa.schema import Head


class CallConsensus(BaseModel):
    call_id: str
    votes: dict[str, int] = Field(description="class id → reviewers who chose it")
    consensus: str = Field(description="the majority class (a tie on a scale: the median level; else the first)")
    spread: float = Field(description="0 all agree … 1: the share of reviewers who chose otherwise than the consensus")


class ReviewerDeviation(BaseModel):
    reviewer: str
    labels: int
    deviation: float = Field(description="mean distance from the consensus: levels apart / (levels − 1) on a scale, "
                             "1 for a different class otherwise")


class HeadCalibration(BaseModel):
    head: str
    display: str
    alpha: float | None = Field(description="Krippendorff's α (None where it is undefined: one class only)")
    level: str = Field(description="ordinal or nominal: how α measures disagreement")
    calls: list[CallConsensus]
    reviewers: list[ReviewerDeviation]


def consensus_of(head: Head, votes: Counter) -> str:
    top = max(votes.values())
    tied = [c for c in head.class_ids if votes.get(c) == top]
    if len(tied) > 1 and head.spec.scale:
        levels = sorted(head.class_ids.index(c) for c, n in votes.items() for _ in range(n))
        return head.class_ids[levels[(len(levels) - 1) // 2]]  # the (lower) median level
    return tied[0]


def _distance(head: Head, a: str, b: str) -> float:
    if head.spec.scale:
        return abs(head.class_ids.index(a) - head.class_ids.index(b)) / max(1, head.size - 1)
    return float(a != b)


def calibrate(head: Head, labels: dict[str, dict[str, str]]) -> HeadCalibration:
    """``labels``: call id → reviewer → class id (the reviewers who labelled the call)."""
    calls, consensus = [], {}
    for call_id, by_reviewer in sorted(labels.items()):
        votes = Counter(by_reviewer.values())
        consensus[call_id] = consensus_of(head, votes)
        calls.append(CallConsensus(call_id=call_id, votes=dict(votes), consensus=consensus[call_id],
                                   spread=round(1 - votes[consensus[call_id]] / sum(votes.values()), 4)))
    reviewers = sorted({r for by_reviewer in labels.values() for r in by_reviewer})
    deviations = []
    for reviewer in reviewers:
        mine = [(call_id, by[reviewer]) for call_id, by in labels.items() if reviewer in by]
        distance = [_distance(head, label, consensus[call_id]) for call_id, label in mine]
        deviations.append(ReviewerDeviation(reviewer=reviewer, labels=len(mine), deviation=round(float(np.mean(distance)), 4)))
    level = "ordinal" if head.spec.scale else "nominal"
    return HeadCalibration(head=head.name, display=head.display, alpha=_alpha(head, labels, reviewers, level), level=level,
                           calls=calls, reviewers=deviations)


def _alpha(head: Head, labels: dict[str, dict[str, str]], reviewers: list[str], level: str) -> float | None:
    call_ids = sorted(labels)
    data = np.full((len(reviewers), len(call_ids)), np.nan)
    for j, call_id in enumerate(call_ids):
        for i, reviewer in enumerate(reviewers):
            if reviewer in labels[call_id]:
                data[i, j] = head.class_ids.index(labels[call_id][reviewer])
    if len(reviewers) < 2 or len(set(data[~np.isnan(data)].tolist())) < 2:
        return None  # one reviewer, or one class in all: agreement beyond chance is not defined
    value = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    return None if math.isnan(value) else round(float(value), 4)
