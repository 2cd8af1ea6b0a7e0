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
            return float(np.dot(probs, head.values)) if head.spec.scale else float(probs[target])

        assert found.measure == ("expected" if head.spec.scale else f"p({head.class_ids[target]})")
        assert found.score == pytest.approx(measure(p), abs=1e-5)
        expected = [measure(p) - measure(a.probs[head.name]) for a in alone]
        np.testing.assert_allclose(found.turns, expected, atol=1e-5)
    assert any(abs(t) > 1e-4 for h in evidence.heads.values() for t in h.turns)  # turns do move the score


def test_a_one_turn_call_has_nothing_to_occlude():
    call = load_calls(SAMPLE)[0].model_copy(update={"turns": load_calls(SAMPLE)[0].turns[:1]})
    assert without_each_turn(call) == [] and occlusion_batch(call) == [call]


def test_a_long_call_is_occluded_in_blocks_each_turn_carrying_its_blocks_attribution(tiny_bundle):
    from callqa.evidence import blocks

    scorer = OnnxScorer.from_bundle(tiny_bundle, "model.onnx")
    schema = scorer.info.schema_
    call = next(c for c in load_calls(SAMPLE) if len(c.turns) >= 10)
    runs = blocks(len(call.turns), 3)
    assert len(runs) <= 3 and [t for r in runs for t in r] == list(range(len(call.turns)))
    batch = occlusion_batch(call, max_blocks=3)
    assert len(batch) == len(runs) + 1  # bounded: not one scoring per turn
    evidence = attributions(call, "tag", schema, scorer.predict(batch), max_blocks=3)
    assert evidence.block == len(runs[0]) > 1
    whole = scorer.predict([call])[0]
    for head in (h for h in schema.heads if h.spec.scale):
        expected = float(np.dot(whole.probs[head.name], head.values))
        for run in runs:
            reduced = call.model_copy(update={"turns": call.turns[: run.start] + call.turns[run.stop :]})
            alone = float(np.dot(scorer.predict([reduced])[0].probs[head.name], head.values))
            for t in run:
                assert evidence.heads[head.name].turns[t] == pytest.approx(expected - alone, abs=1e-5)


def test_the_explainer_computes_a_call_once_yields_to_scoring_and_stops_when_its_clients_leave(tiny_bundle):
    """serving/explainer.py on the real ONNX model: two waiters share one computation; while /score is busy nothing
    runs and the deadline gives up; a computation whose clients all left stops before its next chunk."""
    import asyncio

    from callqa.serving.explainer import ClientGone, Explainer

    scorer = OnnxScorer.from_bundle(tiny_bundle, "model.onnx")
    call = next(c for c in load_calls(SAMPLE) if len(c.turns) >= 12)
    busy = {"now": False}

    def make(seconds: float = 60) -> Explainer:
        async def run(chunk):
            return await asyncio.to_thread(scorer.predict, chunk)
        return Explainer(run, lambda: busy["now"], "tag", scorer.info.schema_, max_blocks=64, seconds=seconds, chunk=2)

    async def never_gone() -> bool:
        return False

    async def scenario():
        chunks = -(-len(occlusion_batch(call)) // 2)
        shared = make()
        first, second = await asyncio.gather(shared.explain(call, never_gone, poll=0.01),
                                             shared.explain(call, never_gone, poll=0.01))
        assert first == second and shared.chunks_run == chunks and not shared.computing

        busy["now"] = True
        held = make(seconds=0.3)
        with pytest.raises(TimeoutError):
            await held.explain(call, never_gone, poll=0.01)
        assert held.chunks_run == 0  # /score kept the model: evidence never ran
        busy["now"] = False

        left = make()
        calls_to_gone = {"n": 0}

        async def gone_after_first_poll() -> bool:
            calls_to_gone["n"] += 1
            return left.chunks_run >= 1
        with pytest.raises(ClientGone):
            await left.explain(call, gone_after_first_poll, poll=0.001)
        await asyncio.sleep(0.2)
        assert 1 <= left.chunks_run < chunks and not left.computing  # cancelled, not run to the end

    asyncio.run(scenario())


def test_score_is_answered_while_a_long_calls_evidence_is_computed(tiny_bundle, tmp_path):
    """On main a stored call of 400 turns took 120 s of evidence and /score waited behind it. Now the evidence runs
    in bounded blocks, a chunk at a time, only while /score leaves a run free: /score requests sent while it is
    computed are answered before it ends, each in a fraction of its time (a ratio within one run, not a timing)."""
    import json
    import time
    from concurrent.futures import ThreadPoolExecutor

    from servers import Server, start_server, stop

    from callqa.serving.store import KeyStore

    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    keys = {who: KeyStore(database).create(role, who)[0] for who, role in {"scorer": "scorer", "admin": "admin"}.items()}
    process, base, log = start_server(tiny_bundle, tmp_path, {"database": database, "precision": "fp32"})
    server = Server(base, log, process, keys, KeyStore(database))
    try:
        text = "您好请问有什么可以帮您我们马上为您处理这个问题"
        long_call = {"call_id": "long-400", "agent_id": "a-1", "turns": [
            {"speaker": "agent" if i % 2 else "customer", "text": f"{text[i % 7:]}{i}"} for i in range(400)]}
        status, _ = server.post("/score", {"calls": [long_call], "store": True})
        assert status == 200
        short = json.loads(SAMPLE.read_text(encoding="utf-8").splitlines()[3])

        def evidence():
            started = time.perf_counter()
            answer = server.get("/api/reviews/calls/long-400/evidence", key="admin")
            return answer, started, time.perf_counter()

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(evidence)
            time.sleep(0.3)
            latencies = []
            while not pending.done() and len(latencies) < 200:
                t0 = time.perf_counter()
                assert server.post("/score", {"calls": [short]})[0] == 200
                latencies.append((time.perf_counter() - t0, pending.done()))
            (status, body), started, ended = pending.result()
        assert status == 200, body[:300]
        found = json.loads(body)
        assert found["block"] > 1 and all(len(h["turns"]) == 400 for h in found["heads"].values())
        during = [t for t, finished in latencies if not finished]
        assert len(during) >= 3, latencies  # /score was answered while the evidence ran
        assert max(during) < 0.5 * (ended - started), (max(during), ended - started)
        # Computed once: the second request is the cached result.
        assert server.get("/api/reviews/calls/long-400/evidence", key="admin") == (200, body)
    finally:
        stop(process)
