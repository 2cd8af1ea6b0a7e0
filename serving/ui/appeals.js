// Appeals: an agent disputes deductions of their own calls; a QA lead upholds or overturns each one.
// Every text from the server goes into the page as textContent, never as HTML.
"use strict";
// $, key, el, api, say and onLogin come from keyed-page.js.

const fmt = (x) => (x == null ? "–" : Number.isInteger(x) ? String(x) : x.toFixed(1));
const DECISIONS = { upheld: "维持扣分", overturned: "改判（撤销扣分）" };

function entryLine(entry) {
  const ruling = entry.ruling ? `${DECISIONS[entry.ruling.decision]}${entry.ruling.final ? "（终审）" : ""}：${entry.ruling.comment || "无说明"}`
    : "待裁决";
  return `第 ${entry.round} 次申诉 · ${entry.title} · ${fmt(entry.points)} 分 · ${ruling}`;
}

function appealItem(appeal) {
  return el("li", { className: "appeal" }, el("div", { textContent: `申诉 #${appeal.id} · ${new Date(appeal.filed_at).toLocaleString("zh-CN")} · 理由：${appeal.reason}` }),
    el("ul", {}, ...appeal.entries.map((e) => el("li", { textContent: entryLine(e) }))));
}

// --- the agent's pages -------------------------------------------------------------------------------------------
async function loadMyCalls() {
  const { ok, data } = await api("GET", "/api/appeals/mine/calls");
  if (!ok) return say(data?.error || "无法读取通话", "error");
  $("my-calls").replaceChildren(...data.calls.map((c) => {
    const li = el("li", { textContent: `${c.call_id} · ${fmt(c.total)} 分${c.red_line ? " · 红线" : ""}${c.appeals ? ` · 申诉 ${c.appeals}` : ""}` });
    li.dataset.callId = c.call_id;
    li.addEventListener("click", () => openMyCall(c.call_id));
    return li;
  }));
}

let myCall = null;
async function openMyCall(callId) {
  const { ok, data } = await api("GET", `/api/appeals/mine/calls/${encodeURIComponent(callId)}`);
  if (!ok) return say(data?.error || "无法打开", "error");
  myCall = data;
  $("my-call").hidden = false;
  $("my-call-title").textContent = callId;
  const until = data.appealable_until ? new Date(data.appealable_until) : null;
  $("my-call-meta").textContent = data.scorecard
    ? `得分 ${fmt(data.scorecard.total)} / ${fmt(data.scorecard.max_total)} · 申诉截止 ${until.toLocaleString("zh-CN")}` : "无评分表";
  const open = until && until > new Date();
  const rows = [];
  for (const section of data.scorecard?.sections || []) {
    for (const item of section.items) {
      for (const d of item.deductions) {
        // A reviewer's 漏扣 (rule "missed") is appealed like a rule's hit: a lead who overturns it takes it back.
        const box = el("input", { type: "checkbox", disabled: !open });
        box.dataset.target = JSON.stringify({ item: item.id, rule: d.rule, turn: d.turn, start: d.start });
        const quote = d.text ? `「${d.text}」` : d.missed && d.turn != null ? `第 ${d.turn + 1} 句` : "";
        const by = d.missed ? "（复核补扣）" : "";
        rows.push(el("label", { className: "deduction" }, box, ` ${item.title}：${d.title}${by} −${fmt(d.points)} 分 ${quote}`));
      }
      if (!item.deductions.length && item.points < item.max_points) {
        const box = el("input", { type: "checkbox", disabled: !open });
        box.dataset.target = JSON.stringify({ item: item.id });
        rows.push(el("label", { className: "deduction" }, box, ` ${item.title}：得 ${fmt(item.points)} / ${fmt(item.max_points)} 分（整项）`));
      }
    }
  }
  $("my-card").replaceChildren(...(rows.length ? rows : [el("p", { className: "muted", textContent: "没有扣分" })]));
  $("file").disabled = !open || !rows.length;
  $("my-appeals").replaceChildren(...data.appeals.map(appealItem));
}

async function fileAppeal() {
  const entries = [...$("my-card").querySelectorAll("input:checked")].map((box) => JSON.parse(box.dataset.target));
  if (!entries.length) return say("请勾选要申诉的扣分", "error");
  const reason = $("reason").value.trim();
  if (!reason) return say("请填写申诉理由", "error");
  const { ok, data } = await api("POST", `/api/appeals/mine/calls/${encodeURIComponent(myCall.call.call_id)}`, { reason, entries });
  if (!ok) return say(data?.error || "提交失败", "error");
  say(`申诉 #${data.id} 已提交`, "ok");
  $("reason").value = "";
  await openMyCall(myCall.call.call_id);
  await loadMyCalls();
}

