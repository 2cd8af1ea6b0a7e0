"""The scoring API, served for real: `bentoml serve` on a free loopback port with the tiny bundle.

Scores must equal the PyTorch scores of the same run; bad input gets a 4xx naming the field and the server keeps
serving; keys and roles are enforced; logs carry no transcript text or numbers; serving never loads torch.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from servers import Server, start_server, stop
from typer.testing import CliRunner

from callqa.bundle import read_bundle_info
from callqa.calls import Call
from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.pipeline import ScoringPipeline
from callqa.scorer import OnnxScorer
from callqa.serving.middleware import GuardMiddleware
from callqa.serving.store import KeyStore
from callqa.session import scorecard_for
from callqa.training.data import build_dataset
from callqa.training.evaluate import load_run
from callqa.training.trainer import predict_rows

from conftest import REPO, SAMPLE

SECRET_TEXT = "我的手机号是13812345678，身份证号11010519491231002X"


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    directory = tmp_path_factory.mktemp("server")
    database = f"sqlite:///{directory / 'callqa.db'}"
    store = KeyStore(database)
    keys = {role: store.create(role, f"test {role}")[0] for role in ("scorer", "reviewer", "metrics", "admin")}
    config = {"database": database, "precision": "fp32",
              "limits": {"max_calls": 8, "max_turns": 60, "max_turn_chars": 500, "max_call_chars": 3000,
                         "max_body_bytes": 200_000, "max_evidence_turns": 50}}
    process, base, log = start_server(tiny_bundle, directory, config)
    yield Server(base, log, process, keys, store)
    stop(process)


def sample_calls(n: int) -> list[dict]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[100 : 100 + n]
    return [json.loads(line) for line in lines]


def test_served_scores_equal_pytorch_scores_of_the_run(server, tiny_run):
    calls = sample_calls(6)
    status, body = server.post("/score", {"calls": calls})
    assert status == 200, body
    assert body["model"] == "callqa-scorer:tiny" and body["warning"] is None
    assert [r["call_id"] for r in body["results"]] == [c["call_id"] for c in calls]

    _, schema, model, encoder = load_run(tiny_run)
    rows = build_dataset(load_calls(SAMPLE)[100:106], encoder, schema).to_list()
    expected, _ = predict_rows(model, rows, schema, encoder.pad_id, 8, torch.device("cpu"))
    for i, result in enumerate(body["results"]):
        for head in schema.heads:
            score = result["scores"][head.name]
            if head.spec.multiple:
                got = [next(s["probability"] for s in score["labels"] if s["id"] == c) for c in head.class_ids]
            else:
                got = [score["distribution"][c] for c in head.class_ids]
                assert score["level"] == head.class_ids[int(np.argmax(got))]
                expected_score = float(np.dot(got, head.values)) if head.spec.scale else None  # the call type: no scale
                assert score["expected"] == pytest.approx(expected_score)
            np.testing.assert_allclose(got, expected[head.name][i], atol=1e-4)


def test_score_grades_each_call_on_the_scorecard_as_the_pipeline_does_and_can_skip_it(server, tiny_bundle):
    calls = sample_calls(4)
    status, body = server.post("/score", {"calls": calls})
    assert status == 200, body
    pipeline = ScoringPipeline(read_bundle_info(tiny_bundle), scorecard_for("default", tiny_bundle))
    local = pipeline.score(OnnxScorer.from_bundle(tiny_bundle, "model.onnx"), [Call.model_validate(c) for c in calls])
    for call, result, expected in zip(calls, body["results"], local):
        card = result["scorecard"]
        assert card["name"] == "default" and card["hash"] == expected.scorecard.hash and card["max_total"] == 100
        assert card["total"] == pytest.approx(expected.scorecard.total, abs=1e-3)
        items = [i for s in card["sections"] for i in s["items"]]
        assert card["total"] == (0 if card["red_line"] else pytest.approx(sum(i["points"] for i in items)))
        for deduction in (d for i in items for d in i["deductions"]):
            if deduction["start"] is not None:
                text = call["turns"][deduction["turn"]]["text"]
                assert text[deduction["start"]:deduction["end"]] == deduction["text"]
    assert any(i["deductions"] for r in body["results"] for s in r["scorecard"]["sections"] for i in s["items"])
    status, bare = server.post("/score", {"calls": calls, "scorecard": False})
    assert status == 200 and all(r["scorecard"] is None for r in bare["results"])
    assert server.post("/score", {"calls": calls, "scorecard": "no"})[0] == 400


def test_score_with_evidence_gives_each_turns_attribution_within_a_turn_budget(server, tiny_bundle):
    from callqa.evidence import attributions, occlusion_batch

    calls = sample_calls(2)
    status, body = server.post("/score", {"calls": calls, "evidence": True, "scorecard": False})
    assert status == 200, body
    scorer = OnnxScorer.from_bundle(tiny_bundle, "model.onnx")
    for call, result in zip(calls, body["results"]):
        parsed = Call.model_validate(call)
        local = attributions(parsed, "x", scorer.info.schema_, scorer.predict(occlusion_batch(parsed)))
        for head, found in result["evidence"]["heads"].items():
            np.testing.assert_allclose(found["turns"], local.heads[head].turns, atol=1e-4)
    plain = server.post("/score", {"calls": calls})[1]
    assert all(r["evidence"] is None for r in plain["results"])
    for got, want in zip(body["results"], plain["results"]):  # the same scores as without evidence
        assert got["scores"]["attitude"]["distribution"] == pytest.approx(want["scores"]["attitude"]["distribution"])
    status, body = server.post("/score", {"calls": sample_calls(8), "evidence": True})  # 79 turns
    assert status == 400 and "evidence:" in body["error"] and "limit of 50" in body["error"]


def test_concurrent_requests_each_get_their_own_answer(server):
    from concurrent.futures import ThreadPoolExecutor

    calls = sample_calls(12)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda c: server.post("/score", {"calls": [c]}), calls))
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:2]
    assert [body["results"][0]["call_id"] for _, body in answers] == [c["call_id"] for c in calls]
    alone = server.post("/score", {"calls": [calls[5]]})[1]["results"][0]["scores"]["attitude"]["distribution"]
    batched = answers[5][1]["results"][0]["scores"]["attitude"]["distribution"]
    assert batched == pytest.approx(alone, abs=1e-5)


def _call(**changes) -> dict:
    call = {"call_id": "bad-1", "turns": [{"speaker": "agent", "text": "您好"}, {"speaker": "customer", "text": "你好"}]}
    call.update(changes)
    return call


BAD_INPUTS = [
    ({"calls": []}, 400, "calls"),
    ({}, 400, "calls"),
    ({"calls": [_call(turns=[])]}, 400, "turns"),
    ({"calls": [_call(turns=[{"speaker": "agent", "text": "  "}])]}, 400, "text"),
    ({"calls": [_call(turns=[{"speaker": "robot", "text": "您好"}])]}, 400, "speaker"),
    ({"calls": [_call(turns=[{"speaker": "agent"}])]}, 400, "text"),
    ({"calls": [_call(call_id=7)]}, 400, "call_id"),
    ({"calls": "not a list"}, 400, "calls"),
    # This deployment's limits, stated in the OpenAPI document's schema and enforced by it.
    ({"calls": [_call(turns=[{"speaker": "agent", "text": "好" * 501}])]}, 400, "calls.0.turns.0.text: String should have at most 500 characters"),
    ({"calls": [_call(turns=[{"speaker": "agent", "text": "好"}] * 61)]}, 400, "calls.0.turns: List should have at most 60 items"),
    ({"calls": [_call(turns=[{"speaker": "agent", "text": "好" * 400}] * 10)]}, 400, "4000 characters in all"),
    ({"calls": [_call()] * 9}, 400, "calls: List should have at most 8 items"),
    ({"calls": [_call(extra_field=1)]}, 400, "extra_field"),
    ({"calls": [_call(turns=[{"speaker": "agent", "text": "您好", "start": -1}])]}, 400, "start"),
    (b'{"calls": [', 400, "JSON"),
    (b'{"calls": [{"call_id": "x", "turns": [{"speaker": "agent", "text": "\xff\xfe"}]}]}', 400, "JSON"),
    (b"x" * 250_000, 413, "limit"),
    # Strict, as docs/serving.md says: no unknown fields, no coercion of the request's own flags.
    ({"calls": [_call()], "redcat": True}, 400, "redcat"),
    ({"calls": [_call()], "store": "true"}, 400, "store"),
    ({"calls": [_call()], "redact": "yes"}, 400, "redact"),
    # Non-finite and out-of-range values, refused where they enter (they used to be stored and break the queue).
    (b'{"calls": [{"call_id": "x", "turns": [{"speaker": "agent", "text": "a", "start": 1e400}]}]}', 400,
     "calls.0.turns.0.start"),
    (b'{"calls": [{"call_id": "x", "turns": [{"speaker": "agent", "text": "a", "end": Infinity}]}]}', 400, "end"),
    (b'{"calls": [{"call_id": "x", "meta": {"score": NaN}, "turns": [{"speaker": "agent", "text": "a"}]}]}', 400,
     "meta"),
    ({"calls": [_call(started_at="9999-12-31T23:59:59-14:00")]}, 400, "started_at"),
    ({"calls": [_call(started_at="0001-01-01T00:00:00+14:00")]}, 400, "started_at"),
    # Call ids every review route can reach: no "/", no CR/LF or other control characters, at most 200 characters.
    ({"calls": [_call(call_id="a/b")]}, 400, "call_id"),
    ({"calls": [_call(call_id="a\r\nb")]}, 400, "call_id"),
    ({"calls": [_call(call_id="a\u202eb")]}, 400, "call_id"),
    ({"calls": [_call(call_id="c" * 201)]}, 400, "call_id"),
]


@pytest.mark.parametrize(("body", "status", "mentions"), BAD_INPUTS)
def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_keeps_serving(server, body, status, mentions):
    got, answer = server.post("/score", body)
    assert got == status, answer
    assert mentions in json.dumps(answer, ensure_ascii=False)
    assert server.post("/score", {"calls": sample_calls(1)})[0] == 200


def test_concurrent_requests_share_model_runs_and_each_gets_its_own_scores(server):
    """Requests arriving while the model runs are batched into its next run (serving/batcher.py): each response holds
    its own calls, scored as they are alone (the server scores fp32; int8 would move ~1e-4 with batch-mates)."""
    from concurrent.futures import ThreadPoolExecutor

    calls = sample_calls(12)
    alone = [server.post("/score", {"calls": [c], "scorecard": False})[1]["results"][0] for c in calls]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda c: server.post("/score", {"calls": [c], "scorecard": False}), calls))
    for call, single, (status, body) in zip(calls, alone, together):
        assert status == 200 and [r["call_id"] for r in body["results"]] == [call["call_id"]]
        for head, score in single["scores"].items():
            if "expected" in score:
                assert body["results"][0]["scores"][head]["expected"] == pytest.approx(score["expected"], abs=1e-5)


def test_api_keys_and_roles(server, tiny_bundle):
    calls = {"calls": sample_calls(1)}
    assert server.post("/score", calls, key=None)[0] == 401
    assert server.post("/score", calls, key="cqa_not-a-real-key")[0] == 401
    status, body = server.post("/score", calls, key="reviewer")
    assert status == 403 and "needs scorer" in body["error"]
    assert server.post("/score", calls, key="admin")[0] == 200
    assert server.post("/score", calls, headers={"X-API-Key": server.keys["scorer"]}, key=None)[0] == 200
    assert server.get("/api/model")[0] == 401
    status, info = server.get("/api/model", key="reviewer")
    info = json.loads(info)
    assert status == 200 and [h["display"] for h in info["schema"]["heads"]][0] == "服务态度"
    # The review UI's descriptors: one per call head, in order, with the bundle's tuned thresholds for labels.
    from callqa.bundle import read_bundle_info

    bundle = read_bundle_info(tiny_bundle)
    views = {h["name"]: h for h in info["heads"]}
    assert list(views) == [h["name"] for h in info["schema"]["heads"]]
    assert views["attitude"]["widget"] == "levels" and views["attitude"]["expected"] and not views["attitude"]["multiple"]
    assert views["topics"]["widget"] == "labels" and views["topics"]["multiple"] and views["topics"]["filterable"]
    assert list(views["topics"]["thresholds"].values()) == pytest.approx(bundle.thresholds["topics"])
    # Public: health and the OpenAPI spec. Metrics need a metrics (or admin) key.
    assert server.get("/healthz")[0] == 200
    assert server.get("/metrics")[0] == 401 and server.get("/metrics", key="scorer")[0] == 403
    status, metrics = server.get("/metrics", key="metrics")
    assert status == 200 and b'callqa_predicted_level_total{head="attitude"' in metrics
    # What padding costs: the model counts the real and the padding tokens it ran.
    counted = {kind: float(line.rsplit(" ", 1)[1]) for line in metrics.decode().splitlines()
               for kind in ("real", "padding") if line.startswith(f'callqa_model_tokens_total{{kind="{kind}"}}')}
    assert counted["real"] > 0 and counted["padding"] >= 0
    assert b'callqa_http_requests_total{method="POST",route="/score",status="200"}' in metrics


def test_revoked_key_stops_working(server, tiny_bundle):
    key, row = server.store.create("scorer", "short-lived")
    calls = {"calls": sample_calls(1)}
    assert server.post("/score", calls, key=key)[0] == 200
    server.store.revoke(row.id)
    deadline = time.time() + 40  # the server caches key lookups for 30 s
    while server.post("/score", calls, key=key)[0] == 200 and time.time() < deadline:
        time.sleep(2)
    assert server.post("/score", calls, key=key)[0] == 401


def test_logs_never_carry_transcript_text_or_numbers(server):
    call = _call(call_id="pii-1", turns=[{"speaker": "customer", "text": SECRET_TEXT}])
    assert server.post("/score", {"calls": [call], "redact": True})[0] == 200
    assert server.post("/score", {"calls": [call]})[0] == 200
    assert server.post("/score", {"calls": [_call(turns=[{"speaker": "robot", "text": SECRET_TEXT}])]})[0] == 400
    time.sleep(1)
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert "POST /score 200 in" in log  # the log is being written
    for secret in ("13812345678", "11010519491231002X", "手机号是"):
        assert secret not in log


def test_serving_never_loads_torch(server):
    import psutil  # a BentoML dependency

    root = psutil.Process(server.process.pid)
    pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
    assert len(pids) >= 2  # the supervisor, the worker that serves and scores
    loaded_onnxruntime = False
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        assert "libtorch" not in maps, f"process {pid} has torch loaded"
        loaded_onnxruntime |= "onnxruntime" in maps
    assert loaded_onnxruntime  # the check looked at the process that scores


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_from_the_openapi_spec_never_gets_a_5xx(server, data):
    spec = json.loads(server.get("/docs.json")[1])
    schema = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # $refs point at #/components/…: carry the spec's components along so they resolve against this document.
    valid_shape = from_schema({**schema, "components": spec.get("components", {})})
    anything = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                            max_leaves=20)
    body = data.draw(valid_shape | anything | st.fixed_dictionaries({"calls": anything}))
    status, _ = server.post("/score", json.dumps(body).encode())
    assert status in (200, 400, 413), (status, body)


def test_no_auth_is_refused_off_loopback(tiny_bundle):
    result = CliRunner().invoke(app, ["serve", "--bundle", str(tiny_bundle), "--no-auth", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "only binds loopback" in result.output


def test_middleware_with_auth_off_refuses_requests_to_a_non_loopback_address():
    import asyncio

    sent = []

    async def app_(scope, receive, send):
        sent.append("app")

    async def send(message):
        sent.append(message)

    guard = GuardMiddleware(app_, database="sqlite:///:memory:", auth=False, max_body_bytes=10_000)
    for host, reached in (("127.0.0.1", True), ("10.1.2.3", False)):
        sent.clear()
        scope = {"type": "http", "path": "/score", "method": "POST", "headers": [(b"content-length", b"2")],
                 "server": (host, 3000)}
        asyncio.run(guard(scope, None, send))
        assert (sent == ["app"]) is reached
        if not reached:
            assert sent[0]["status"] == 403


def test_serving_code_imports_without_torch(tiny_bundle):
    code = ("import sys; import callqa.serving.service, callqa.scorer, callqa.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'datasets')]; "
            "assert not bad, bad")
    env = dict(os.environ, CALLQA_BUNDLE=str(tiny_bundle))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_survey_system_posts_customer_feedback_with_a_scorer_key(server):
    """POST /api/feedback: 201 with how many were stored; bad answers are a 400 naming the field; a reviewer key may
    not post; the comment is stored redacted."""
    answer = {"call_id": "fb-1", "answered": "2026-03-05T14:30:00+08:00", "channel": "短信", "rating": "满意",
              "satisfaction": 4, "comment": "回电 13812345678"}
    status, body = server.post("/api/feedback", {"feedback": [answer, {**answer, "call_id": "fb-2"}]})
    assert status == 201 and body == {"added": 2}
    status, body = server.post("/api/feedback", {"feedback": [{**answer, "satisfaction": 9}]})
    assert status == 400 and body["error"].startswith("feedback.0.satisfaction")
    status, body = server.post("/api/feedback", {"feedback": [{**answer, "channel": "email"}]})
    assert status == 400 and "feedback.0.channel" in body["error"]
    assert server.post("/api/feedback", {"feedback": [answer]}, key="reviewer")[0] == 403
    from sqlalchemy import text

    with server.store.engine.connect() as conn:
        comments = [c for (c,) in conn.execute(text("select comment from feedback where call_id like 'fb-%'"))]
    assert len(comments) == 2 and all("13812345678" not in c and "[手机号]" in c for c in comments)
