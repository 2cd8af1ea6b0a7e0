"""`callqa report`: a month's QA figures from a hand-built review store, checked against numbers computed here."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from servers import CHROMIUM, CHROMIUM_FLAGS
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.schema import load_schema
from callqa.serving.directory import AgentDirectory, DirectoryError
from callqa.serving.report import Period, ReportBuilder, write_report
from callqa.serving.store import Reviewer, ReviewStore, ScorecardReview

from conftest import SAMPLE, score_randomly

SHANGHAI = ZoneInfo("Asia/Shanghai")
# (agent, started_at in UTC): the last two sit on month edges that only the time zone decides.
PLAN = [("a1", "2026-03-05T02:00:00Z"), ("a1", "2026-03-12T03:00:00Z"), ("a1", "2026-03-20T04:00:00Z"),
        ("a2", "2026-03-06T05:00:00Z"), ("a2", "2026-03-18T06:00:00Z"), ("a3", "2026-03-25T07:00:00Z"),
        ("a1", "2026-02-10T02:00:00Z"), ("a2", "2026-02-11T02:00:00Z"), ("a1", "2026-01-15T02:00:00Z"),
        ("a2", "2026-02-28T16:30:00Z"),  # 2026-03-01 00:30 in Shanghai: March
        ("a3", "2026-03-31T16:30:00Z")]  # 2026-04-01 00:30 in Shanghai: April


@pytest.fixture
def store(tmp_path):
    """A review store with the plan's calls, each scored on the default card from seeded random head scores."""
    calls = [call.model_copy(update={"agent_id": agent, "started_at": datetime.fromisoformat(started), "labels": {}})
             for call, (agent, started) in zip(load_calls(SAMPLE), PLAN)]
    scored = score_randomly(calls, seed=3)
    st = ReviewStore(f"sqlite:///{tmp_path / 'reviews.db'}")
    st.add_scored(calls, scored, "callqa-scorer:test", load_schema("callcenter"))
    st.calls, st.scored = calls, scored
    return st


def in_march(started: str) -> bool:
    local = datetime.fromisoformat(started).astimezone(SHANGHAI)
    return (local.year, local.month) == (2026, 3)


def test_periods_are_calendar_months_and_iso_weeks_in_the_time_zone():
    march = Period.parse("2026-03", SHANGHAI)
    assert march.start.isoformat() == "2026-03-01T00:00:00+08:00" and march.end.isoformat() == "2026-04-01T00:00:00+08:00"
    assert [p.label for p in march.last(6)] == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    week = Period.parse("2026-W01", SHANGHAI)
    assert week.start.date().isoformat() == "2025-12-29" and week.previous().label == "2025-W52"
    with pytest.raises(ValueError, match="2026-03 or an ISO week"):
        Period.parse("March", SHANGHAI)