// --- the lead's page ---------------------------------------------------------------------------------------------
async function loadOpenAppeals() {
  const { ok, data } = await api("GET", "/api/appeals?open=true");
  if (!ok) return say(data?.error || "无法读取申诉", "error");
  $("open-appeals").replaceChildren(...data.appeals.map((appeal) => {
    const li = appealItem(appeal);
    li.dataset.appealId = appeal.id;
    li.prepend(el("a", { href: `./?call=${encodeURIComponent(appeal.call_id)}`, textContent: `通话 ${appeal.call_id}（坐席 ${appeal.agent_id}）` }));
    const pending = appeal.entries.filter((e) => !e.ruling);
    const controls = pending.map((e) => {
      const choice = el("select", {}, ...Object.entries(DECISIONS).map(([v, t]) => new Option(t, v)));
      choice.dataset.entry = e.id;
      const comment = el("input", { placeholder: "裁决说明", maxLength: 2000 });
      return el("div", { className: "ruling" }, el("span", { textContent: `${e.title}（${fmt(e.points)} 分）` }), choice, comment);
    });
    const final = el("input", { type: "checkbox" });
    const decide = el("button", { textContent: "提交裁决" });
    decide.addEventListener("click", async () => {
      const rulings = controls.map((c) => ({ entry: Number(c.querySelector("select").dataset.entry),
        decision: c.querySelector("select").value, comment: c.querySelector("input").value }));
      const { ok: done, data: result } = await api("POST", `/api/appeals/${appeal.id}/rulings`, { rulings, final: final.checked });
      if (!done) return say(result?.error || "裁决失败", "error");
      say(`申诉 #${appeal.id} 已裁决`, "ok");
      loadOpenAppeals();
    });
    li.append(...controls, el("label", {}, final, " 终审"), decide);
    return li;
  }));
  if (!data.appeals.length) $("open-appeals").replaceChildren(el("li", { className: "muted", textContent: "没有待裁决的申诉" }));
}

// --- 辅导与表扬: reviewers' notes on the agent's calls, each marked read (已阅) here ---------------------------------
async function loadMyCoaching() {
  const { ok, data } = await api("GET", "/api/appeals/mine/coaching");
  if (!ok) return say(data?.error || "无法读取辅导记录", "error");
  const notes = data.notes.map((n) => {
    const read = el("button", { textContent: n.acknowledged_at ? "已阅" : "标为已阅", disabled: !!n.acknowledged_at });
    read.dataset.testid = "acknowledge";
    read.addEventListener("click", async () => {
      const answer = await api("POST", `/api/appeals/mine/coaching/${n.id}`);
      if (!answer.ok) return say(answer.data?.error || "未能标记", "error");
      say("已标为已阅", "ok");
      loadMyCoaching();
    });
    const open = el("a", { href: "#", textContent: n.call_id });
    open.addEventListener("click", (event) => { event.preventDefault(); openMyCall(n.call_id); });
    const li = el("li", { className: n.praise ? "praise" : "coaching" },
      el("strong", { textContent: n.praise ? "表扬 " : "辅导 " }), open,
      el("div", { textContent: `${n.sent_by}：${n.comment}` }), read);
    li.dataset.noteId = String(n.id);
    return li;
  });
  $("my-coaching").replaceChildren(...(notes.length ? notes : [el("li", { className: "muted", textContent: "暂无" })]));
}

// --- log in ------------------------------------------------------------------------------------------------------
async function start() {
  // Who the key is (any role may ask), then only the routes that role may use: no 403s in the console.
  const me = key ? await fetch("/api/me", { headers: { Authorization: `Bearer ${key}` } }) : null;
  const who = me?.ok ? await me.json() : null;
  if (who?.role === "agent") {
    $("who").textContent = `坐席 ${who.name || who.id}`;
    $("agent-view").hidden = false;
    $("login").hidden = true;
    await loadMyCoaching();
    return loadMyCalls();
  }
  if (who) {
    if (who.role === "lead" || who.role === "admin") {
      $("who").textContent = `质检主管 ${who.name || who.id}`;
      $("lead-view").hidden = false;
      $("login").hidden = true;
      return loadOpenAppeals();
    }
  }
  sessionStorage.removeItem("callqa.key");
  $("login").hidden = false;
  $("login-error").textContent = key ? "该密钥不能申诉或裁决（需要坐席或质检主管密钥）" : "";
}

onLogin(start);
$("file").addEventListener("click", fileAppeal);
start();
