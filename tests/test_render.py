"""Rendering and windowing: the model-input path that training and serving share."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from callqa.calls import Call, Turn
from callqa.render import CallEncoder, RenderSpec, aggregate_windows, pad_windows, render_call

LINES = ["您好，请问有什么可以帮您", "我家宽带从昨天开始一直掉线，打了三次电话都没人管", "非常抱歉给您带来不便，我马上帮您查询",
         "我的账号是二零一九年开的，套餐是一百二十九元的", "好的，已经为您派单，师傅今天下午上门"]


def long_call(n_chars: int = 3000) -> Call:
    turns, total, i = [], 0, 0
    while total < n_chars:
        text = LINES[i % len(LINES)] + f"（第{i}句）"
        turns.append(Turn(speaker="agent" if i % 2 == 0 else "customer", text=text))
        total += len(text)
        i += 1
    return Call(call_id="long", turns=turns)


def test_render_tags_speakers_one_turn_per_line():
    call = Call(call_id="c", turns=[Turn(speaker="agent", text=" 您好 "), Turn(speaker="customer", text="网断了")])
    assert render_call(call, RenderSpec()) == "客服：您好\n客户：网断了"


@pytest.mark.parametrize("max_length, stride", [(64, 16), (128, 0), (40, 8)])
def test_windows_of_a_3000_character_call_cover_every_token(tiny_tokenizer_file, max_length, stride):
    spec = RenderSpec(prefix="query: ", max_length=max_length, stride=stride, max_windows=1000)
    enc = CallEncoder.from_file(tiny_tokenizer_file, spec)
    call = long_call()
    body = enc.body_ids(call)
    assert len(render_call(call, spec)) >= 3000 and len(body) >= 3000
    out = enc.encode(call)
    tok = Tokenizer.from_file(str(tiny_tokenizer_file))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    prefix = tok.encode("query: ", add_special_tokens=False).ids
    assert len(prefix) > 0
    pieces = []
    for w in out.windows:
        assert len(w) <= max_length
        assert w[0] == cls and w[-1] == sep and w[1 : 1 + len(prefix)] == prefix  # prefix on every window
        pieces.append(w[1 + len(prefix) : -1])
    # Consecutive windows overlap by exactly `stride` tokens, and stitched together they are the whole call.
    stitched = list(pieces[0])
    for prev, cur in zip(pieces, pieces[1:]):
        if stride:
            assert prev[-stride:] == cur[:stride]
        stitched += cur[stride:]
    assert stitched == body
    assert sum(out.weights) == len(body) == out.n_tokens and not out.truncated
    assert all(len(p) == enc.body_length for p in pieces[:-1])  # every window but the last is full


def test_short_call_is_one_window_and_max_windows_truncates(tiny_tokenizer_file):
    enc = CallEncoder.from_file(tiny_tokenizer_file, RenderSpec(max_length=64, stride=8, max_windows=2))
    short = enc.encode(Call(call_id="s", turns=[Turn(speaker="agent", text="您好")]))
    assert len(short.windows) == 1 and short.weights == [short.n_tokens] and not short.truncated
    cut = enc.encode(long_call())
    assert len(cut.windows) == 2 and cut.truncated and sum(cut.weights) < cut.n_tokens


def test_shared_tokenizer_windows_with_e5_prefix(shared_encoder):
    enc = CallEncoder.from_file(shared_encoder, RenderSpec(prefix="query: ", max_length=128, stride=32))
    out = enc.encode(long_call())
    tok = Tokenizer.from_file(str(shared_encoder / "tokenizer.json"))
    for w in out.windows:
        assert len(w) <= 128 and w[0] == tok.token_to_id("<s>") and w[-1] == tok.token_to_id("</s>")
        assert tok.decode(w[:6]).startswith("query:")
    assert enc.pad_id == tok.token_to_id("<pad>") == 1


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="stride"):
        RenderSpec(max_length=64, stride=40)


def test_aggregate_windows_is_the_weighted_mean():
    logits = np.array([[1.0, 2.0, 3.0], [3.0, 0.0, -3.0], [0.0, 0.0, 6.0]])
    weights = np.array([2, 1, 1])
    np.testing.assert_allclose(aggregate_windows(logits, weights), (2 * logits[0] + logits[1] + logits[2]) / 4)
    np.testing.assert_allclose(aggregate_windows(logits[:1], [5]), logits[0])


def test_pad_windows():
    ids, mask = pad_windows([[5, 6, 7], [8]], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