def test_a_month_report_matches_figures_computed_by_hand(store, tmp_path):
    directory = AgentDirectory.load(_directory(tmp_path))
    report = ReportBuilder(store, load_schema("callcenter"), directory).build("2026-03")
    march = [(c, s, agent) for c, s, (agent, started) in zip(store.calls, store.scored, PLAN) if in_march(started)]
    assert len(march) == 7  # five plain March calls, and 02-28 16:30 UTC; not 03-31 16:30 UTC

    overview = dict(report.table("overview").rows)
    assert overview["质检通话数"] == 7 and overview["其中复核"] == 0
    assert overview["平均得分"] == pytest.approx(round(np.mean([s.scorecard.total for _, s, _ in march]), 2))
    assert overview["红线通话"] == sum(s.scorecard.red_line for _, s, _ in march)

    agents = {row[0]: row for row in report.table("agents").rows}
    for agent in ("a1", "a2", "a3"):
        totals = [s.scorecard.total for _, s, a in march if a == agent]
        assert agents[agent][3] == len(totals) and agents[agent][4] == pytest.approx(round(np.mean(totals), 2))
    assert agents["a1"][1:3] == ["张三", "一组"] and agents["a3"][1] == ""  # a3 is not in the directory

    items = {row[1]: row for row in report.table("items").rows}
    for item in march[0][1].scorecard.items().values():
        points = [s.scorecard.items()[item.id].points for _, s, _ in march]
        row = items[item.title]
        assert row[2] == item.max_points and row[3] == pytest.approx(round(np.mean(points), 2))
        assert row[5] == sum(bool(s.scorecard.items()[item.id].deductions) for _, s, _ in march)

    trend = report.table("trend")
    assert trend.columns[-6:] == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
    feb = [s.scorecard.total for s, (_, started) in zip(store.scored, PLAN) if started.startswith("2026-02-1")]
    assert trend.rows[0][-2] == pytest.approx(round(np.mean(feb), 2)) and trend.rows[0][2] is None

    topics = {row[1]: row[2] for row in report.table("categories").rows if row[0] == "投诉主题"}
    topic_names = load_schema("callcenter")["topics"].classes
    expected = {}
    for _, s, _ in march:
        for t in s.scores["topics"].predicted:
            expected[topic_names[t]] = expected.get(topic_names[t], 0) + 1
    assert topics == expected

    worst = report.table("worst")
    totals = sorted(s.scorecard.total / s.scorecard.max_total for _, s, _ in march)
    assert [row[3] / 100 for row in worst.rows] == pytest.approx(totals)
    assert worst.links[0].endswith(f"/review/?call={worst.rows[0][0]}")
    for row in report.table("deductions").rows:
        assert "138" not in row[4]  # examples are redacted (the sample has phone numbers)

    # Sections against the card's standard (5 / 25 / 20 / 50 on the default card), overall and per agent.
    sections = report.table("sections")
    card = march[0][1].scorecard
    assert sections.columns[3:7] == [f"{s.title}（{s.max_points:g}）" for s in card.sections]
    assert [s.max_points for s in card.sections] == [5, 25, 20, 50]
    for row in sections.rows:
        mine = [s for _, s, a in march if row[0] in ("全部", a)]
        assert row[2] == len(mine)
        for n, section in enumerate(card.sections):
            points = [s.scorecard.sections[n].points for s in mine]
            assert row[3 + n] == pytest.approx(round(np.mean(points), 2))
            assert row[7 + n] == pytest.approx(round(100 * np.mean(points) / section.max_points, 1))
    assert sections.rows[0][0] == "全部" and {r[0] for r in sections.rows[1:]} == {"a1", "a2", "a3"}
    # 主要问题: the rules that deducted on the most calls, by their Chinese titles; red lines (禁语, a 0-point item)
    # count like the others.
    calls_of: dict[tuple[str, str], set] = {}
    for c, sc, _ in march:
        for item in sc.scorecard.items().values():
            for d in item.deductions:
                calls_of.setdefault((item.title, d.title), set()).add(c.call_id)
    problems = report.table("deductions")
    assert problems.columns[:4] == ["问题（规则）", "评分项", "被扣分通话", "扣分次数"]
    shown = [(row[1], row[0]) for row in problems.rows]
    assert [row[2] for row in problems.rows] == [len(calls_of[k]) for k in shown]
    ranked = sorted((len(v) for v in calls_of.values()), reverse=True)
    assert [row[2] for row in problems.rows] == ranked[:len(shown)] and len(shown) == min(5, len(calls_of))
    assert not any(re.fullmatch(r"[a-z_]+", row[0]) for row in problems.rows)  # titles, never rule ids


def test_a_reviewers_points_replace_the_models_and_the_report_says_so(store):
    schema = load_schema("callcenter")
    target = next(c for c, (agent, started) in zip(store.calls, PLAN) if agent == "a2" and in_march(started))
    card = next(s for s in store.scored if s.call_id == target.call_id).scorecard
    item = next(iter(card.items().values()))
    given = 0.0 if item.points else item.max_points
    store.submit(target.call_id, Reviewer("rev-1", "Anna"), 0, {}, schema, scorecard=ScorecardReview(points={item.id: given}))
    report = ReportBuilder(store, schema).build("2026-03", agent="a2")
    overview = dict(report.table("overview").rows)
    assert overview["其中复核"] == 1 and "复核员评分 1 通" in report.source
    model_total = [s.scorecard.total for s, (a, st) in zip(store.scored, PLAN) if a == "a2" and in_march(st)]
    reviewer_total = card.total - item.points + given if not card.red_line else 0.0
    expected = (sum(model_total) - card.total + reviewer_total) / len(model_total)
    assert overview["平均得分"] == pytest.approx(round(expected, 2))
    assert {row[0] for row in report.table("agents").rows} == {"a2"}

    # The reviewer's topics replace the model's in the category counts.
    store.submit(target.call_id, Reviewer("rev-2", "Bo"), 1, {"topics": ["billing"]}, schema)
    model_topics = next(s for s in store.scored if s.call_id == target.call_id).scores["topics"].predicted
    before = {row[1]: row[2] for row in report.table("categories").rows if row[0] == "投诉主题"}
    latest = ReportBuilder(store, schema).build("2026-03", agent="a2")
    after = {row[1]: row[2] for row in latest.table("categories").rows if row[0] == "投诉主题"}
    names = schema["topics"].classes
    for topic in set(model_topics) | {"billing"}:
        change = (topic == "billing") - (topic in model_topics)
        assert after.get(names[topic], 0) == before.get(names[topic], 0) + change

    # A store written before these tables existed gets them filled by `callqa db upgrade` (revision 0003).
    from sqlalchemy import delete

    from callqa.serving.store.calls import PredictionTopicRow
    from callqa.serving.store.reviews import ReviewedItemRow, ReviewedScorecardRow, ReviewedTopicRow

    with store.engine.begin() as conn:
        for table in (PredictionTopicRow, ReviewedItemRow, ReviewedScorecardRow, ReviewedTopicRow):
            conn.execute(delete(table))
    from test_hardening import rerun_data_revision

    rerun_data_revision(str(store.engine.url))
    reopened = ReviewStore(str(store.engine.url))
    again = ReportBuilder(reopened, schema).build("2026-03", agent="a2")
    assert again.tables == latest.tables


