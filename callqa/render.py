"""Turning a call into model input — the one implementation that training and serving both call.

A call is rendered to text with speaker tags (``客服：…\\n客户：…``), tokenized with a ``tokenizers`` tokenizer
loaded from tokenizer.json, and cut into windows of at most ``max_length`` tokens that overlap by ``stride``
tokens. Every window is a complete encoder input: ``[CLS] prefix body-slice [SEP]`` (e5 encoders expect the
``query: `` prefix on every input). Call-level logits are the weighted mean of window logits
(:func:`aggregate_windows`), where a window's weight is the number of body tokens it adds that no earlier window
covered, so every token of the call counts once.

Every window also says which turn each of its tokens belongs to (``turn_ids``; −1 for special and prefix tokens):
a turn head's logits for a turn are the mean of its per-token logits over all the turn's tokens in all windows
(:func:`aggregate_turns`) — by linearity, the head applied to the mean of the turn's hidden states, which is how
training pools a turn.
"""

from __future__ import annotations

import bisect
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
    return spec.turn_separator.join(render_turns(call, spec))


def render_turns(call: Call, spec: RenderSpec) -> list[str]:
    """Each turn's line of :func:`render_call`, speaker tag included."""
    return [f"{spec.speaker_tags.get(t.speaker, '')}{t.text.strip()}" for t in call.turns]


@dataclass(frozen=True)
class EncodedCall:
    """A call's windows, ready for the encoder (unpadded); ``weights`` feed :func:`aggregate_windows`."""

    windows: list[list[int]]
    weights: list[int]
    n_tokens: int  # body tokens of the whole call, before any max_windows cut
    truncated: bool  # True when max_windows dropped the end of the call
    turn_ids: list[list[int]]  # per window, per token: the turn it belongs to, −1 for special and prefix tokens
    n_turns: int


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

    def body(self, call: Call) -> tuple[list[int], list[int]]:
        """The call's body tokens and, per token, the turn whose line holds its last character."""
        lines = render_turns(call, self.spec)
        starts, at = [], 0
        for line in lines:
            starts.append(at)
            at += len(line) + len(self.spec.turn_separator)
        encoding = self.tokenizer.encode(self.spec.turn_separator.join(lines), add_special_tokens=False)
        turns = [max(bisect.bisect_right(starts, max(end - 1, 0)) - 1, 0) for _, end in encoding.offsets]
        return encoding.ids, turns

    def encode(self, call: Call) -> EncodedCall:
        body, body_turns = self.body(call)
        step = self.body_length - self.spec.stride
        windows, weights, turn_ids = [], [], []
        covered = 0
        start = 0
        while True:
            piece = body[start : start + self.body_length]
            windows.append(self._wrap(piece))
            turn_ids.append(self._wrap_turns(body_turns[start : start + self.body_length]))
            weights.append(start + len(piece) - covered)
            covered = start + len(piece)
            if covered >= len(body) or len(windows) == self.spec.max_windows:
                break
            start += step
        weights[0] = max(weights[0], 1)  # a call whose text tokenizes to nothing still gets a defined mean
        return EncodedCall(windows, weights, len(body), truncated=covered < len(body), turn_ids=turn_ids,
                           n_turns=len(call.turns))

    def _wrap_turns(self, turns: list[int]) -> list[int]:
        """Turn ids aligned with :meth:`_wrap`'s window: −1 where it adds special or prefix tokens."""
        n_head = min(len(self._specials), 1) + len(self._prefix)
        n_tail = max(len(self._specials) - 1, 0)
        return [-1] * n_head + turns + [-1] * n_tail

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


def pad_turn_ids(turn_ids: list[list[int]]) -> np.ndarray:
    """Turn ids padded like :func:`pad_windows` pads tokens; padding belongs to no turn (−1)."""
    width = max(len(t) for t in turn_ids)
    out = np.full((len(turn_ids), width), -1, dtype=np.int64)
    for i, t in enumerate(turn_ids):
        out[i, : len(t)] = t
    return out


def aggregate_turns(token_logits: list[np.ndarray], turn_ids: list[list[int]], n_turns: int) -> np.ndarray:
    """Turn-level logits [n_turns, C]: per turn, the mean of its tokens' logits over every window that holds them
    (``token_logits``: per window [tokens, C], padding allowed past the window's length). A turn no window reached
    (cut by max_windows) is NaN. training/model.py pools turns the same way in torch; a test holds them equal."""
    size = token_logits[0].shape[-1] if token_logits else 0
    sums = np.zeros((n_turns, size), dtype=np.float64)
    counts = np.zeros(n_turns, dtype=np.float64)
    for logits, ids in zip(token_logits, turn_ids, strict=True):
        ids = np.asarray(ids)
        real = ids >= 0
        np.add.at(sums, ids[real], np.asarray(logits, dtype=np.float64)[: len(ids)][real])
        np.add.at(counts, ids[real], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def aggregate_windows(window_logits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Call-level logits: the weight-normalised mean of the call's window logits (windows on axis 0).

    training/model.py applies the same formula in torch; a test holds the two equal.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return np.tensordot(w, np.asarray(window_logits, dtype=np.float64), axes=(0, 0))
