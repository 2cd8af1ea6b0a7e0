"""Calls → a Hugging Face ``datasets.Dataset`` of token windows and targets, and length-bucketed batches of it.

The map step is the core's :class:`callqa.render.CallEncoder` — the same code serving runs — so there is one
call-to-model-input path. Targets are the schema's distributions; a head a call lacks gets a zero target and mask 0.
A schema with turn heads adds each window's token → turn ids and, per turn head, a target and mask per turn (mask 0
for a turn without the label, of another speaker, or cut off by max_windows).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch

from callqa.calls import Call
from callqa.jsonl import CallFileError, LineError, iter_calls
from callqa.render import CallEncoder, pad_turn_ids, pad_windows
from callqa.schema import LabelSchema
from callqa.split import majority_class

Rows = list[dict] | datasets.Dataset  # rendered calls: in memory, or an Arrow file on disk (memory-mapped)

CALL_TABLE = pa.schema([("call_id", pa.string()), ("agent_id", pa.string()), ("stratum", pa.string()),
                        ("call", pa.string())])


def target_column(head: str) -> str:
    return f"target.{head}"


def mask_column(head: str) -> str:
    return f"mask.{head}"


def call_table(paths: Iterable[Path], schema: LabelSchema, stratify: str | None, path: Path) -> datasets.Dataset:
    """The calls of JSONL files written to an Arrow file at ``path`` as they are read, and opened memory-mapped: a
    training set larger than memory never is in memory. Columns: call_id, agent_id, stratum (the class a held-out
    split stratifies on), call (the validated call as JSON). Raises :class:`CallFileError` listing every bad line."""
    errors: list[LineError] = []
    calls = iter_calls(paths, schema, errors)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, CALL_TABLE) as writer:
        while chunk := list(islice(calls, 1000)):
            writer.write_batch(pa.record_batch([
                [c.call_id for c in chunk], [c.agent_id for c in chunk],
                [majority_class(c, stratify) if stratify else "" for c in chunk],
                [c.model_dump_json() for c in chunk]], schema=CALL_TABLE))
    if errors:
        raise CallFileError(errors)
    return datasets.Dataset.from_file(str(path))


def build_dataset(calls: list[Call] | datasets.Dataset, encoder: CallEncoder, schema: LabelSchema,
                  cache_file: Path | None = None, source_weights: dict[str, float] | None = None) -> datasets.Dataset:
    """One row per call: ``windows`` (token ids), ``weights``, ``n_tokens``, ``cost`` (padded tokens: windows ×
    longest window) and a target and mask per head; with turn heads also ``turn_ids`` (per window) and per turn
    head a list of per-turn targets and masks. ``calls`` is a list, or a :func:`call_table`; with ``cache_file``
    the rows are written there and memory-mapped instead of held in memory. ``source_weights`` weigh a call's labels
    in the loss by its ``meta.source`` (the mask is the weight instead of 1: a weighted mean over the batch)."""
    if not isinstance(calls, datasets.Dataset):
        calls = datasets.Dataset.from_dict({"call_id": [c.call_id for c in calls],
                                            "call": [c.model_dump_json() for c in calls]})
    fingerprint = hashlib.sha256(
        calls._fingerprint.encode() + encoder.tokenizer.to_str().encode() + encoder.spec.model_dump_json().encode()
        + schema.model_dump_json().encode() + (repr(sorted(source_weights.items())).encode() if source_weights else b"")
    ).hexdigest()[:32]

    def encode(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"windows": [], "weights": [], "n_tokens": [], "cost": []}
        for head in schema.all_heads:
            out[target_column(head.name)] = []
            out[mask_column(head.name)] = []
        if schema.turn_heads:
            out["turn_ids"] = []
        for text in batch["call"]:
            call = Call.model_validate_json(text)
            # Masks stay 0/1 integers without source weights (as before); with them, floats in every row, so that
            # each batch of the map writes one type.
            weight, none = (float(source_weights.get(str(call.meta.get("source")), 1.0)), 0.0) if source_weights else (1, 0)
            enc = encoder.encode(call)
            out["windows"].append(enc.windows)
            out["weights"].append(enc.weights)
            out["n_tokens"].append(enc.n_tokens)
            out["cost"].append(len(enc.windows) * max(len(w) for w in enc.windows))
            for head in schema.heads:
                target = head.target(call.labels.get(head.name))
                out[target_column(head.name)].append(
                    (target if target is not None else np.zeros(head.size, np.float32)).tolist()
                )
                out[mask_column(head.name)].append(weight if target is not None else none)
            if schema.turn_heads:
                out["turn_ids"].append(enc.turn_ids)
                reached = {t for ids in enc.turn_ids for t in ids if t >= 0}
                for head in schema.turn_heads:
                    targets = [head.target(t.labels.get(head.name)) if head.applies_to(t) and i in reached else None
                               for i, t in enumerate(call.turns)]
                    out[target_column(head.name)].append(
                        [(t if t is not None else np.zeros(head.size, np.float32)).tolist() for t in targets])
                    out[mask_column(head.name)].append([weight if t is not None else none for t in targets])
        return out

    return calls.map(encode, batched=True, remove_columns=[c for c in calls.column_names if c != "call_id"],
                     new_fingerprint=fingerprint, desc="rendering calls", load_from_cache_file=False,
                     cache_file_name=str(cache_file) if cache_file else None)


def column(rows: Rows, name: str) -> list:
    """One column of every row."""
    if isinstance(rows, datasets.Dataset):
        return rows.data.column(name).to_pylist() if rows._indices is None else rows[name][:]
    return [r[name] for r in rows]


def subset(rows: Rows, block: range) -> Rows:
    """The rows of a contiguous block, of the same kind as ``rows``."""
    if isinstance(rows, datasets.Dataset):
        return rows.select(block)
    return rows[block.start : block.stop]


def take(rows: Rows, indices: list[int]) -> list[dict]:
    """The rows at ``indices``: a batch read from the Arrow file, or picked from the list."""
    if isinstance(rows, datasets.Dataset):
        return rows.select(indices).to_list()
    return [rows[i] for i in indices]


@dataclass
class Batch:
    """Windows of several calls, flattened and padded, with what maps windows back to their call."""

    input_ids: torch.Tensor  # [W, T]
    attention_mask: torch.Tensor  # [W, T]
    call_index: torch.Tensor  # [W] which call of the batch each window belongs to
    weights: torch.Tensor  # [W] the window's weight in its call's mean
    n_calls: int
    targets: dict[str, torch.Tensor]  # head → [B, C]; turn head → [turns of the batch, C]
    masks: dict[str, torch.Tensor]  # head → [B]; turn head → [turns of the batch]
    turn_index: torch.Tensor | None = None  # [W, T] each token's turn among the batch's turns, −1 for none
    n_turns: int = 0

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.call_index), move(self.weights),
                     self.n_calls, {k: move(v) for k, v in self.targets.items()}, {k: move(v) for k, v in self.masks.items()},
                     None if self.turn_index is None else move(self.turn_index), self.n_turns)

    def model_inputs(self) -> dict:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "call_index": self.call_index,
                "weights": self.weights, "n_calls": self.n_calls, "turn_index": self.turn_index, "n_turns": self.n_turns}


def turn_counts(rows: Rows, schema: LabelSchema) -> list[int]:
    """Turns per call (0 for every call when the schema has no turn heads)."""
    if not schema.turn_heads:
        return [0] * len(rows)
    return [len(m) for m in column(rows, mask_column(schema.turn_heads[0].name))]


def collate(rows: list[dict], schema: LabelSchema, pad_id: int) -> Batch:
    windows = [w for row in rows for w in row["windows"]]
    ids, mask = pad_windows(windows, pad_id)  # dynamic padding: to the longest window of this batch only
    call_index = [i for i, row in enumerate(rows) for _ in row["windows"]]
    weights = [w for row in rows for w in row["weights"]]
    batch = Batch(
        input_ids=torch.from_numpy(ids),
        attention_mask=torch.from_numpy(mask),
        call_index=torch.tensor(call_index, dtype=torch.long),
        weights=torch.tensor(weights, dtype=torch.float32),
        n_calls=len(rows),
        targets={h.name: torch.tensor([r[target_column(h.name)] for r in rows], dtype=torch.float32) for h in schema.heads},
        masks={h.name: torch.tensor([r[mask_column(h.name)] for r in rows], dtype=torch.float32) for h in schema.heads},
    )
    if schema.turn_heads:
        # Number the batch's turns call after call; a token's turn id becomes its turn's number in the batch.
        offsets = np.cumsum([0, *turn_counts(rows, schema)])
        turn_ids = [[t + offsets[i] if t >= 0 else -1 for t in window] for i, row in enumerate(rows)
                    for window in row["turn_ids"]]
        batch.turn_index, batch.n_turns = torch.from_numpy(pad_turn_ids(turn_ids)), int(offsets[-1])
        for h in schema.turn_heads:
            batch.targets[h.name] = torch.tensor([t for r in rows for t in r[target_column(h.name)]],
                                                 dtype=torch.float32).reshape(-1, h.size)
            batch.masks[h.name] = torch.tensor([m for r in rows for m in r[mask_column(h.name)]], dtype=torch.float32)
    return batch


def row_targets(rows: Rows, head: str) -> np.ndarray:
    """[N, C] targets of one head; all-zero rows for calls that lack it (build_dataset writes zeros there)."""
    return np.array(column(rows, target_column(head)), dtype=np.float32)


def row_turn_targets(rows: list[dict], head: str) -> np.ndarray:
    """[all turns of all rows, C] targets of one turn head, call after call; zero rows where a turn lacks it."""
    return np.array([t for r in rows for t in r[target_column(head)]], dtype=np.float32)


def row_mask(rows: Rows, head: str) -> np.ndarray:
    """[N] True where a call carries the head."""
    return np.array(column(rows, mask_column(head)), dtype=bool)


def call_lengths(rows: Rows) -> list[int]:
    """Padded cost of a call: its windows × its longest window."""
    return column(rows, "cost")


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, shuffle: bool = True) -> list[list[int]]:
    """Batches of similar-length calls (little padding), in random order when ``shuffle``.

    Calls are shuffled, cut into pools of 50 batches, sorted by length within a pool, batched, and the batches
    shuffled: similar lengths share a batch without the batch order following length.
    """
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def iterate(rows: Rows, batches: list[list[int]], schema: LabelSchema, pad_id: int) -> Iterator[Batch]:
    """Batches of ``rows``: each batch's rows are read when it is due (from disk for a memory-mapped dataset)."""
    for indices in batches:
        yield collate(take(rows, indices), schema, pad_id)
