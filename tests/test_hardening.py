"""The defects a probe of a running `callqa serve` found (issue 13), each held by a test against a real server:
bounded, authenticated metrics; non-finite and out-of-range values refused at input; reachable call ids; strict
bodies; one log line per request without values; random key ids; security headers; one-line CLI errors."""

from __future__ import annotations

import http.client
import json
import re
import socket

import pytest
from servers import Server, start_server, stop
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from callqa.cli import app
from callqa.serving.store import PREFIX, KeyStore, ReviewStore
from callqa.serving.store.calls import CallRow
from callqa.serving.store.keys import ApiKey

from conftest import SAMPLE

PHONE = "13700003333"


def sample_calls(n: int, start: int = 250) -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[start : start + n]]


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hardening")
    database = f"sqlite:///{directory / 'callqa.db'}"
    store = KeyStore(database)
    roles = {"scorer": "scorer", "reviewer": "reviewer", "metrics": "metrics", "admin": "admin"}
    keys = {who: store.create(role, who)[0] for who, role in roles.items()}
    config = {"database": database, "precision": "fp32", "review": {"sample_rate": 0.0}}
    process, base, log = start_server(tiny_bundle, directory, config)
    server = Server(base, log, process, keys, store)
    server.database = database
    yield server
    stop(process)


