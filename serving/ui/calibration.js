// 校准: reviewers label a lead's chosen calls blind; the lead closes the session and everyone sees the results.
// Heads come from /api/model's descriptors (the ones picked one class at a time); texts go in as textContent.
"use strict";
// $, key, el, api, say and onLogin come from keyed-page.js.

let heads = [];
let lead = false;
let current = null;

const alphaText = (a) => (a == null ? "—" : a.toFixed(3));

async function loadSessions() {
  const { ok, data } = await api("GET", "/api/calibration");
  if (!ok) return say(data?.error || "无法读取校准会话", "error");
  $("sessions").replaceChildren(...data.sessions.map((s) => {
    const state = s.closed_at ? `已结束 · α ${Object.entries(s.alpha).map(([h, a]) => `${h} ${alphaText(a)}`).join("，")}`
      : `进行中 · 我已评 ${s.labelled}/${s.calls}`;
    const li = el("li", { textContent: `${s.title}（${state}）` });
    li.dataset.sessionId = String(s.id);
    li.addEventListener("click", () => openSession(s));
    return li;
  }));
  if (!data.sessions.length) $("sessions").replaceChildren(el("li", { className: "muted", textContent: "暂无校准会话" }));
}

function callForm(call) {
  const selects = heads.map((h) => {
    const select = el("select", {}, el("option", { value: "", textContent: `${h.display}…` }),
      ...Object.entries(h.classes).map(([id, name]) => el("option", { value: id, textContent: `${id} ${name}` })));
    select.value = call.mine[h.name] || "";
    select.dataset.head = h.name;
    return select;
  });
  const save = el("button", { textContent: "保存" });
  save.addEventListener("click", async () => {
    const labels = Object.fromEntries(selects.filter((s) => s.value).map((s) => [s.dataset.head, s.value]));
    if (!Object.keys(labels).length) return say("请先选择", "error");
    const answer = await api("POST", `/api/calibration/${current.id}/calls/${encodeURIComponent(call.call_id)}`, { labels });
    say(answer.ok ? `已保存 ${call.call_id}` : answer.data?.error || "保存失败", answer.ok ? "ok" : "error");
    if (answer.ok) loadSessions();
  });
  const turns = el("ol", { className: "turns" }, ...call.turns.map((t) =>
    el("li", { textContent: `${t.speaker === "agent" ? "坐席" : "客户"}：${t.text}` })));
  const box = el("article", { className: "calibration-call" }, el("h3", { textContent: call.call_id }), turns, ...selects, save);
  box.dataset.callId = call.call_id;
  return box;
}

function resultTables(data) {
  return data.heads.map((h) => el("section", {},
    el("h3", { textContent: `${h.display}：Krippendorff's α ${alphaText(h.alpha)}（${h.level === "nominal" ? "名义" : "有序"}）` }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["通话", "投票", "共识", "分歧度"].map((c) => el("th", { textContent: c })))),
      el("tbody", {}, ...h.calls.map((c) => el("tr", {}, el("td", { textContent: c.call_id }),
        el("td", { textContent: Object.entries(c.votes).map(([k, n]) => `${k}×${n}`).join(" ") }),
        el("td", { textContent: c.consensus }), el("td", { textContent: c.spread.toFixed(2) }))))),
    el("table", {}, el("thead", {}, el("tr", {}, ...["复核员", "打分数", "偏离共识"].map((c) => el("th", { textContent: c })))),
      el("tbody", {}, ...h.reviewers.map((r) => el("tr", {}, el("td", { textContent: r.reviewer }),
        el("td", { textContent: String(r.labels) }), el("td", { textContent: r.deviation.toFixed(3) })))))));
}

async function openSession(s) {
  current = s;
  $("session").hidden = false;
  $("session-title").textContent = s.title;
  $("results").replaceChildren();
  $("close").hidden = !lead || !!s.closed_at;
  if (s.closed_at) {
    $("calls").replaceChildren();
    const { ok, data } = await api("GET", `/api/calibration/${s.id}/results`);
    if (!ok) return say(data?.error || "无法读取结果", "error");
    return $("results").replaceChildren(...resultTables(data));
  }
  const { ok, data } = await api("GET", `/api/calibration/${s.id}/calls`);
  if (!ok) return say(data?.error || "无法打开", "error");
  $("calls").replaceChildren(...data.calls.map(callForm));
}

async function closeSession() {
  const { ok, data } = await api("POST", `/api/calibration/${current.id}/close`);
  if (!ok) return say(data?.error || "无法结束", "error");
  say("校准已结束", "ok");
  await loadSessions();
  openSession(data);
}

async function createSession(event) {
  event.preventDefault();
  const lines = (id) => $(id).value.split(/\s+/).filter(Boolean);
  const { ok, data } = await api("POST", "/api/calibration", { title: $("new-title").value.trim(),
    calls: lines("new-calls"), reviewers: lines("new-reviewers") });
  if (!ok) return say(data?.error || "无法创建", "error");
  say(`已创建「${data.title}」`, "ok");
  loadSessions();
}

async function start() {
  const me = key ? await fetch("/api/me", { headers: { Authorization: `Bearer ${key}` } }) : null;
  const who = me?.ok ? await me.json() : null;
  if (who && ["reviewer", "lead", "admin"].includes(who.role)) {
    lead = who.role !== "reviewer";
    $("who").textContent = `${lead ? "质检主管" : "复核员"} ${who.name || who.id}`;
    const model = await api("GET", "/api/model");
    heads = (model.data?.heads || []).filter((h) => h.scope === "call" && !h.multiple);
    $("login").hidden = true;
    $("cal-view").hidden = false;
    $("create").hidden = !lead;
    return loadSessions();
  }
  sessionStorage.removeItem("callqa.key");
  $("login").hidden = false;
  $("login-error").textContent = key ? "该密钥不能参加校准（需要复核员或质检主管密钥）" : "";
}

onLogin(start);
$("create").addEventListener("submit", createSession);
$("close").addEventListener("click", closeSession);
start();
