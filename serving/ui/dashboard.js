// The QA lead's dashboard: a period's report (the same page `callqa report` writes), filtered by team or agent.
// Clicking an agent's row drills down to that agent; the worst calls link into the review UI.
"use strict";

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("callqa.key") || "";
const teams = new Map();  // agent id → team, from the last whole-center report

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  return { status: response.status, ok: response.ok, text: await response.text() };
}

function lastMonth() {
  const now = new Date();
  const d = new Date(now.getFullYear(), now.getMonth() - 1, 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
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
  const [data, page] = await Promise.all([get(`/api/reviews/report?${params}`), get(`/api/reviews/report/page?${params}`)]);
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
  const frame = $("report");
  frame.hidden = false;
  frame.onload = () => {
    const doc = frame.contentDocument;
    frame.style.height = `${doc.documentElement.scrollHeight + 20}px`;
    doc.querySelectorAll("tr[data-agent]").forEach((row) => {
      row.style.cursor = "pointer";
      row.title = "查看该坐席的报表";
      row.addEventListener("click", () => { $("team").value = ""; fillSelect($("agent"), [[row.dataset.agent, row.dataset.agent]], row.dataset.agent); show(); });
    });
  };
  frame.srcdoc = page.text;
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
  show();
});
$("filters").addEventListener("submit", (event) => { event.preventDefault(); show(); });
$("team").addEventListener("change", () => { $("agent").value = ""; });

const initial = new URLSearchParams(location.search);
$("period").value = initial.get("period") || lastMonth();
for (const name of ["team", "agent"]) {
  if (initial.get(name)) fillSelect($(name), [[initial.get(name), initial.get(name)]], initial.get(name));
}
if (key) show(); else needKey();