def raw_request(server: Server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """A request sent as given: no client-side quoting of the path, any content type."""
    host, port = server.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in {"content-length": str(len(body)), **(headers or {})}.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    answer = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return answer


def test_metrics_need_a_key_and_stay_bounded_whatever_paths_clients_invent(server):
    """Before: BentoML labelled its HTTP metrics by raw path: 6,000 requests to random call ids grew /metrics from
    1 MB to 25 MB, with the ids (phone numbers) as labels, readable by anyone."""
    assert server.get("/metrics")[0] == 401
    before = len(server.get("/metrics", key="metrics")[1])
    for i in range(150):
        server.get(f"/api/reviews/calls/{PHONE}{i:03d}")  # unauthenticated: 401
        server.get(f"/no/such/path/{i}")  # 404
    status, metrics = server.get("/metrics", key="metrics")
    assert status == 200 and PHONE.encode() not in metrics and b"/no/such" not in metrics
    assert b'route="/api/reviews/calls/{call_id}",status="401"' in metrics
    assert b'route="(no route)",status="404"' in metrics
    assert len(metrics) < before + 20_000, (before, len(metrics))  # a few new series, not 300


def test_a_refused_request_is_one_log_line_with_fields_and_no_values(server):
    """Before: every 400 logged a traceback quoting pydantic's input_value (the customer's phone number), the
    access log wrote call ids from paths, and a path with %0A forged a log line of its own."""
    call = {"call_id": f"id-{PHONE}", "turns": [{"speaker": "robot", "text": f"我的手机{PHONE}"}]}
    assert server.post("/score", {"calls": [call]})[0] == 400
    assert server.get(f"/api/reviews/calls/{PHONE}", key="reviewer")[0] == 404
    raw_request(server, "GET", "/x%0A2026-11-23T00:00:00%20FORGED-line%0D%0A")
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert PHONE not in log and "Traceback" not in log and "input_value" not in log
    assert not [line for line in log.splitlines() if "FORGED" in line]
    refused = [line for line in log.splitlines() if "POST /score 400" in line]
    assert len(refused) == 1 and "fields: calls.0.turns.0.speaker" in refused[0]
    assert any("GET /api/reviews/calls/{call_id} 404" in line for line in log.splitlines())


def test_the_review_body_is_strict_and_bounded_and_takes_labels_as_the_call_format_does(server, tmp_path):
    call = sample_calls(1, start=260)[0]
    assert server.post("/score", {"calls": [call], "store": True})[1]["stored"] == 1
    reviews = f"/api/reviews/calls/{call['call_id']}/reviews"
    for body, field in (({"revision": "0", "labels": {"attitude": "2"}}, "revision"),
                        ({"revision": 2**63, "labels": {"attitude": "2"}}, "revision"),
                        ({"revision": 0, "labels": {"attitude": "2"}, "extra": 1}, "extra"),
                        ({"revision": 0, "labels": {"attitude": 2.5}}, "labels.attitude")):
        status, answer = server.post(reviews, body, key="reviewer")
        assert status == 400 and answer["error"].startswith(field), (body, answer)
    status, saved = server.post(reviews, {"revision": 0, "labels": {"attitude": 2, "resolution": "partly"}},
                                key="reviewer")
    assert status == 201, saved
    out = tmp_path / "reviews.jsonl"
    assert CliRunner().invoke(app, ["reviews", "export", "-o", str(out), "--db", server.database]).exit_code == 0
    labels = json.loads(out.read_text(encoding="utf-8").splitlines()[0])["labels"]
    assert labels == {"attitude": 2, "resolution": "partly"}  # levels in the schema's own type


def test_next_never_leaves_a_lease_behind_on_a_call_it_cannot_show(server):
    """A row stored before input was checked (a start of 1e400 became inf) cannot be rendered as JSON. /next used to
    lease it and fail, so the call stayed leased to the reviewer and every `n` was a 500."""
    call = sample_calls(1, start=270)[0]
    assert server.post("/score", {"calls": [call], "store": True})[1]["stored"] == 1
    store = ReviewStore(server.database)
    with Session(store.engine) as session, session.begin():
        for row in session.query(CallRow).filter(CallRow.revision == 0):
            row.lease_owner = row.lease_until = None
            if row.call_id == call["call_id"]:
                broken = json.loads(json.dumps(row.call))
                broken["turns"][0]["start"] = float("inf")
                row.call = broken
            else:
                row.revision = 99  # out of the queue: the broken call is the only one left
    status, answer = server.post("/api/reviews/next", {}, key="reviewer")
    assert status == 500 and "released" in answer["error"]
    status, answer = server.get(f"/api/reviews/calls/{call['call_id']}", key="reviewer")
    assert status == 500 and json.loads(answer) == {"error": "the server failed; see its log"}
    with Session(store.engine) as session, session.begin():
        row = session.get(CallRow, call["call_id"])
        assert row.lease_owner is None
        session.delete(row)  # the other tests share this server
        for row in session.query(CallRow).filter(CallRow.revision == 99):
            row.revision = 0


def test_the_review_ui_is_served_with_security_headers(server):
    status, headers, _ = raw_request(server, "GET", "/review/")
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_a_body_that_is_not_json_is_a_415_not_a_500(server):
    for content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        status, _, body = raw_request(server, "POST", "/score", b"calls=1&store=Infinity",
                                      {"content-type": content_type, "authorization": f"Bearer {server.keys['scorer']}"})
        assert status == 415 and b"application/json" in body


def rerun_data_revision(url: str) -> None:
    """As if the store were written before the data revisions: down to 0002, then `callqa db upgrade`, which runs
    0003 (key ids, report columns) and 0004 (rule counts, every reviewed call's score of record) on its rows."""
    from alembic import command

    from callqa.serving.store import migrations, open_engine

    engine = open_engine(url)
    with engine.begin() as connection:
        command.downgrade(migrations._config(connection), "0002")
    migrations.upgrade(engine)
    engine.dispose()


def test_key_ids_are_random_and_old_ids_cut_from_the_secret_are_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = KeyStore(url)
    key, row = store.create("reviewer", "Anna")
    assert not key.startswith(row.id) and row.id[4:] not in key
    # A key made by the old code: its id was its first 12 characters; a review and a lease name it.
    old_key = PREFIX + "abcdefgh" + "x" * 35
    with Session(store.engine) as session, session.begin():
        session.add(ApiKey(id=old_key[:12], sha256=__import__("hashlib").sha256(old_key.encode()).hexdigest(),
                           role="reviewer", name="Bo", created=row.created))
    reviews = ReviewStore(url)
    with Session(reviews.engine) as session, session.begin():
        session.execute(__import__("sqlalchemy").text(
            "INSERT INTO review_calls (call_id, turns, added, model, entropy, margin, sample_key, revision, "
            "lease_owner, call) VALUES ('c1', 1, '2026-01-01', 'm', 0, 0, 0.5, 0, :old, '{}')"), {"old": old_key[:12]})
    rerun_data_revision(url)  # `callqa db upgrade` of a store from before: revision 0003 renames the key
    holder = KeyStore(url).lookup(old_key)
    assert holder is not None and holder.name == "Bo" and not old_key.startswith(holder.id)
    with Session(reviews.engine) as session:
        assert session.get(CallRow, "c1").lease_owner == holder.id


def test_serve_errors_are_one_line(tiny_bundle, tmp_path):
    result = CliRunner().invoke(app, ["serve", "--bundle", "/nonexistent"])
    assert result.exit_code == 1 and result.output.strip() == "error: /nonexistent: no such bundle folder"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--bundle", str(tiny_bundle), "--port", str(port),
                                          "--db", f"sqlite:///{tmp_path / 'db.sqlite'}"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert re.match(rf"error: cannot listen on 127\.0\.0\.1:{port}: .*in use", result.output)


def test_the_served_spec_documents_every_route_with_its_keys_and_loads_nothing_from_outside(server):
    from callqa import __version__
    from callqa.schema import load_schema
    from callqa.serving.review_routes import review_routes

    spec = json.loads(server.get("/docs.json")[1])
    assert spec["openapi"] == "3.1.0" and spec["info"]["version"].startswith(__version__)
    assert "callqa-scorer:tiny" in spec["info"]["version"]
    served = {f"/api/reviews{r.path}" for r in review_routes(lambda: None, load_schema("callcenter"))}
    assert served <= set(spec["paths"]) and {"/score", "/api/model", "/metrics"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    score = spec["paths"]["/score"]["post"]
    assert {"200", "400", "401", "403", "413", "415"} <= set(score["responses"])
    assert spec["paths"]["/api/reviews/calls/{call_id}/reviews"]["post"]["responses"].keys() >= {"201", "409", "423"}
    status, _, page = raw_request(server, "GET", "/")
    assert status == 200 and b"swagger-ui-bundle.js" in page and b"googletagmanager" not in page
    assert b"https://" not in page and b"/docs.json" in raw_request(server, "GET", "/docs.js")[2]


def test_a_client_generated_from_the_spec_scores_a_call(server, tmp_path):
    import importlib
    import subprocess
    import sys

    (tmp_path / "spec.json").write_bytes(server.get("/docs.json")[1])
    done = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path",
                           str(tmp_path / "spec.json"), "--output-path", str(tmp_path / "client"), "--meta", "none"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("client")
        post_score = importlib.import_module("client.api.default.post_score")
        models = importlib.import_module("client.models")
        client = client_module.AuthenticatedClient(base_url=server.base, token=server.keys["scorer"])
        request = models.ScoreRequest.from_dict({"calls": sample_calls(1, start=280)})
        answer = post_score.sync(client=client, body=request)
        assert answer.model == "callqa-scorer:tiny" and len(answer.results) == 1
        assert answer.results[0].scores["attitude"].level in {"1", "2", "3", "4", "5"}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "client" or m.startswith("client.")]:
            del sys.modules[name]


def test_the_api_worker_restarts_after_its_request_budget_and_no_request_fails(tiny_bundle, tmp_path):
    """BentoML 1.4 keeps ~5 KB per request (even /healthz; upstream) and offers no max-requests setting: the guard
    stops its worker after recycle_after_requests, and the process manager starts a fresh one on the same socket."""
    from callqa.serving.process import api_worker

    database = f"sqlite:///{tmp_path / 'callqa.db'}"
    key = KeyStore(database).create("scorer", "recycle")[0]
    config = {"database": database, "precision": "fp32", "recycle_after_requests": 20}
    process, base, log = start_server(tiny_bundle, tmp_path, config)
    server = Server(base, log, process, {"scorer": key}, None)

    try:
        first = api_worker(process).pid
        statuses = [server.post("/score", {"calls": sample_calls(1, start=300 + i % 5)})[0] for i in range(30)]
        assert statuses == [200] * 30
        assert "restarting this worker" in log.read_text(encoding="utf-8")
        assert api_worker(process).pid != first
    finally:
        stop(process)


def test_a_logged_field_path_never_carries_what_a_client_chose():
    from callqa.serving.middleware import loggable_field

    assert loggable_field("calls[0].turns[3].text") == "calls[0].turns[3].text"
    assert loggable_field("calls.0.turns.2.labels.我的\r\nFORGED.constrained-int") == "calls.0.turns.2.labels.*.constrained-int"
    assert loggable_field(f"labels.{PHONE}") == loggable_field(f"labels.tel{PHONE}") == "labels.*"
