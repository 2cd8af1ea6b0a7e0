"""Criteria written as examples: turns matched by the similarity of sentence embeddings (the ``semantic`` rule kind).

A :class:`SentenceEncoder` turns texts into unit vectors; :class:`OnnxSentenceEncoder` is the torch-free one every
bundle can carry (``sentence/model.onnx`` + ``tokenizer.json``, written by ``callqa.training.export.sentence``: a
pretrained encoder's first layers, mean-pooled). :class:`ExampleMatcher` scores a turn against a criterion's positive
examples and counter-examples: the cosine similarity to the closest example, less how much closer a counter-example
is. :class:`TurnEmbeddings` embeds a call's turns once, however many semantic rules ask; the encoder keeps the
vectors of the texts it saw last (a turn's vector depends on its text alone), so the scripted turns every call
repeats — greetings, "请稍等", closings — are embedded once per process.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


class SentenceEncoder(Protocol):
    """Texts → L2-normalised embeddings, one row each."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class OnnxSentenceEncoder:
    """A mean-pooled sentence encoder on onnxruntime (``model.onnx``: input_ids of one text → embedding; graphs
    exported before 2026-12-06 also take an attention_mask). ``layers`` and ``prefix`` (put before each text): from
    ``encoder.json`` — None and ``"query: "`` where the folder does not say, as such bundles were exported;
    ``prefix`` given here overrides it. ``remember``: how many texts' vectors it keeps."""

    def __init__(self, folder: str | Path, prefix: str | None = None, max_length: int = 128, threads: int | None = None,
                 remember: int = 4096):
        from tokenizers import Tokenizer

        from callqa.scorer import make_session

        folder = Path(folder)
        if not (folder / "model.onnx").exists() or not (folder / "tokenizer.json").exists():
            raise FileNotFoundError(f"{folder}: no sentence encoder here (model.onnx and tokenizer.json); a bundle "
                                    f"carries one when exported with `callqa export --sentence-encoder e5-small`")
        about = json.loads((folder / "encoder.json").read_text()) if (folder / "encoder.json").exists() else {}
        self.layers: int | None = about.get("layers")
        self.name = f"{about['base']}, {self.layers} layer(s)" if about else folder.name
        self.prefix = about.get("prefix", "query: ") if prefix is None else prefix
        self.max_length = max_length
        self._seen: OrderedDict[str, np.ndarray] = OrderedDict()
        self._remember, self._lock = remember, threading.Lock()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.session = make_session(folder / "model.onnx", threads)
        self._masked = "attention_mask" in {i.name for i in self.session.get_inputs()}
        self.dimensions = int(self._run(np.array([[0]], np.int64)).shape[-1])

    def _run(self, ids: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)} if self._masked else {"input_ids": ids}
        return self.session.run(None, feeds)[0][0]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), np.float32)
        with self._lock:
            known = {i: self._seen[t] for i, t in enumerate(texts) if t in self._seen}
            for i in known:
                self._seen.move_to_end(texts[i])
        new = [i for i in range(len(texts)) if i not in known]
        for i, vector in known.items():
            out[i] = vector
        if new:
            out[new] = self._embed([texts[i] for i in new])
            with self._lock:
                for i in new:
                    self._seen[texts[i]] = out[i].copy()  # not a view into the array the caller gets
                while len(self._seen) > self._remember:
                    self._seen.popitem(last=False)
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        # One text per run: no padding (a call's turns differ in length, and padding them to the longest cost 30 %
        # more), and a text's vector does not depend on the texts beside it — int8's dynamic quantization scales
        # activations per run, so a batch moved a turn's similarity by up to 0.01 (docs/scorecard.md) — which is
        # also what lets a remembered vector stand for a new one.
        out = np.zeros((len(texts), self.dimensions), np.float32)
        for i, e in enumerate(self.tokenizer.encode_batch([self.prefix + t for t in texts])):
            out[i] = self._run(np.array([e.ids], np.int64))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Match:
    """How a text meets a criterion: the score (similarity to the closest example, less a counter-example's lead)
    and the closest example."""

    score: float
    example: int
    counter: int | None


@dataclass
class ExampleMatcher:
    """A criterion's examples (and counter-examples) embedded once."""

    examples: np.ndarray
    counter_examples: np.ndarray

    @classmethod
    def of(cls, encoder: SentenceEncoder, examples: list[str], counter_examples: list[str]) -> ExampleMatcher:
        return cls(encoder.encode(list(examples)), encoder.encode(list(counter_examples)))

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        """Each row of ``vectors`` against each example (rows × examples): what :meth:`match` scores from, and what
        ``callqa scorecard check`` shows of a criterion's examples and counter-examples."""
        return vectors @ self.examples.T

    def match(self, vectors: np.ndarray) -> list[Match]:
        """One :class:`Match` per row of ``vectors``. A counter-example closer than every example lowers the score by
        its lead, so "我帮您转到售后部门" stays below a 推诿 criterion's threshold when it is written as a counter-example."""
        if not len(vectors):
            return []
        similar = self.similarity(vectors)
        best = similar.argmax(1)
        score = similar.max(1)
        counter = None
        if len(self.counter_examples):
            against = vectors @ self.counter_examples.T
            counter = against.argmax(1)
            score = score - np.maximum(against.max(1) - score, 0.0)
        return [Match(float(s), int(b), None if counter is None else int(counter[i]))
                for i, (s, b) in enumerate(zip(score, best))]


@dataclass
class TurnEmbeddings:
    """A call's turn embeddings, each turn embedded on first use and shared by every semantic rule that scores the
    call: the turns the rules look at (an agent's, mostly), once, in one batch per rule that needs new ones."""

    encoder: SentenceEncoder
    texts: list[str]
    _done: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __call__(self, turns: list[int]) -> np.ndarray:
        """The embeddings of ``turns`` (indices into the call's turns), one row each."""
        missing = [i for i in turns if i not in self._done]
        if missing:
            self._done.update(zip(missing, self.encoder.encode([self.texts[i] for i in missing])))
        if not turns:
            return np.zeros((0, 0), np.float32)
        return np.stack([self._done[i] for i in turns])
