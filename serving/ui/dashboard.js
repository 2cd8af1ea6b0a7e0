// The QA lead's dashboard: a period's report (the figures `callqa report` writes), filtered by team or agent.
// Clicking an agent's row drills down to that agent; the worst calls link into the review UI. Tables are built
// from the report's JSON with textContent; the charts are SVG shown as images (the page's CSP allows no inline
// styles, an image keeps its own).
"use strict";

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("callqa.key") || "";
const teams = new Map();  // agent id → team, from the last whole-center report

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  return { status: response.status, ok: response.ok, text: await response.text() };
}

function thisMonth() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
}

function fillSelect(select, values, keep) {
  select.replaceChildren(new Option("全部", ""), ...values.map(([value, label]) => new Option(label, value)));
  select.value = values.some(([v]) => v === keep) ? keep : "";
}

async function show() {
  const params = new URLSearchParams({ period: $("period").value.trim() });
  if ($("team").value) params.set("team", $("team").value);
  if ($("agent").value) params.set("agent", $("agent").value);
  history.replaceState(null, "", `?${params}`);
  $("status").textContent = "生成中…";
  const data = await get(`/api/reviews/report?${params}`);
  if (data.status === 401 || data.status === 403) return needKey(data.status === 401 ? "密钥无效或已吊销" : "需要复核员密钥");
  if (!data.ok) {
    $("status").textContent = JSON.parse(data.text).error || `错误 (${data.status})`;
    $("status").className = "error";
    return;
  }
  const report = JSON.parse(data.text);
  const agents = report.tables.find((t) => t.name === "agents");
  if (!params.has("team") && !params.has("agent")) agents.rows.forEach((r) => teams.set(r[0], r[2]));
  fillSelect($("team"), [...new Set(teams.values())].filter(Boolean).sort().map((t) => [t, t]), params.get("team") || "");
  fillSelect($("agent"), agents.rows.map((r) => [r[0], r[1] ? `${r[1]}（${r[0]}）` : r[0]]), params.get("agent") || "");
  $("status").textContent = `${report.title} · ${report.scope} · ${report.source}`;
  $("status").className = "muted";
  render(report);
}

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

function cell(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" && !Number.isInteger(value) ? String(Math.round(value * 100) / 100) : String(value);
}

function render(report) {
  const charts = report.charts.map((svg) => el("img", { className: "chart",
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt: "图表" }));
  const sections = report.tables.map((table) => {
    const rows = table.rows.map((row, n) => {
      const tr = el("tr", {}, ...row.map((value, i) => {
        const link = i === 0 && table.links[n];
        return el("td", {}, link ? el("a", { href: link, textContent: cell(value) }) : cell(value));
      }));
      if (table.name === "agents") {  // drill down to one agent
        tr.dataset.agent = row[0];
        tr.title = "查看该坐席的报表";
        tr.addEventListener("click", () => {
          $("team").value = "";
          fillSelect($("agent"), [[row[0], row[0]]], row[0]);
          show();
        });
      }
      return tr;
    });
    return el("section", { id: table.name }, el("h2", { textContent: table.title }),
      el("table", {}, el("thead", {}, el("tr", {}, ...table.columns.map((c) => el("th", { textContent: c })))),
        el("tbody", {}, ...rows)), ...(table.note ? [el("p", { className: "muted", textContent: table.note })] : []));
  });
  $("report").replaceChildren(el("div", { className: "charts" }, ...charts), ...sections);
  $("report").hidden = false;
}

function needKey(message) {
  sessionStorage.removeItem("callqa.key");
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "";
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key = $("key").value.trim();
  sessionStorage.setItem("callqa.key", key);
  $("login").hidden = true;
  start();
});
$("filters").addEventListener("submit", (event) => { event.preventDefault(); show(); });
$("team").addEventListener("change", () => { $("agent").value = ""; });

// Without a period in the address, the dashboard opens on the latest month that has calls (and says so when that
// is not this month), never on an empty one.
async function start() {
  if (!initial.get("period")) {
    const stats = await get("/api/reviews/stats");
    if (stats.status === 401 || stats.status === 403) return needKey(stats.status === 401 ? "密钥无效或已吊销" : "需要复核员密钥");
    const latest = stats.ok ? JSON.parse(stats.text).latest_period : null;
    $("period").value = latest || thisMonth();
    await show();
    if (latest && latest !== thisMonth()) {
      $("status").textContent = `本月暂无通话，显示最近有通话的月份 ${latest} · ${$("status").textContent}`;
    }
    return;
  }
  await show();
}

const initial = new URLSearchParams(location.search);
$("period").value = initial.get("period") || "";
for (const name of ["team", "agent"]) {
  if (initial.get(name)) fillSelect($(name), [[initial.get(name), initial.get(name)]], initial.get(name));
}
if (key) start(); else needKey();
