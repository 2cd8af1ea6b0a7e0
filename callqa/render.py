"""Turning a call into model input — the one implementation that training and serving both call.

A call is rendered to text with speaker tags (``客服：…\\n客户：…``), tokenized with a ``tokenizers`` tokenizer
loaded from tokenizer.json, and cut into windows of at most ``max_length`` tokens that overlap by ``stride``
tokens. Every window is a complete encoder input: ``[CLS] prefix body-slice [SEP]`` (e5 encoders expect the
``query: `` prefix on every input). Call-level logits are the weighted mean of window logits
(:func:`aggregate_windows`), where a window's weight is the number of body tokens it adds that no earlier window
covered, so every token of the call counts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import Tokenizer

from callqa.calls import Call


class RenderSpec(BaseModel):
    """How a call becomes encoder input. Saved with every run and bundle: serving renders exactly as training did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(default="", description='text before every window, e.g. "query: " for e5 encoders')
    speaker_tags: dict[str, str] = Field(default_factory=lambda: {"agent": "客服：", "customer": "客户："})
    turn_separator: str = "\n"
    max_length: int = Field(default=256, ge=8, le=8192, description="tokens per window, special tokens included")
    stride: int = Field(default=64, ge=0, description="tokens shared by consecutive windows")
    max_windows: int = Field(default=16, ge=1, description="longer calls keep their first max_windows windows")

    @model_validator(mode="after")
    def _stride_fits(self) -> RenderSpec:
        if self.stride >= self.max_length // 2:
            raise ValueError(f"stride ({self.stride}) must be less than half of max_length ({self.max_length})")
        return self


def render_call(call: Call, spec: RenderSpec) -> str:
    """The call as one text: each turn on its own line, tagged with who spoke."""
    return spec.turn_separator.join(f"{spec.speaker_tags.get(t.speaker, '')}{t.text.strip()}" for t in call.turns)


@dataclass(frozen=True)
class EncodedCall:
    """A call's windows, ready for the encoder (unpadded); ``weights`` feed :func:`aggregate_windows`."""

    windows: list[list[int]]
    weights: list[int]
    n_tokens: int  # body tokens of the whole call, before any max_windows cut
    truncated: bool  # True when max_windows dropped the end of the call


class CallEncoder:
    """Renders, tokenizes and windows calls with one tokenizer and one :class:`RenderSpec`."""

    def __init__(self, tokenizer: Tokenizer, spec: RenderSpec):
        self.tokenizer = tokenizer
        self.spec = spec
        # Special tokens come from the tokenizer's own template: [CLS] … [SEP] for BERT, <s> … </s> for XLM-R.
        self._specials = self.tokenizer.encode("", add_special_tokens=True).ids
        self._prefix = self.tokenizer.encode(spec.prefix, add_special_tokens=False).ids if spec.prefix else []
        self.body_length = spec.max_length - len(self._specials) - len(self._prefix)
        if self.body_length <= spec.stride:
            raise ValueError(
                f"max_length {spec.max_length} leaves {self.body_length} body tokens after special tokens and prefix, "
                f"not more than stride {spec.stride}"
            )
        self.pad_id = self._pad_id()

    @classmethod
    def from_file(cls, tokenizer_json: str | Path, spec: RenderSpec) -> CallEncoder:
        path = Path(tokenizer_json)
        if not path.exists() and not path.suffix:
            raise FileNotFoundError(f"no encoder at {path}: run `callqa model pull e5-small`")
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no tokenizer.json (a fast tokenizer file is required)")
        return cls(Tokenizer.from_file(str(path)), spec)

    def _pad_id(self) -> int:
        padding = self.tokenizer.padding
        if padding and padding.get("pad_id") is not None:
            return int(padding["pad_id"])
        for token in ("<pad>", "[PAD]"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def _wrap(self, body: list[int]) -> list[int]:
        if not self._specials:
            return self._prefix + body
        head, tail = self._specials[:1], self._specials[1:]
        return head + self._prefix + body + tail

    def body_ids(self, call: Call) -> list[int]:
        return self.tokenizer.encode(render_call(call, self.spec), add_special_tokens=False).ids

    def encode(self, call: Call) -> EncodedCall:
        body = self.body_ids(call)
        step = self.body_length - self.spec.stride
        windows, weights = [], []
        covered = 0
        start = 0
        while True:
            piece = body[start : start + self.body_length]
            windows.append(self._wrap(piece))
            weights.append(start + len(piece) - covered)
            covered = start + len(piece)
            if covered >= len(body) or len(windows) == self.spec.max_windows:
                break
            start += step
        weights[0] = max(weights[0], 1)  # a call whose text tokenizes to nothing still gets a defined mean
        return EncodedCall(windows, weights, len(body), truncated=covered < len(body))

    def encode_batch(self, calls: list[Call]) -> list[EncodedCall]:
        return [self.encode(call) for call in calls]


def pad_windows(windows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad windows to the longest one: (input_ids, attention_mask) as int64 arrays."""
    width = max(len(w) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for i, w in enumerate(windows):
        ids[i, : len(w)] = w
        mask[i, : len(w)] = 1
    return ids, mask


def aggregate_windows(window_logits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Call-level logits: the weight-normalised mean of the call's window logits (windows on axis 0).

    training/model.py applies the same formula in torch; a test holds the two equal.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return np.tensordot(w, np.asarray(window_logits, dtype=np.float64), axes=(0, 0))