def test_outputs_open_in_excel_csv_and_a_browser(store, tmp_path):
    from openpyxl import load_workbook

    report = ReportBuilder(store, load_schema("callcenter")).build("2026-03")
    paths = write_report(report, tmp_path / "out")
    book = load_workbook(tmp_path / "out" / "report.xlsx")
    assert {t.title[:31] for t in report.tables} == set(book.sheetnames)
    sheet = book[report.table("agents").title]
    assert [c.value for c in sheet[1]][:5] == ["坐席", "姓名", "班组", "通话数", "平均得分"] and sheet.max_row == 4
    assert (tmp_path / "out" / "csv" / "agents.csv").read_text(encoding="utf-8-sig").startswith("坐席,姓名")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    # Offline: no script, stylesheet or image from anywhere (charts are inline data: images, whose styles stay inside
    # them under the served page's Content-Security-Policy); the only links are into the review UI.
    assert "<script" not in page and "<link" not in page and not re.search(r"url\((?!#)", page)
    assert re.findall(r'<img [^>]*src="([a-z]+:[^,;]+)', page) == ["data:image/svg+xml"] * 2
    assert re.findall(r'href="([^"#][^"]*)"', page) == [f"http://127.0.0.1:3000/review/?call={r[0]}" for r in report.table("worst").rows]
    assert "<svg" not in page and "平均得分趋势" in page
    assert len(paths) == 2 + len(report.tables)
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium to render the HTML")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        view = browser.new_page()
        view.goto((tmp_path / "out" / "report.html").as_uri())
        assert view.locator("h1").text_content() == "质检月报 2026-03"
        charts = view.locator("figure img")
        assert charts.count() == 2 and charts.first.bounding_box()["height"] > 100
        assert view.evaluate("[...document.images].every((i) => i.complete && i.naturalWidth > 0)")  # they render
        assert "坐席成绩" in view.locator("body").inner_text()
        shot = view.screenshot(full_page=True)
        browser.close()
    assert len(shot) > 20_000  # a blank page is a few kB


