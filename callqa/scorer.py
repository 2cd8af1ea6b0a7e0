"""Scores calls with a bundle's ONNX graph on onnxruntime: the torch-free twin of training's ``predict_rows``, used
by serving, `callqa score`, export's gate and bench alike.

Calls are rendered and windowed by the core :class:`callqa.render.CallEncoder` (the code training used), the
windows of all calls in a batch are sorted by length and run in chunks padded only to their own longest window
(short calls don't pay for long ones), and call-level logits are the weighted window mean of
:func:`callqa.render.aggregate_windows`. Turn heads come out of the graph per token (``token_logits.HEAD``) and are
averaged per turn by :func:`callqa.render.aggregate_turns`.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort

from callqa.bundle import BundleInfo, load_bundle
from callqa.calls import Call
from callqa.render import CallEncoder, EncodedCall, aggregate_turns, aggregate_windows, pad_windows
from callqa.schema import Head


def make_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class CallPrediction:
    """One call's outputs: per head, probabilities over the schema's classes (softmax, or sigmoid for multilabel);
    per turn head, one entry per turn: its probabilities, or None for a turn the head does not label (another
    speaker's) or the model did not reach (cut by max_windows)."""

    probs: dict[str, np.ndarray]
    n_tokens: int
    n_windows: int
    truncated: bool
    turn_probs: dict[str, list[np.ndarray | None]] = field(default_factory=dict)


@dataclass
class TokenCount:
    """Tokens the model computed (padded chunks) against the real ones: what padding wastes."""

    real: int = 0
    computed: int = 0

    @property
    def waste(self) -> float:
        """The share of computed tokens that were padding."""
        return 1 - self.real / self.computed if self.computed else 0.0

    def take(self) -> tuple[int, int]:
        """(real, computed) since the last take; counting starts afresh."""
        counted = self.real, self.computed
        self.real = self.computed = 0
        return counted


class OnnxScorer:
    def __init__(self, session: ort.InferenceSession, encoder: CallEncoder, info: BundleInfo,
                 max_batch_tokens: int = 8192, max_padding: float = 0.05):
        self.session = session
        self.tokens = TokenCount()  # since this scorer was made, or since the last take()
        self.encoder = encoder
        self.info = info
        self.schema = info.schema_
        self.max_batch_tokens, self.max_padding = max_batch_tokens, max_padding
        self._outputs = [f"logits.{h.name}" for h in self.schema.heads] + [f"token_logits.{h.name}" for h in self.schema.turn_heads]

    @classmethod
    def from_bundle(cls, directory: str | Path, model_file: str | None = None, threads: int | None = None) -> OnnxScorer:
        info, encoder = load_bundle(directory)
        session = make_session(Path(directory) / (model_file or info.model_file), threads)
        return cls(session, encoder, info)

    def window_logits(self, windows: list[list[int]]) -> dict[str, np.ndarray | list[np.ndarray]]:
        """Per call head, logits [W, C] for each window, in the order given; per turn head, each window's per-token
        logits [tokens, C]. Runs length-sorted, tightly padded chunks."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out: dict[str, np.ndarray | list] = {h.name: np.zeros((len(windows), h.size), np.float32) for h in self.schema.heads}
        out.update({h.name: [None] * len(windows) for h in self.schema.turn_heads})
        start = 0
        while start < len(order):
            # Grow the chunk while (rows × longest row) stays within the token budget and padding stays under
            # max_padding of the chunk's tokens; the longest row is the last (sorted), so each test is one product.
            end, real = start + 1, len(windows[order[start]])
            while end < len(order):
                rows, longest = end + 1 - start, len(windows[order[end]])
                if rows * longest > self.max_batch_tokens or rows * longest - (real + longest) > self.max_padding * rows * longest:
                    break
                real += longest
                end += 1
            chunk = order[start:end]
            ids, mask = pad_windows([windows[i] for i in chunk], self.encoder.pad_id)
            results = self.session.run(self._outputs, {"input_ids": ids, "attention_mask": mask})
            self.tokens.real += int(mask.sum())
            self.tokens.computed += mask.size
            for head, logits in zip(self.schema.heads, results):
                out[head.name][chunk] = logits
            for head, logits in zip(self.schema.turn_heads, results[len(self.schema.heads):]):
                for row, i in enumerate(chunk):
                    out[head.name][i] = logits[row, : len(windows[i])]
            start = end
        return out

    def encode(self, calls: list[Call]) -> list[EncodedCall]:
        return self.encoder.encode_batch(calls)

    def predict_encoded(self, encoded: list[EncodedCall], calls: list[Call] | None = None) -> list[CallPrediction]:
        windows = [w for e in encoded for w in e.windows]
        return self.from_window_logits(encoded, self.window_logits(windows) if windows else {}, calls)

    def from_window_logits(self, encoded: list[EncodedCall], logits: dict[str, np.ndarray | list[np.ndarray]],
                           calls: list[Call] | None = None) -> list[CallPrediction]:
        """Call predictions from the logits of all their windows, in order: weighted window mean, then softmax/sigmoid;
        turn heads: per-turn token mean, then softmax/sigmoid, for the turns of the head's speaker (``calls``)."""
        predictions, offset = [], 0
        for i, e in enumerate(encoded):
            span = slice(offset, offset + len(e.windows))
            offset += len(e.windows)
            probs = {}
            for head in self.schema.heads:
                z = aggregate_windows(logits[head.name][span], np.asarray(e.weights))
                probs[head.name] = head.spec.activate(z)
            turn_probs = {}
            for head in self.schema.turn_heads:
                p = head.spec.activate(aggregate_turns(logits[head.name][span], e.turn_ids, e.n_turns))
                turns = calls[i].turns if calls is not None else [None] * e.n_turns
                turn_probs[head.name] = [row if np.isfinite(row).all() and (t is None or head.applies_to(t)) else None
                                         for row, t in zip(p, turns)]
            predictions.append(CallPrediction(probs, e.n_tokens, len(e.windows), e.truncated, turn_probs))
        return predictions

    def predict(self, calls: list[Call]) -> list[CallPrediction]:
        return self.predict_encoded(self.encode(calls), calls)

    def predict_arrays(self, calls: list[Call]) -> dict[str, np.ndarray]:
        """Per head, probabilities [N, C]: the shape training's ``predict_rows`` returns, for metrics."""
        return stack_probs(self.predict(calls))


Work = TypeVar("Work")
Done = TypeVar("Done")


class ScoringThreads:
    """Model runs side by side: ``n`` threads, each scoring through its own :class:`OnnxScorer` on the given scorer's
    session (onnxruntime runs a session from several threads at once; a scorer each, so each counts its own tokens).

    Give the session one onnxruntime thread and ``n`` = cores (the default), as serving and `callqa score` do: a
    run on two threads meets at every operator's end and loses both cores whenever anything else takes one (the
    server's event loop, the next batch's parsing), where single-thread runs each lose only the time taken from
    them (docs/serving.md)."""

    def __init__(self, scorer: OnnxScorer, n: int | None = None):
        self.n = n or len(os.sched_getaffinity(0))  # default: every core this process may run on
        scorers: queue.SimpleQueue[OnnxScorer] = queue.SimpleQueue()
        for _ in range(self.n):  # fresh scorers: their counts are this work's alone
            scorers.put(OnnxScorer(scorer.session, scorer.encoder, scorer.info, scorer.max_batch_tokens, scorer.max_padding))
        self._local = threading.local()
        self.executor = ThreadPoolExecutor(self.n, thread_name_prefix="callqa-model",
                                           initializer=lambda: setattr(self._local, "scorer", scorers.get()))

    def submit(self, fn: Callable[[OnnxScorer, Work], Done], work: Work) -> Future[Done]:
        """``fn(scorer, work)`` on the next free thread, with that thread's scorer."""
        return self.executor.submit(lambda: fn(self._local.scorer, work))

    def map(self, fn: Callable[[OnnxScorer, Work], Done], works: Iterable[Work]) -> Iterator[Done]:
        """``fn(scorer, work)`` for every work, side by side; results in order (pending ones are cancelled if the
        caller stops reading, e.g. on Ctrl-C)."""
        return self.executor.map(lambda work: fn(self._local.scorer, work), works)

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)

    def __enter__(self) -> ScoringThreads:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def stack_probs(predictions: list[CallPrediction]) -> dict[str, np.ndarray]:
    return {head: np.stack([p.probs[head] for p in predictions]) for head in predictions[0].probs}


def stack_turn_probs(predictions: list[CallPrediction], head: Head) -> tuple[np.ndarray, np.ndarray]:
    """One turn head's probabilities over all turns of all calls, call after call ([T, C]; NaN rows for turns it has
    no prediction for), and each turn's call number [T]: the shape :func:`callqa.metrics.turn_head_metrics` takes."""
    rows = [row if row is not None else np.full(head.size, np.nan) for p in predictions for row in p.turn_probs[head.name]]
    dialogue = np.repeat(np.arange(len(predictions)), [len(p.turn_probs[head.name]) for p in predictions])
    return np.array(rows, dtype=np.float64).reshape(-1, head.size), dialogue


def turn_targets(calls: list[Call], head: Head) -> np.ndarray:
    """[T, C] a turn head's targets over all turns of all calls; zero rows where a turn lacks the label."""
    rows = [head.target(t.labels.get(head.name)) if head.applies_to(t) else None for c in calls for t in c.turns]
    return np.array([r if r is not None else np.zeros(head.size, np.float32) for r in rows], dtype=np.float64).reshape(-1, head.size)
