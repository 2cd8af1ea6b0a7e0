// callqa review UI: plain JS over the review API (/api/reviews). Transcript text is only ever set as textContent.
"use strict";

const state = {
  key: sessionStorage.getItem("callqa.key") || "",
  heads: [],          // how to show each call head: widget, classes, thresholds (GET /api/model "heads")
  view: null,          // the open call (GET /api/reviews/calls/{id})
  edit: {},            // head → the value the reviewer is about to save
  active: 0,           // index of the head the number keys act on
  readOnly: false,     // leased to someone else
  visited: [],         // call ids opened this session, for "p"
  verdict: null,       // the reviewer's scorecard verdict: {false_hits, missed, points}
  evidence: null,      // per-turn attributions of the open call (GET …/evidence), when asked for
  reasons: {},         // head → turn indices the reviewer marks as the reason for that head's label
  showEvidence: false,
  timeZone: "UTC",
};

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  return { status: response.status, ok: response.ok, data };
}

// Words a QA team reads instead of the API's ids.
const ROLE_NAMES = { reviewer: "复核员", lead: "质检主管", admin: "管理员", agent: "坐席" };
// 双评 states (serving/store/double.py) and the review sources the history names.
const DOUBLE_NAMES = { pending: "待双评", differs: "待仲裁", agreed: "双评一致", adjudicated: "已仲裁" };
const SOURCE_NAMES = { appeal: "申诉改判", adjudication: "仲裁" };
const CHANNELS = { phone: "电话", chat: "在线客服", email: "邮件", wechat: "微信", app: "App", sms: "短信", video: "视频" };

function measureName(head, measure) {
  // "expected" (the expected score on a scale head) or "p(ID)" (the probability of class ID)
  if (measure === "expected") return "期望得分";
  const id = /^p\((.*)\)$/.exec(measure)?.[1];
  return id != null ? `「${head.classes[id] || id}」的概率` : measure;
}

// --- log in ------------------------------------------------------------------------------------------------------
async function login(key) {
  state.key = key;
  const model = await api("GET", "/api/model");
  if (model.status === 401) return fail("密钥无效或已吊销");
  if (!model.ok) return fail(`服务器错误 (${model.status})`);
  const me = await api("GET", "/api/reviews/me");
  if (me.status === 403) return fail("该密钥不是复核员密钥（需要 reviewer 角色）");
  if (!me.ok) return fail(`服务器错误 (${me.status})`);
  $("who").textContent = `${ROLE_NAMES[me.data.role] || "复核员"} ${me.data.name || me.data.id}`;
  sessionStorage.setItem("callqa.key", key);
  // How to show each head comes from the server (its widget, classes, thresholds): no branch on a head's kind here.
  state.heads = model.data.heads;
  const topics = state.heads.filter((h) => h.filterable)
    .flatMap((h) => Object.entries(h.classes).map(([id, name]) => new Option(name, id)));
  $("filter-form").topic.replaceChildren(new Option("全部话题", ""), ...topics);
  $("model").textContent = `模型 ${model.data.tag}`;
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  await loadQueue();
  // A link from a report (…/review/?call=ID) opens that call once logged in.
  const linked = new URLSearchParams(location.search).get("call");
  if (linked) await openCall(linked);
  return true;

  function fail(message) {
    state.key = "";
    sessionStorage.removeItem("callqa.key");
    $("login").hidden = false;
    $("app").hidden = true;
    $("login-error").textContent = message;
    return false;
  }
}

// --- queue -------------------------------------------------------------------------------------------------------
const ORDER_NAMES = { least_confident: "置信度最低优先", lowest_score: "预测得分最低优先", random: "随机" };

function filterParams() {
  // The filter form's non-empty fields (unchecked boxes send nothing): any of them makes the queue a search.
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filter-form"))) if (String(value).trim()) params.set(name, String(value).trim());
  return params;
}