def test_cli_writes_the_report_and_names_bad_input(store, tmp_path):
    runner = CliRunner()
    db = str(store.engine.url)
    result = runner.invoke(app, ["report", "--period", "2026-03", "--db", db, "-o", str(tmp_path / "march.xlsx"),
                                 "--agents", str(_directory(tmp_path)), "--team", "一组"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "march.xlsx").exists() and "a1" in result.output
    result = runner.invoke(app, ["report", "--period", "March", "--db", db, "-o", str(tmp_path / "x.html")])
    assert result.exit_code != 0 and "2026-03 or an ISO week" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("agent_id,name,team\na/1,x,y\n", encoding="utf-8")
    with pytest.raises(DirectoryError, match="bad.csv:2: agent_id"):
        AgentDirectory.load(bad)


def _directory(tmp_path):
    path = tmp_path / "agents.csv"
    path.write_text("agent_id,name,team\na1,张三,一组\na2,李四,二组\n", encoding="utf-8-sig")
    return path


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(scripts/install-test-deps.sh installs it)")
def test_a_lead_reads_the_dashboard_drills_down_to_an_agent_and_opens_a_call(tiny_bundle, tmp_path):
    import json
    from collections import Counter

    from playwright.sync_api import expect
    from servers import logged_in, serve, stop

    calls = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:40]]
    month = Counter(datetime.fromisoformat(c["started_at"]).astimezone(SHANGHAI).strftime("%Y-%m") for c in calls)
    period = month.most_common(1)[0][0]
    in_period = [c for c in calls if datetime.fromisoformat(c["started_at"]).astimezone(SHANGHAI).strftime("%Y-%m") == period]
    agents = Counter(c["agent_id"] for c in in_period)
    directory = tmp_path / "agents.csv"
    first = agents.most_common(1)[0][0]
    directory.write_text(f"agent_id,name,team\n{first},王伟,一组\n", encoding="utf-8")
    server = serve(tiny_bundle, tmp_path, agents=str(directory))
    try:
        status, body = server.post("/score", {"calls": calls, "store": True}, key="scorer")
        assert status == 200 and body["stored"] == 40
        assert server.get("/api/reviews/report?period=March", key="anna")[0] == 400
        assert server.get(f"/api/reviews/report?period={period}", key="scorer")[0] == 403
        status, raw = server.get(f"/api/reviews/report?period={period}&team=%E4%B8%80%E7%BB%84", key="anna")  # 一组
        assert status == 200 and [r[0] for r in json.loads(raw)["tables"][2]["rows"]] == [first]

        with logged_in(server, "anna", f"/review/dashboard.html?period={period}") as page:
            expect(page.get_by_test_id("status")).to_contain_text(f"质检月报 {period}")
            report = page.get_by_test_id("report")
            rows = report.locator("#agents tbody tr")
            expect(rows).to_have_count(len(agents))
            # 来电分析 in Chinese, one row per hour of the day that has calls
            hours = {datetime.fromisoformat(c["started_at"]).astimezone(SHANGHAI).hour for c in in_period}
            expect(report.locator("#calls-by-hour h2")).to_have_text("来电分析：按时段")
            expect(report.locator("#calls-by-hour tbody tr")).to_have_count(len(hours))
            expect(report.locator("#calls-by-weekday th").nth(1)).to_have_text("通话数")
            charts = report.locator("img.chart")
            expect(charts).to_have_count(2)
            assert charts.first.evaluate("img => img.complete && img.naturalWidth > 300")  # the SVG drew
            rows.filter(has_text="王伟").click()  # drill down to one agent
            expect(page.get_by_test_id("status")).to_contain_text("坐席 王伟")
            expect(report.locator("#agents tbody tr")).to_have_count(1)
            worst = report.locator("#worst a").first
            call_id = worst.text_content()
            assert call_id in {c["call_id"] for c in in_period if c["agent_id"] == first}
            worst.click()  # into the review UI, logged in with the same key
            expect(page.get_by_test_id("call-id")).to_have_text(call_id)
        # Without a period it opens on the latest month with calls, not on an empty current month, and says so.
        latest = max(datetime.fromisoformat(c["started_at"]) for c in calls).astimezone(SHANGHAI).strftime("%Y-%m")
        with logged_in(server, "anna", "/review/dashboard.html") as page:
            expect(page.get_by_test_id("status")).to_contain_text(f"质检月报 {latest}")
            expect(page.get_by_test_id("status")).to_contain_text(f"显示最近有通话的月份 {latest}")
            expect(page.get_by_test_id("period")).to_have_value(latest)
            expect(page.get_by_test_id("report").locator("#agents tbody tr").first).to_be_visible()
    finally:
        stop(server.process)


