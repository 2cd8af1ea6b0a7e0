"""Scores calls with a bundle's ONNX graph on onnxruntime: the torch-free twin of training's ``predict_rows``, used
by serving, `reviews ingest`, export's gate and bench alike.

Calls are rendered and windowed by the core :class:`callqa.render.CallEncoder` (the code training used), the
windows of all calls in a batch are sorted by length and run in chunks padded only to their own longest window
(short calls don't pay for long ones), and call-level logits are the weighted window mean of
:func:`callqa.render.aggregate_windows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from callqa.bundle import BundleInfo, load_bundle
from callqa.calls import Call
from callqa.render import CallEncoder, EncodedCall, aggregate_windows, pad_windows


def make_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class CallPrediction:
    """One call's outputs: per head, probabilities over the schema's classes (softmax, or sigmoid for multilabel)."""

    probs: dict[str, np.ndarray]
    n_tokens: int
    n_windows: int
    truncated: bool


class OnnxScorer:
    def __init__(self, session: ort.InferenceSession, encoder: CallEncoder, info: BundleInfo,
                 max_batch_tokens: int = 8192):
        self.session = session
        self.encoder = encoder
        self.info = info
        self.schema = info.schema_
        self.max_batch_tokens = max_batch_tokens
        self._outputs = [f"logits.{h.name}" for h in self.schema.heads]

    @classmethod
    def from_bundle(cls, directory: str | Path, model_file: str | None = None, threads: int | None = None) -> OnnxScorer:
        info, encoder = load_bundle(directory)
        session = make_session(Path(directory) / (model_file or info.model_file), threads)
        return cls(session, encoder, info)

    def window_logits(self, windows: list[list[int]]) -> dict[str, np.ndarray]:
        """Per head, logits [W, C] for each window, in the order given; runs length-sorted, tightly padded chunks."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out = {h.name: np.zeros((len(windows), h.size), np.float32) for h in self.schema.heads}
        start = 0
        while start < len(order):
            # Grow the chunk while (rows × longest row) stays within the token budget; the longest is the last.
            end = start + 1
            while end < len(order) and (end + 1 - start) * len(windows[order[end]]) <= self.max_batch_tokens:
                end += 1
            chunk = order[start:end]
            ids, mask = pad_windows([windows[i] for i in chunk], self.encoder.pad_id)
            results = self.session.run(self._outputs, {"input_ids": ids, "attention_mask": mask})
            for head, logits in zip(self.schema.heads, results):
                out[head.name][chunk] = logits
            start = end
        return out

    def encode(self, calls: list[Call]) -> list[EncodedCall]:
        return self.encoder.encode_batch(calls)

    def predict_encoded(self, encoded: list[EncodedCall]) -> list[CallPrediction]:
        windows = [w for e in encoded for w in e.windows]
        return self.from_window_logits(encoded, self.window_logits(windows) if windows else {})

    def from_window_logits(self, encoded: list[EncodedCall], logits: dict[str, np.ndarray]) -> list[CallPrediction]:
        """Call predictions from the logits of all their windows, in order: weighted window mean, then softmax/sigmoid."""
        predictions, offset = [], 0
        for e in encoded:
            span = slice(offset, offset + len(e.windows))
            offset += len(e.windows)
            probs = {}
            for head in self.schema.heads:
                z = aggregate_windows(logits[head.name][span], np.asarray(e.weights))
                probs[head.name] = head.spec.activate(z)
            predictions.append(CallPrediction(probs, e.n_tokens, len(e.windows), e.truncated))
        return predictions

    def predict(self, calls: list[Call]) -> list[CallPrediction]:
        return self.predict_encoded(self.encode(calls))

    def predict_arrays(self, calls: list[Call]) -> dict[str, np.ndarray]:
        """Per head, probabilities [N, C]: the shape training's ``predict_rows`` returns, for metrics."""
        return stack_probs(self.predict(calls))


def stack_probs(predictions: list[CallPrediction]) -> dict[str, np.ndarray]:
    return {head: np.stack([p.probs[head] for p in predictions]) for head in predictions[0].probs}