function duration(seconds) {
  if (seconds == null) return "";
  return `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;
}

async function loadQueue() {
  const params = filterParams();
  params.set("limit", "100");
  const { ok, data } = await api("GET", `/api/reviews/queue?${params}`);
  if (!ok) return status(data?.error || "筛选条件有误", "bad");
  $("waiting").textContent = data.waiting;
  state.timeZone = data.time_zone;  // the server's report zone: every time on the page is shown in it
  const p = data.policy;
  $("policy").textContent = data.filtered ? `筛选结果 ${data.waiting} 通（最新在前）`
    : `${ORDER_NAMES[p.order]} · 抽检 ${(p.sample_rate * 100).toFixed(0)}%`;
  const list = $("queue");
  list.replaceChildren();
  for (const item of data.items) {
    const li = el("li", { title: `不确定度 ${item.entropy.toFixed(2)}` },
      el("span", { textContent: item.call_id }));
    li.dataset.callId = item.call_id;
    if (item.sampled) li.append(el("span", { className: "sampled", textContent: "抽检" }));
    if (item.red_line) li.append(el("span", { className: "sampled", textContent: "红线" }));
    if (item.revision) li.append(el("span", { className: "reviewed", textContent: "已复核" }));
    if (item.double) li.append(el("span", { className: "sampled", textContent: DOUBLE_NAMES[item.double] }));
    const when = item.started_at ? new Date(item.started_at).toLocaleString("zh-CN", { timeZone: data.time_zone,
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "";
    const who = item.agent_id ? `${item.agent_name || "坐席"} ${item.agent_id}` : "";
    const facts = [who, when, duration(item.duration), item.total != null ? `${fmt(item.total)} 分` : `${item.turns} 轮`];
    li.append(el("div", { className: "muted small", textContent: facts.filter(Boolean).join(" · ") }));
    if (state.view && item.call_id === state.view.call.call_id) li.classList.add("current");
    li.addEventListener("click", () => openCall(item.call_id));
    list.append(li);
  }
}

// --- one call ----------------------------------------------------------------------------------------------------
async function openCall(callId, remember = true) {
  await releaseCurrent();
  let response = await api("POST", `/api/reviews/calls/${encodeURIComponent(callId)}/open`);
  state.readOnly = false;
  let banner = "";
  if (response.status === 423) {  // someone else is on it: show it, but read-only
    banner = response.data.error.replace(/^call \S+ is being reviewed by (\S+) until (.*)$/, "该通话正由 $1 复核（至 $2），只读");
    response = await api("GET", `/api/reviews/calls/${encodeURIComponent(callId)}`);
    state.readOnly = true;
  }
  if (!response.ok) return status(response.data?.error || `无法打开 (${response.status})`, "bad");
  show(response.data, banner);
  if (remember && state.visited.at(-1) !== callId) state.visited.push(callId);
  await loadQueue();
}

async function nextCall() {
  await releaseCurrent();
  const response = await api("POST", "/api/reviews/next");
  if (response.status === 204) { status("队列已空 🎉", "ok"); return; }
  if (!response.ok) return status(response.data?.error || `错误 (${response.status})`, "bad");
  show(response.data, "");
  state.visited.push(response.data.call.call_id);
  await loadQueue();
}

async function previousCall() {
  const current = state.view?.call.call_id;
  const stack = state.visited.filter((id) => id !== current);
  if (!stack.length) return;
  state.visited = stack;
  await openCall(stack.at(-1), false);
}

async function releaseCurrent() {
  if (state.view && !state.readOnly) {
    await api("POST", `/api/reviews/calls/${encodeURIComponent(state.view.call.call_id)}/release`);
  }
}

function show(view, banner) {
  state.view = view;
  state.active = 0;
  state.edit = {};
  // The verdicts of record (the latest review's, appeal rulings on top): a reopened call shows the reviewer's card,
  // and saving again sends them back whole.
  const v = view.verdicts;
  state.verdict = v ? structuredClone({ false_hits: v.false_hits, missed: v.missed, points: v.points })
    : { false_hits: [], missed: [], points: {} };
  state.evidence = null;
  state.reasons = {};
  for (const head of state.heads) {
    const current = view.labels[head.name];
    state.edit[head.name] = current !== undefined ? current : modelValue(view, head);
  }
  $("empty").hidden = true;
  $("call").hidden = false;
  $("score-pane").hidden = false;
  const call = view.call;
  $("call-title").textContent = call.call_id;
  const meta = [call.agent_id && `坐席 ${call.agent_id}`,
    call.started_at && new Date(call.started_at).toLocaleString("zh-CN", { timeZone: state.timeZone }),
    call.channel && (CHANNELS[call.channel] || call.channel), `模型 ${view.model}`, view.revision ? `已复核 ${view.revision} 次` : "未复核"].filter(Boolean);
  $("call-meta").textContent = meta.join(" · ");
  banner = banner || doubleNotice(view);
  $("banner").hidden = !banner;
  $("banner").textContent = banner;
  $("transcript").replaceChildren(...call.turns.map((turn, index) => {
    const who = turn.speaker === "agent" ? "坐席" : "客户";
    const when = turn.start != null ? ` ${clock(turn.start)}` : "";
    const reason = el("button", { type: "button", className: "reason", title: "标为当前项目评分的原因（按 r）" });
    reason.addEventListener("click", (e) => { e.stopPropagation(); toggleReason(index); });
    const li = el("li", { className: turn.speaker }, el("div", { className: "who", textContent: who + when },
      ...turnBadges(view, index), reason), el("div", { className: "text", textContent: turn.text }));
    return li;
  }));
  $("comment").value = "";
  $("submit").disabled = state.readOnly;
  status("", "");
  renderHeads();
  renderScorecard(view.record);
  renderHistory();
  if (state.showEvidence) loadEvidence();
}

// The model's turn heads (STC-3 nuggets: 提出问题 / 给出方案 …) as a badge on each turn they label.
function turnBadges(view, index) {
  return Object.values(view.scores.turns || {}).map((scores) => scores[index]).filter(Boolean).map((score) =>
    el("span", { className: "nugget", textContent: score.level_name,
      title: `${score.display}：${score.level_name}（${Math.round(score.confidence * 100)}%）` }));
}

// --- reasons: turns a reviewer marks as why a head has its label -------------------------------------------------
function toggleReason(turn) {
  if (state.readOnly) return;
  const head = state.heads[state.active].name;
  const marked = new Set(state.reasons[head] || []);
  marked.has(turn) ? marked.delete(turn) : marked.add(turn);
  state.reasons[head] = [...marked].sort((a, b) => a - b);
  renderReasons();
}

function renderReasons() {
  const head = state.heads[state.active];
  document.querySelectorAll("#transcript li").forEach((li, i) => {
    const heads = state.heads.filter((h) => (state.reasons[h.name] || []).includes(i));
    const mine = heads.includes(head);
    li.classList.toggle("reason-marked", heads.length > 0);
    const button = li.querySelector("button.reason");
    button.textContent = mine ? `★ ${head.display}的原因` : heads.length ? `★ ${heads.map((h) => h.display).join("、")}` : "标为原因";
    button.setAttribute("aria-pressed", String(mine));
  });
}

// --- evidence: how much each turn moved the active head's score --------------------------------------------------
async function loadEvidence() {
  const callId = state.view.call.call_id;
  status("正在计算模型依据…", "");
  const response = await api("GET", `/api/reviews/calls/${encodeURIComponent(callId)}/evidence`);
  if (state.view?.call.call_id !== callId) return;  // another call was opened meanwhile
  if (!response.ok) return status(`无法计算依据：${response.data?.error || response.status}`, "bad");
  status("", "");
  state.evidence = response.data;
  shadeTurns();
}

function shadeTurns() {
  const turns = [...document.querySelectorAll("#transcript li")];
  const head = state.heads[state.active];
  const found = state.showEvidence && state.evidence?.heads[head.name];
  const top = found ? Math.max(...found.turns.map(Math.abs), 1e-9) : 1;
  const up = found ? found.turns.indexOf(Math.max(...found.turns)) : -1;
  const down = found ? found.turns.indexOf(Math.min(...found.turns)) : -1;
  turns.forEach((li, i) => {
    li.classList.remove("most-up", "most-down");
    if (!found) {
      delete li.dataset.weight;
      li.style.borderLeftColor = "";
      li.removeAttribute("title");
      return;
    }
    const w = found.turns[i] ?? 0;
    const alpha = (Math.abs(w) / top).toFixed(2);
    li.dataset.weight = w.toFixed(4);
    li.style.borderLeftColor = w >= 0 ? `rgba(6,118,71,${alpha})` : `rgba(180,35,24,${alpha})`;
    li.title = `去掉这句后，${head.display}（${measureName(head, found.measure)}）变化 ${(-w).toFixed(3)}：这句的影响 ${w >= 0 ? "+" : ""}${w.toFixed(3)}`;
    if (i === up && w > 0) li.classList.add("most-up");
    if (i === down && w < 0) li.classList.add("most-down");
  });
}

// --- the scorecard -----------------------------------------------------------------------------------------------
const sameHit = (a, b) => a.item === b.item && a.rule === b.rule && a.turn === b.turn && a.start === b.start;

// The score of record is the server's to compute (serving/record.py): the card shows what it answers for the
// verdicts marked so far, never a total of its own.
let recordAsked = 0;

async function refreshScorecard() {
  const callId = state.view.call.call_id;
  const asked = ++recordAsked;
  const response = await api("POST", `/api/reviews/calls/${encodeURIComponent(callId)}/record`, state.verdict);
  if (asked !== recordAsked || state.view?.call.call_id !== callId) return;  // a newer mark or another call
  if (!response.ok) return status(`评分表核对失败：${response.data?.error || response.status}`, "bad");
  renderScorecard(response.data);
}

function renderScorecard(record) {
  const card = state.view.scores.scorecard;
  $("card-pane").hidden = !card;
  if (!card || !record) return;
  state.record = record;
  const of = Object.fromEntries(record.sections.flatMap((s) => s.items).map((i) => [i.id, i]));
  $("card-total").textContent = `${fmt(record.total)} / ${fmt(record.max_total)}`;
  $("card-redline").hidden = !record.red_line;
  $("card-redline").textContent = "触发红线（一票否决）：总分为 0";
  const box = $("scorecard");
  box.replaceChildren();
  record.sections.forEach((recorded, n) => {
    const section = card.sections[n];
    const part = el("div", { className: "card-section" },
      el("h4", {}, el("span", { textContent: section.title }), el("span", { textContent: `${fmt(recorded.points)} / ${fmt(section.max_points)}` })));
    for (const item of section.items) part.append(renderItem(item, of[item.id]));
    box.append(part);
  });
}

function renderItem(item, recorded) {
  const node = el("div", { className: "card-item" + (recorded.applicable ? "" : " na") + (recorded.red_line ? " red" : "") });
  node.dataset.item = item.id;
  const input = el("input", { type: "number", min: 0, max: item.max_points, step: 0.5, value: fmt(recorded.points),
    disabled: state.readOnly, title: "调整该项得分" });
  input.setAttribute("aria-label", `${item.title} 得分`);
  input.addEventListener("change", () => {
    const value = Math.max(0, Math.min(item.max_points, Number(input.value)));
    if (Number.isFinite(value)) state.verdict.points[item.id] = value;
    refreshScorecard();
  });
  const missed = el("button", { type: "button", textContent: "漏扣", title: "先在对话中选中文字，再点此补充扣分", disabled: state.readOnly });
  missed.addEventListener("click", () => addMissed(item));
  const source = item.from_model != null ? ` · 模型 ${fmt(item.from_model)}` : "";
  node.append(el("div", { className: "row" },
    el("span", { className: "title", textContent: item.title + (item.applicable ? "" : "（不适用）") }),
    el("span", { className: "muted small", textContent: `满分 ${fmt(item.max_points)}${source}` }), input, missed));
  const list = el("ul", { className: "deductions" });
  for (const d of item.deductions) {
    const ref = { item: item.id, rule: d.rule, turn: d.turn, start: d.start };
    const wrong = state.verdict.false_hits.some((h) => sameHit(h, ref));
    const where = d.text != null ? `「${d.text}」` : d.seconds != null ? `${d.seconds.toFixed(1)} 秒` : d.value != null ? `${d.value}` : "";
    const toggle = el("button", { type: "button", textContent: "误判", disabled: state.readOnly });
    toggle.setAttribute("aria-pressed", String(wrong));
    toggle.addEventListener("click", (e) => {
      e.stopPropagation();
      const hits = state.verdict.false_hits.filter((h) => !sameHit(h, ref));
      state.verdict.false_hits = wrong ? hits : [...hits, ref];
      refreshScorecard();
    });
    const li = el("li", { className: "deduction" + (wrong ? " wrong" : ""), title: "定位到原文" },
      el("span", { className: "what", textContent: `${d.title} −${fmt(d.points)} ${where}` }), toggle);
    // A semantic rule's hit: the criterion's example it came closest to, and how close (相似度).
    if (d.example) {
      li.append(el("div", { className: "muted small example", textContent:
        `最接近的示例：「${d.example}」${d.value != null ? `（相似度 ${d.value.toFixed(3)}）` : ""}` }));
    }
    li.dataset.rule = d.rule;
    li.addEventListener("click", () => showEvidence(d));
    list.append(li);
  }
  const taken = recorded.deductions.filter((d) => d.missed);
  state.verdict.missed.filter((x) => x.item === item.id).forEach((m, n) => {
    const text = state.view.call.turns[m.turn].text;
    const points = taken[n] ? ` −${fmt(taken[n].points)}` : "";
    list.append(el("li", { className: "missed", textContent: `漏扣${points}：第 ${m.turn + 1} 句「${m.start != null ? text.slice(m.start, m.end) : text}」` }));
  });
  node.append(list);
  return node;
}

function showEvidence(d) {
  // Clear earlier marks, then mark the span (or the turns of a timing hit) and scroll to it. Text stays textContent.
  const turns = [...document.querySelectorAll("#transcript li")];
  turns.forEach((li, i) => {
    li.classList.remove("evidence");
    li.querySelector(".text").textContent = state.view.call.turns[i].text;
  });
  for (const index of [d.turn, d.other_turn].filter((i) => i != null && turns[i])) turns[index].classList.add("evidence");
  const li = turns[d.turn];
  if (!li) return;
  if (d.start != null && d.end != null) {
    const text = state.view.call.turns[d.turn].text;
    li.querySelector(".text").replaceChildren(text.slice(0, d.start), el("mark", { textContent: text.slice(d.start, d.end) }),
      text.slice(d.end));
  }
  li.scrollIntoView({ block: "center", behavior: "smooth" });
}

function addMissed(item) {
  const selection = window.getSelection();
  const node = selection?.rangeCount ? selection.getRangeAt(0) : null;
  const textNode = node && (node.startContainer.parentElement?.closest(".text"));
  const li = textNode?.closest("#transcript li");
  if (!li || selection.isCollapsed) return status("请先在对话中选中要扣分的文字", "bad");
  const turn = [...li.parentElement.children].indexOf(li);
  const before = document.createRange();
  before.setStart(textNode, 0);
  before.setEnd(node.startContainer, node.startOffset);
  const start = before.toString().length;
  const end = Math.min(start + selection.toString().length, state.view.call.turns[turn].text.length);
  state.verdict.missed.push({ item: item.id, turn, start, end });
  selection.removeAllRanges();
  refreshScorecard();
}

function fmt(x) { return Number.isInteger(x) ? String(x) : x.toFixed(1); }

function modelValue(view, head) {
  const score = view.scores.scores[head.name];
  if (!score) return head.multiple ? [] : null;
  return head.multiple ? [...score.predicted] : score.level;
}

function classList(head) { return Object.entries(head.classes); }  // [id, 中文名] in scale order

function renderHeads() {
  const box = $("heads");
  box.replaceChildren();
  state.heads.forEach((head, index) => {
    const score = state.view.scores.scores[head.name];
    const card = el("div", { className: "head" + (index === state.active ? " active" : "") });
    card.dataset.head = head.name;
    card.addEventListener("click", () => { state.active = index; markActive(); });
    const value = state.edit[head.name];
    const changed = JSON.stringify(value) !== JSON.stringify(modelValue(state.view, head));
    const title = el("h4", {}, el("span", { textContent: head.display }),
      el("span", { className: "changed", textContent: changed ? "已修改" : "" }));
    card.append(title);
    if (head.widget === "labels") {
      const chips = el("div", { className: "chips" });
      const probs = Object.fromEntries((score?.labels || []).map((l) => [l.id, l.probability]));
      const pct = (x) => `${((x || 0) * 100).toFixed(0)}%`;
      classList(head).forEach(([id, name], i) => {
        const chosen = value.includes(id);
        const predicted = score?.predicted.includes(id);
        const chip = el("button", { type: "button", className: (chosen ? "chosen" : "") + (predicted ? " model" : ""),
          title: `${i < 9 ? `按 ${i + 1} · ` : ""}模型概率 ${pct(probs[id])}（阈值 ${pct(head.thresholds[id])}）` },
          el("span", { textContent: name }), el("span", { className: "p", textContent: `${((probs[id] || 0) * 100).toFixed(0)}%` }));
        chip.dataset.value = id;
        chip.setAttribute("aria-pressed", String(chosen));
        chip.addEventListener("click", (e) => { e.stopPropagation(); setValue(index, i); });
        chips.append(chip);
      });
      card.append(chips);
    } else {
      if (score) {
        const confidence = score.confidence;
        card.append(el("div", { className: "muted small",
          textContent: `模型：${score.level_name}${head.expected && score.expected != null ? `（期望 ${score.expected.toFixed(2)}）` : ""} · 置信度 ${(confidence * 100).toFixed(0)}%` }));
        const bar = el("div", { className: "bar", title: `置信度 ${(confidence * 100).toFixed(0)}%` },
          el("span", { style: `width:${(confidence * 100).toFixed(1)}%` }));
        card.append(bar);
      }
      const levels = el("div", { className: "levels" });
      classList(head).forEach(([id, name], i) => {
        const p = score ? score.distribution[id] : 0;
        const button = el("button", { type: "button", className: (value === id ? "chosen" : "") + (score?.level === id ? " model" : ""),
          title: `按 ${i + 1} · 模型概率 ${(p * 100).toFixed(0)}%`, textContent: `${i + 1} ${name}` });
        button.dataset.value = id;
        button.setAttribute("aria-pressed", String(value === id));
        button.addEventListener("click", (e) => { e.stopPropagation(); setValue(index, i); });
        levels.append(button);
      });
      card.append(levels);
    }
    box.append(card);
  });
  shadeTurns();  // the active head may have changed
  renderReasons();
}

function markActive() {
  document.querySelectorAll("#heads .head").forEach((card, i) => card.classList.toggle("active", i === state.active));
  shadeTurns();
  renderReasons();
}

function setValue(headIndex, optionIndex) {
  if (state.readOnly) return;
  const head = state.heads[headIndex];
  const ids = Object.keys(head.classes);
  if (optionIndex >= ids.length) return;
  const id = ids[optionIndex];
  if (head.multiple) {
    const set = new Set(state.edit[head.name]);
    set.has(id) ? set.delete(id) : set.add(id);
    state.edit[head.name] = ids.filter((x) => set.has(x));
  } else {
    state.edit[head.name] = id;
  }
  state.active = headIndex;
  renderHeads();
}

function doubleNotice(view) {
  if (view.blind) return "双评：请独立评分。另一位质检员的结果在您保存后才显示。";
  if (view.double === "pending") return "双评：等待第二位质检员独立复核。";
  if (view.double === "differs") return "双评结果不一致：待组长仲裁，组长保存的结果即为最终结果。";
  return "";
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  const names = Object.fromEntries(state.heads.map((h) => [h.name, h]));
  const show = (head, value) => {
    if (value == null) return "—";
    const h = names[head];
    if (!h) return JSON.stringify(value);
    return Array.isArray(value) ? (value.map((v) => h.classes[v] || v).join("、") || "无") : (h.classes[value] || value);
  };
  if (!state.view.history.length) list.append(el("li", { className: "muted", textContent: "尚无复核" }));
  for (const review of state.view.history) {
    const when = new Date(review.created).toLocaleString("zh-CN");
    const source = SOURCE_NAMES[review.source] ? ` · ${SOURCE_NAMES[review.source]}` : "";
    const li = el("li", {}, el("div", { textContent: `${when} · ${review.reviewer_name || review.reviewer}${source}` }));
    const changes = review.changes.filter((c) => JSON.stringify(c.previous) !== JSON.stringify(c.value));
    for (const c of changes) {
      li.append(el("div", { className: "small", textContent: `${names[c.head]?.display || c.head}：${show(c.head, c.previous)} → ${show(c.head, c.value)}` }));
    }
    if (!changes.length) li.append(el("div", { className: "small muted", textContent: "确认模型预测，无修改" }));
    const v = review.scorecard;
    if (v) {
      const parts = [v.false_hits.length && `误判 ${v.false_hits.length} 处`, v.missed.length && `漏扣 ${v.missed.length} 处`,
        Object.keys(v.points).length && `调整 ${Object.keys(v.points).length} 项得分`].filter(Boolean);
      li.append(el("div", { className: "small", textContent: `评分表：${parts.join("，")}` }));
    }
    for (const [head, turns] of Object.entries(review.reasons || {})) {
      li.append(el("div", { className: "small", textContent: `${names[head]?.display || head}的原因：第 ${turns.map((t) => t + 1).join("、")} 句` }));
    }
    if (review.comment) li.append(el("div", { className: "small", textContent: `备注：${review.comment}` }));
    list.append(li);
  }
}

async function submit() {
  if (!state.view || state.readOnly) return;
  const labels = {};
  for (const head of state.heads) {
    if (state.edit[head.name] != null) labels[head.name] = state.edit[head.name];
  }
  $("submit").disabled = true;
  const callId = state.view.call.call_id;
  // With a card, the reviewer's verdicts are sent whole (even none: un-marking every 误判 is a verdict too).
  const verdict = state.view.scores.scorecard ? state.verdict : undefined;
  const reasons = Object.fromEntries(Object.entries(state.reasons).filter(([, turns]) => turns.length));
  const response = await api("POST", `/api/reviews/calls/${encodeURIComponent(callId)}/reviews`,
    { revision: state.view.revision, labels, comment: $("comment").value, scorecard: verdict, reasons });
  $("submit").disabled = false;
  if (response.status === 201) {
    const fresh = await api("GET", `/api/reviews/calls/${encodeURIComponent(callId)}`);
    if (fresh.ok) show(fresh.data, "");
    status("已保存 ✓ 按 n 打开下一通", "ok");
    await loadQueue();
  } else if (response.status === 409 && /revision/.test(response.data?.error || "")) {
    status("保存失败：该通话在您打开后已被他人复核。请重新打开查看最新结果后再提交。", "bad");
  } else if (response.status === 409) {
    status(`保存失败：标记与该通话的评分表不符，请重新打开后再标记（${response.data?.error || 409}）`, "bad");
  } else {
    status(`保存失败：${response.data?.error || response.status}`, "bad");
  }
}

// 辅导与表扬: a reviewed call goes to its agent with a comment; the agent reads it on the appeals page.
async function sendCoaching() {
  if (!state.view) return;
  const comment = $("coach-comment").value.trim();
  if (!comment) return status("请填写给坐席的意见", "bad");
  const response = await api("POST", `/api/reviews/calls/${encodeURIComponent(state.view.call.call_id)}/coaching`,
    { comment, praise: $("coach-praise").checked });
  if (response.status === 201) {
    $("coach-comment").value = "";
    status(`已发送给坐席${response.data.praise ? "（表扬）" : ""}`, "ok");
  } else if (response.status === 409) {
    status("请先提交复核，再发送给坐席", "bad");
  } else {
    status(`发送失败：${response.data?.error || response.status}`, "bad");
  }
}

function status(text, kind) {
  const node = $("save-status");
  node.textContent = text;
  node.className = kind;
}

function clock(seconds) {
  const s = Math.floor(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// --- keyboard ----------------------------------------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  if ($("app").hidden) return;
  const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(document.activeElement?.tagName);
  if (typing) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
    if (event.key === "Escape") document.activeElement.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "n") { event.preventDefault(); nextCall(); }
  else if (event.key === "p") { event.preventDefault(); previousCall(); }
  else if (event.key === "Enter") { event.preventDefault(); submit(); }
  else if (event.key === "r" && state.view) {
    // r: mark the turn under the text selection (or the last clicked turn) as the reason for the active head
    const li = window.getSelection()?.anchorNode?.parentElement?.closest("#transcript li");
    if (li) { event.preventDefault(); toggleReason([...li.parentElement.children].indexOf(li)); }
  }
  else if (!state.view) return;
  else if (/^[1-9]$/.test(event.key)) { event.preventDefault(); setValue(state.active, Number(event.key) - 1); }
  else if (event.key === "ArrowDown" || event.key === "j") {
    event.preventDefault(); state.active = Math.min(state.active + 1, state.heads.length - 1); markActive();
  } else if (event.key === "ArrowUp" || event.key === "k") {
    event.preventDefault(); state.active = Math.max(state.active - 1, 0); markActive();
  }
});

$("login-form").addEventListener("submit", (event) => { event.preventDefault(); login($("key").value.trim()); });
$("filter-form").addEventListener("submit", (event) => { event.preventDefault(); loadQueue(); });
$("filter-form").addEventListener("reset", () => setTimeout(loadQueue));
$("submit").addEventListener("click", submit);
$("coach-send").addEventListener("click", sendCoaching);
$("evidence-toggle").addEventListener("click", () => {
  state.showEvidence = !state.showEvidence;
  $("evidence-toggle").setAttribute("aria-pressed", String(state.showEvidence));
  if (state.showEvidence && !state.evidence && state.view) loadEvidence(); else shadeTurns();
});
$("logout").addEventListener("click", async () => {
  await releaseCurrent();
  sessionStorage.removeItem("callqa.key");
  location.reload();
});

// Keep the lease of the open call while the reviewer works on it (leases run 15 minutes by default).
setInterval(() => {
  if (state.view && !state.readOnly) api("POST", `/api/reviews/calls/${encodeURIComponent(state.view.call.call_id)}/open`);
}, 4 * 60 * 1000);

if (state.key) login(state.key); else $("login").hidden = false;