def test_the_queue_search_filters_every_stored_call(store):
    from starlette.datastructures import QueryParams

    from callqa.serving.params import QueryError
    from callqa.serving.review_api import QueueQuery, call_filter
    from callqa.serving.store import CallFilter

    schema = load_schema("callcenter")
    rows = list(zip(store.calls, store.scored, PLAN))

    def ids(found: CallFilter) -> set[str]:
        items, total = store.search(found, "rev-1", limit=100)
        assert total == len(items)
        return {i.call_id for i in items}

    march = CallFilter(started_from=datetime(2026, 3, 1, tzinfo=SHANGHAI), started_before=datetime(2026, 4, 1, tzinfo=SHANGHAI))
    assert ids(march) == {c.call_id for c, _, (_, started) in rows if in_march(started)}
    assert ids(CallFilter(agents=["a2"])) == {c.call_id for c, _, (a, _) in rows if a == "a2"}
    assert ids(CallFilter(score_min=50, score_max=80)) == {c.call_id for c, s, _ in rows if 50 <= s.scorecard.total <= 80}
    assert ids(CallFilter(red_line=True)) == {c.call_id for c, s, _ in rows if s.scorecard.red_line}
    topic = store.scored[0].scores["topics"].predicted[0]
    assert ids(CallFilter(topic=topic)) == {c.call_id for c, s, _ in rows if topic in s.scores["topics"].predicted}
    target = store.calls[4].call_id
    store.submit(target, Reviewer("rev-1", "Anna"), 0, {"attitude": 3}, schema)
    assert ids(CallFilter(reviewed=True)) == ids(CallFilter(reviewed_by="rev-1")) == {target}
    assert target not in ids(CallFilter(reviewed=False)) and ids(CallFilter(reviewed_by="rev-2")) == set()
    items, _ = store.search(CallFilter(agents=["a1"]), "rev-1")
    assert [i.started_at for i in items] == sorted((i.started_at for i in items), reverse=True)  # newest first
    assert all(i.duration and i.duration > 0 and i.total is not None for i in items)

    # The API's query parameters, checked at the edge: days in the server's zone, a bad value names its parameter.
    directory = AgentDirectory.load(_directory(Path(store.engine.url.database).parent))
    def parsed(params: dict) -> QueueQuery:
        return QueueQuery.parse(QueryParams(params))

    found = call_filter(parsed({"team": "一组", "from": "2026-03-01", "to": "2026-03-31", "mine": "true"}), "rev-1",
                        directory, SHANGHAI)
    assert found.agents == ["a1"] and found.reviewed_by == "rev-1"
    assert found.started_from == datetime(2026, 3, 1, tzinfo=SHANGHAI)
    assert found.started_before == datetime(2026, 4, 1, tzinfo=SHANGHAI)
    assert call_filter(parsed({"limit": "5"}), "rev-1", directory, SHANGHAI) is None  # no filter: the queue
    for params, message in (({"from": "03/01"}, "from: String should match"), ({"red_line": "yes"}, "red_line: "),
                            ({"score_min": "x"}, "score_min: Input should be a valid number"),
                            ({"score_max": "1e9"}, "score_max")):
        with pytest.raises(QueryError, match=message):
            parsed(params)


def test_serve_takes_the_agent_directory_the_demo_reports_with(monkeypatch):
    """`make demo` serves with --agents (CALLQA_AGENTS), so the dashboard shows the names the month report shows."""
    from callqa.serving.config import load_serving_config

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    served = re.search(r"exec \$\(CALLQA\) serve .*--agents (\S+)", makefile)
    reported = re.search(r"\$\(CALLQA\) report .*--agents (\S+)", makefile)
    assert served and reported and served[1] == reported[1]
    monkeypatch.setenv("CALLQA_AGENTS", served[1])
    assert load_serving_config().agents == served[1]


def test_a_new_section_is_one_class_and_one_registry_line_and_shows_in_every_format(store, tmp_path, monkeypatch):
    """The registry is the one list every renderer walks: a section added to it (here: calls per weekday, from the
    context's rows) appears in the report JSON the dashboard draws, the HTML, the XLSX and the CSVs."""
    from openpyxl import load_workbook

    from callqa.serving.report import ReportContext, Table
    from callqa.serving.report.sections import SECTIONS, Section

    class Weekdays(Section):
        def tables(self, context: ReportContext) -> list[Table]:
            counts = {}
            for call in store.calls:
                local = call.started_at.astimezone(context.tz)
                if context.period.start <= local < context.period.end:
                    counts[local.strftime("%A")] = counts.get(local.strftime("%A"), 0) + 1
            return [Table(name="weekdays", title="按星期统计", columns=["星期", "通话数"],
                          rows=[[day, n] for day, n in sorted(counts.items())], note="测试用")]

    monkeypatch.setattr("callqa.serving.report.sections.SECTIONS", [*SECTIONS, Weekdays()])
    monkeypatch.setattr("callqa.serving.report.builder.SECTIONS", [*SECTIONS, Weekdays()])
    report = ReportBuilder(store, load_schema("callcenter")).build("2026-03")
    added = report.table("weekdays")
    assert sum(n for _, n in added.rows) == sum(in_march(s) for _, s in PLAN) == report.table("overview").rows[2][1]
    assert report.model_dump(mode="json")["tables"][-1]["title"] == "按星期统计"  # what /api/reviews/report serves
    paths = write_report(report, tmp_path / "out")
    assert '<section id="weekdays"><h2>按星期统计</h2>' in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "按星期统计" in load_workbook(tmp_path / "out" / "report.xlsx").sheetnames
    assert (tmp_path / "out" / "csv" / "weekdays.csv") in paths
    # Without it in the registry, no format has it.
    monkeypatch.setattr("callqa.serving.report.builder.SECTIONS", SECTIONS)
    assert "weekdays" not in [t.name for t in ReportBuilder(store, load_schema("callcenter")).build("2026-03").tables]
