"""Deterministic train/validation/test splits: stratified on one head where possible, optionally grouped by agent.

Grouping keeps all of one agent's calls in one split, so a model is not scored on agents it was trained on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from callqa.calls import Call, Votes

SPLIT_NAMES = ("train", "validation", "test")


def majority_class(call: Call, head: str) -> str:
    """The class a call is stratified on: its value, the most-voted class, or its first topic; "∅" when unlabeled."""
    label = call.labels.get(head)
    if label is None or label == []:
        return "∅"
    if isinstance(label, Votes):
        return max(label.votes.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if isinstance(label, list):
        return sorted(label)[0]
    return str(label)


def _allocate(n: int, ratios: Sequence[float]) -> list[int]:
    """Split n items by ratios with largest remainders, so counts add up to n exactly."""
    exact = np.asarray(ratios, dtype=np.float64) * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def split_calls(
    calls: Sequence[Call],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: str | None = None,
    group_by_agent: bool = False,
) -> list[list[int]]:
    """Indices of ``calls`` for each split, in input order. Same input and seed → same split, on any machine."""
    keys = [(c.agent_id, majority_class(c, stratify) if stratify else "") for c in calls]
    return split_keys(keys, ratios, seed, group_by_agent)


def split_keys(
    keys: Sequence[tuple[str | None, str]],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group_by_agent: bool = False,
) -> list[list[int]]:
    """:func:`split_calls` from each call's (agent id, stratum) alone: what a split needs of a call, so a training
    set streamed from disk is split without holding its calls."""
    if any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be non-negative and sum to 1, got {list(ratios)}")
    rng = np.random.default_rng(seed)
    # Units are single calls, or all calls of one agent (a call without agent_id is its own unit).
    units: dict[str, list[int]] = defaultdict(list)
    for i, (agent_id, _) in enumerate(keys):
        key = f"agent:{agent_id}" if group_by_agent and agent_id else f"call:{i}"
        units[key].append(i)
    # A unit's stratum is the majority class over its calls.
    strata: dict[str, list[str]] = defaultdict(list)
    for key in sorted(units):
        classes = [keys[i][1] for i in units[key]]
        strata[max(sorted(set(classes)), key=classes.count)].append(key)

    parts: list[list[int]] = [[] for _ in ratios]
    for stratum in sorted(strata):
        members = strata[stratum]
        members = [members[i] for i in rng.permutation(len(members))]
        if group_by_agent:
            # Whole agents go, biggest first, to the split furthest below its share of this stratum.
            members.sort(key=lambda k: -len(units[k]))  # stable: the shuffle orders agents of equal size
            target = np.asarray(ratios) * sum(len(units[k]) for k in members)
            have = np.zeros(len(ratios))
            for key in members:
                j = int(np.argmax(target - have))
                parts[j].extend(units[key])
                have[j] += len(units[key])
        else:
            start = 0
            for j, count in enumerate(_allocate(len(members), ratios)):
                for key in members[start : start + count]:
                    parts[j].extend(units[key])
                start += count
    return [sorted(p) for p in parts]
