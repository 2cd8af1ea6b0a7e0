"""Per-turn evidence by occlusion: the batched computation equals scoring each reduced call on its own."""

from __future__ import annotations

import numpy as np
import pytest

from callqa.evidence import attributions, occlusion_batch, without_each_turn
from callqa.jsonl import load_calls
from callqa.scorer import OnnxScorer

from conftest import SAMPLE


def test_occlusion_in_one_batch_equals_scoring_each_reduced_call_alone(tiny_bundle):
    scorer = OnnxScorer.from_bundle(tiny_bundle, "model.onnx")
    schema = scorer.info.schema_
    call = load_calls(SAMPLE)[120]
    evidence = attributions(call, "tag", schema, scorer.predict(occlusion_batch(call)))
    assert evidence.call_id == call.call_id and set(evidence.heads) == set(schema.head_names)

    whole = scorer.predict([call])[0]
    alone = [scorer.predict([reduced])[0] for reduced in without_each_turn(call)]
    for head in schema.heads:
        found = evidence.heads[head.name]
        assert len(found.turns) == len(call.turns)
        p = whole.probs[head.name]
        target = int(np.argmax(p))

        def measure(probs, head=head, target=target) -> float:
            return float(np.dot(probs, head.values)) if head.spec.ordinal else float(probs[target])

        assert found.measure == ("expected" if head.spec.ordinal else f"p({head.class_ids[target]})")
        assert found.score == pytest.approx(measure(p), abs=1e-5)
        expected = [measure(p) - measure(a.probs[head.name]) for a in alone]
        np.testing.assert_allclose(found.turns, expected, atol=1e-5)
    assert any(abs(t) > 1e-4 for h in evidence.heads.values() for t in h.turns)  # turns do move the score


def test_a_one_turn_call_has_nothing_to_occlude():
    call = load_calls(SAMPLE)[0].model_copy(update={"turns": load_calls(SAMPLE)[0].turns[:1]})
    assert without_each_turn(call) == [] and occlusion_batch(call) == [call]
