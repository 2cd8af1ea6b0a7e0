"""Strict input at every edge of a real server: query parameters, path ids and ruling bodies are parsed by strict
pydantic models (a 400 naming the field, a 404 for an id that cannot exist), never coerced, never a 500; every
refusal under /api is the JSON error the spec declares; the served report page carries the UI's policy."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote

import pytest
from servers import Server, start_server, stop
from test_hardening import raw_request
from typer.testing import CliRunner

from callqa.cli import app
from callqa.serving.params import QueryError
from callqa.serving.report import REPORT_STYLE
from callqa.serving.review_api import QueueQuery, ReportQuery
from callqa.serving.store import KeyStore


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    directory = tmp_path_factory.mktemp("strict")
    database = f"sqlite:///{directory / 'callqa.db'}"
    store = KeyStore(database)
    keys = {who: store.create(role, who)[0] for who, role in {"admin": "admin", "scorer": "scorer"}.items()}
    process, base, log = start_server(tiny_bundle, directory, {"database": database, "precision": "fp32"})
    yield Server(base, log, process, keys, store)
    stop(process)


def get(server: Server, path: str) -> tuple[int, dict, bytes]:
    return raw_request(server, "GET", path, headers={"authorization": f"Bearer {server.keys['admin']}"})


def post(server: Server, path: str, body: bytes) -> tuple[int, dict, bytes]:
    return raw_request(server, "POST", path, body, headers={"authorization": f"Bearer {server.keys['admin']}",
                                                            "content-type": "application/json"})


def refused(answer: tuple[int, dict, bytes], status: int, field: str) -> None:
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert json.loads(body)["error"].startswith(field), body[:300]


@pytest.mark.parametrize(("query", "field"), [
    ("from=0001-01-01", "from"), ("to=9999-12-31", "to"),  # OverflowError, 500, on main
    ("from=2026-02-30", "from"), ("from=" + quote("２０２６-03-01"), "from"), ("to=2026-03-01%0A", "to"),
    ("red_line=yes", "red_line"), ("score_min=inf", "score_min"), ("limit=0", "limit"), ("limit=5.5", "limit"),
    ("agent=" + "a" * 201, "agent"), ("reviewd=true", "reviewd"), ("agent=a&agent=b", "agent"),
])
def test_a_bad_queue_parameter_is_a_400_naming_it(server, query, field):
    refused(get(server, f"/api/reviews/queue?{query}"), 400, field)


@pytest.mark.parametrize("period", ["2026-3", "+2026-03", "２０２６-03", "2026-03\n", "0000-00", "9999-12", "2026-W54",
                                    " 2026-03"])
def test_a_report_period_is_read_exactly_as_written_or_refused(server, period):
    for route in ("/api/reviews/report", "/api/reviews/report/page"):
        refused(get(server, f"{route}?period={quote(period)}"), 400, "period")


def test_the_served_report_page_carries_the_ui_policy_with_its_style_allowed_by_hash(server):
    status, headers, page = get(server, "/api/reviews/report/page?period=2026-03")
    assert status == 200 and headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(REPORT_STYLE.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    # The one style element is the hashed one; charts are images (their own styles stay inside them).
    assert re.findall(rb"<style>(.*?)</style>", page) == [REPORT_STYLE.encode()]
    assert b"<svg" not in page and b" style=" not in page


@pytest.mark.parametrize(("body", "field"), [
    ({"rulings": [{"entry": "12", "decision": "upheld"}]}, "rulings.0.entry"),
    ({"rulings": [{"entry": 12.5, "decision": "upheld"}]}, "rulings.0.entry"),
    ({"rulings": [{"entry": 12, "decision": "upheld"}], "final": "yes"}, "final"),
    ({"rulings": [{"entry": 12, "decision": "upheld"}], "final": 1}, "final"),
])
def test_a_ruling_body_is_strict(server, body, field):
    refused(post(server, "/api/appeals/1/rulings", json.dumps(body).encode()), 400, field)


def test_a_whole_number_written_12_0_is_the_integer_the_spec_says_it_is(server):
    """JSON Schema (and so the OpenAPI document) counts 12.0 as an integer: it is read as 12, not refused; strings,
    booleans and fractions are (above)."""
    body = json.dumps({"rulings": [{"entry": 12.0, "decision": "upheld"}]}).encode()
    refused(post(server, "/api/appeals/1/rulings", body), 404, "no appeal")  # parsed; appeal 1 does not exist


@pytest.mark.parametrize("appeal", [str(2**70), "0", "-1", "1e3", "１"])
def test_an_appeal_number_that_cannot_exist_is_a_404(server, appeal):
    body = json.dumps({"rulings": [{"entry": 1, "decision": "upheld"}]}).encode()
    refused(post(server, f"/api/appeals/{quote(appeal)}/rulings", body), 404, "no appeal")


@pytest.mark.parametrize("call_id", ["c" * 201, "a%0Ab", "a%0D%0Ab", "a%E2%80%AEb"])
def test_a_call_id_that_cannot_exist_is_a_json_404_on_every_call_route(server, call_id):
    for method, path in (("POST", "/release"), ("GET", ""), ("POST", "/open"), ("GET", "/evidence")):
        sent = post if method == "POST" else get
        refused(sent(server, f"/api/reviews/calls/{call_id}{path}", b"{}") if method == "POST"
                else sent(server, f"/api/reviews/calls/{call_id}{path}"), 404, "call_id")


def test_an_unknown_api_path_and_method_answer_json(server):
    status, headers, body = get(server, "/api/reviews/nowhere")
    assert status == 404 and headers["content-type"].startswith("application/json") and json.loads(body)["error"]
    status, headers, body = raw_request(server, "DELETE", "/api/reviews/queue",
                                        headers={"authorization": f"Bearer {server.keys['admin']}"})
    assert status == 405 and headers["content-type"].startswith("application/json") and json.loads(body)["error"]


def test_query_models_are_the_spec(server):
    spec = json.loads(get(server, "/docs.json")[2])
    queue = {p["name"]: p for p in spec["paths"]["/api/reviews/queue"]["get"]["parameters"] if p["in"] == "query"}
    assert set(queue) == {f.alias or name for name, f in QueueQuery.model_fields.items()}
    report = {p["name"]: p for p in spec["paths"]["/api/reviews/report"]["get"]["parameters"]}
    assert report["period"]["required"] and not report["team"]["required"]
    assert re.fullmatch(report["period"]["schema"]["pattern"].strip("^$"), "2026-W10")
    with pytest.raises(QueryError, match="period"):
        ReportQuery.parse(_Params(period="2026-3"))
    # This deployment's limits are in the schema /score parses with.
    served = spec["components"]["schemas"]["ServedCall"]["properties"]["turns"]
    assert served["maxItems"] == 400 and spec["components"]["schemas"]["ServedTurn"]["properties"]["text"]["maxLength"] == 4000


class _Params(dict):
    def getlist(self, key):
        return [self[key]]


def test_report_links_only_to_an_http_review_ui(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for base in ("javascript:alert(1)", "data:text/html,x", "ftp://host", "http://"):
        done = CliRunner().invoke(app, ["report", "--period", "2026-03", "--out", str(tmp_path / "r"), "--db", db,
                                        "--ui-base", base])
        assert done.exit_code != 0 and "http(s)" in done.output, done.output


def test_the_root_page_and_the_spec_speak_chinese_and_link_the_review_ui(server):
    status, headers, page = raw_request(server, "GET", "/")
    text = page.decode()
    assert status == 200 and 'lang="zh-CN"' in text and "接口文档" in text
    assert 'href="/review/"' in text and "复核工作台" in text and 'href="/review/dashboard.html"' in text
    spec = json.loads(get(server, "/docs.json")[2])
    assert "智能质检" in spec["info"]["title"] and "/review/" in spec["info"]["description"]
    status, _, me = get(server, "/api/me")  # any role may ask who it is (the appeals page asks first)
    assert status == 200 and json.loads(me)["role"] == "admin"


@pytest.mark.parametrize("path", ["/score", "/api/reviews/calls/c-1/reviews", "/api/appeals/1/rulings"])
def test_a_body_that_is_not_json_is_named_once(server, path):
    status, _, body = post(server, path, b'{"calls": [')
    message = json.loads(body)["error"]
    assert status == 400 and "JSON" in message and not re.search(r"\b(\w+) \1\b", message), message


def test_the_day_and_period_patterns_the_spec_states_are_exactly_the_days_and_periods_the_server_reads():
    """schemathesis (200 examples per operation) found 2026-02-30 and 1973-W53: allowed by looser patterns, refused
    by the server. The patterns now hold every real day and ISO week from 1970 to 2099 and nothing else."""
    from datetime import date, timedelta
    from zoneinfo import ZoneInfo

    from callqa.serving.params import DAY_PATTERN
    from callqa.serving.report import PERIOD_PATTERN, Period

    day = date(1970, 1, 1)
    while day.year < 2100:
        assert re.fullmatch(DAY_PATTERN, day.isoformat()), day
        day += timedelta(days=1)
    for text in ("2026-02-29", "2100-01-01", "1969-12-31", "2026-04-31", "2026-02-30"):
        assert not re.fullmatch(DAY_PATTERN, text), text
    for year in range(1970, 2100):
        for week in range(1, 54):
            text = f"{year}-W{week:02d}"
            exists = date(year, 12, 28).isocalendar()[1] >= week
            assert bool(re.fullmatch(PERIOD_PATTERN, text)) == exists, text
            if exists:
                assert Period.parse(text, ZoneInfo("UTC")).label == text
