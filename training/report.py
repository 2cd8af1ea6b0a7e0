"""report.html: warnings first, a glossary of the metrics, then per head (Chinese names beside ids) the metrics next
to the baselines, the confusion matrix with every count readable, per-topic precision/recall/F1 at the tuned
thresholds, calibration, and the worst calls with redacted excerpts; then error by call length.

One self-contained file (plots inlined as PNG), so it can be mailed or attached to a model bundle.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from callqa.calls import Call  # noqa: E402
from callqa.heads import LOWER_IS_BETTER  # noqa: E402
from callqa.redact import redact_call  # noqa: E402
from callqa.schema import LabelSchema  # noqa: E402

from .run import RunInfo  # noqa: E402

# Chart text in Chinese where this machine has a CJK font for matplotlib; otherwise in English (never boxes).
CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei"]
_CJK = next((f for f in CJK_FONTS if f in {font.name for font in matplotlib.font_manager.fontManager.ttflist}), None)
if _CJK:
    plt.rcParams["font.sans-serif"] = [_CJK, *plt.rcParams["font.sans-serif"]]


def _say(chinese: str, english: str) -> str:
    return chinese if _CJK else english


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _calibration(head, curves: dict[str, list[dict]]) -> str:
    fig, ax = plt.subplots(figsize=(3.2, 3.0))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for name, curve in curves.items():
        ax.plot([c["confidence"] for c in curve], [c["accuracy"] for c in curve], marker="o", ms=3, label=name)
    ax.set_xlabel(_say("置信度", "confidence"))
    ax.set_ylabel(_say("实际准确率", "accuracy"))
    ax.set_title(_say(f"{head.display}：校准曲线", f"{head.name}: calibration"))
    ax.legend(fontsize=7)
    return _png(fig)


def _by_length(by_length: dict[str, list[dict]]) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for head, buckets in by_length.items():
        ax.plot([b["tokens"] for b in buckets], [b["nmd"] for b in buckets], marker="o", label=head)
    ax.set_xlabel(_say("通话长度（token 数）", "call length (tokens)"))
    ax.set_ylabel(_say("NMD（越低越好）", "NMD (lower is better)"))
    ax.set_title(_say("按通话长度的模型误差", "model error by call length"))
    ax.legend(fontsize=7)
    return _png(fig)


# What every metric means, for readers who are not data scientists (QA leads read this report too).
GLOSSARY = [
    ("nmd", "NMD 归一化匹配距离", "lower", "模型预测的等级分布与标注员分布之间的距离（STC-3 官方指标）；0 = 完全一致，"
     "1 = 全部概率落在相反的两端"),
    ("rsnod", "RSNOD 序数散度", "lower", "与 NMD 类似，但对差值取平方：离标注员越远的概率罚得越重"),
    ("qwk", "QWK 二次加权 Kappa", "higher", "最可能等级与多数标注的一致程度（扣除随机一致）；差一级比差两级罚得轻；"
     "1 = 完全一致，0 = 与随机相当；只有一个等级时无法计算（–）"),
    ("mae", "MAE 平均绝对误差", "lower", "期望得分与标注员平均分之间的平均差距（以等级计）"),
    ("accuracy", "准确率", "higher", "最可能等级等于多数标注的通话所占比例"),
    ("macro_f1", "宏平均 F1", "higher", "各类别 F1 的平均（主题：只算出现过的标签），少见的类别同样计入"),
    ("micro_f1", "微平均 F1", "higher", "把每个（通话，标签）判断合在一起计算的 F1"),
    ("ece", "ECE 期望校准误差", "lower", "模型的置信度与实际正确率之间的差距；0 = 置信度可信"),
    ("jsd", "JSD 詹森-香农散度", "lower", "逐句头：一句话的预测分布与标注员分布的散度（比特，0..1），先在一通电话的各句上平均，"
     "再在通话间平均（STC-3 的 nugget 指标）"),
    ("rnss", "RNSS 归一化平方和根", "lower", "逐句头：每句 sqrt(Σ (p − q)² / 2)（0..1），平均方式同 JSD"),
]
ARROW = {key: "↓" if direction == "lower" else "↑" for key, _, direction, _ in GLOSSARY}
SMALL_SET = 100  # calls: below this, differences of a few hundredths are mostly noise


def warnings_for(schema: LabelSchema, metrics: dict, calls: list[Call]) -> list[str]:
    """What a reader should know before trusting the numbers."""
    out = []
    if len(calls) < SMALL_SET:
        out.append(f"评估集只有 {len(calls)} 通：系统之间相差百分之几属于噪声；"
                   f"选择模型前请在至少 {SMALL_SET} 通留出的通话上评估。")
    agents = {c.agent_id for c in calls if c.agent_id}
    if len(agents) == 1:
        out.append("所有评估通话都来自同一名坐席：这些数字很难说明其他坐席的情况。")
    baseline = metrics.get("tfidf_lr", {})
    for head in schema.heads:
        key = head.spec.gate_metric
        model, base = metrics["model"][head.name].get(key), baseline.get(head.name, {}).get(key)
        if model is None or base is None:
            continue
        if (model > base) if key in LOWER_IS_BETTER else (model < base):
            out.append(f"{head.display}（{head.name}）：模型的 {key} {model:.4f} 不如 TF-IDF + LR 基线的 {base:.4f}；"
                       f"需要更多标注、更多训练步数或换一种训练方案，模型才能在这里派上用场。")
    return out


def _confusion_table(head, matrix: list[list[int]]) -> str:
    """The confusion matrix as a table: every count readable, cells shaded by their share of the row."""
    e = html.escape
    names = [f"{c} {head.classes[c]}" for c in head.class_ids]
    rows = []
    for name, row in zip(names, matrix):
        total = sum(row) or 1
        cells = []
        for v in row:
            share = v / total
            # dark cells get white text, so the count is always visible
            colour = "#fff" if share > 0.5 else "#111"
            cells.append(f"<td style='background:rgba(31,111,235,{share:.2f});color:{colour}'>{v}</td>")
        rows.append(f"<tr><th>{e(name)}</th>{''.join(cells)}</tr>")
    header = "".join(f"<th>{e(n)}</th>" for n in names)
    return (f"<table class='confusion'><caption>混淆矩阵（行：多数标注，列：模型最可能的等级）</caption>"
            f"<tr><th></th>{header}</tr>{''.join(rows)}</table>")


def _per_label_table(head, per_label: dict) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(head.classes[c])} <small>({e(c)})</small></th><td>{m['support']}</td>"
                   f"<td>{m['threshold']:.2f}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
                   f"<td>{m['f1']:.3f}</td></tr>" for c, m in per_label.items())
    return ("<table><caption>每个主题（阈值在验证集上调定）</caption><tr><th>主题</th>"
            "<th>通话数</th><th>阈值</th><th>精确率 ↑</th><th>召回率 ↑</th><th>F1 ↑</th></tr>" + rows + "</table>")


def _excerpt(call: Call, limit: int = 160) -> str:
    text = " / ".join(f"{'坐席' if t.speaker == 'agent' else '客户'}：{t.text}" for t in redact_call(call).turns)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _worst_table(head, worst: list[dict], calls: dict[str, Call]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(w['call_id'])}</td><td>{w['error']:.3f}</td><td>{e(str(w['gold']))}</td>"
                   f"<td>{e(str(w['predicted']))}</td><td class='text'>{e(_excerpt(calls[w['call_id']]))}</td></tr>"
                   for w in worst if w["call_id"] in calls)
    what = head.spec.error_title
    return (f"<table class='worst'><caption>误差最大的 {len(worst)} 通（按{what}；号码已脱敏）</caption>"
            "<tr><th>通话</th><th>误差</th><th>标注</th><th>模型</th><th>对话摘录</th></tr>" + rows + "</table>")


def _glossary() -> str:
    rows = "".join(f"<tr><th>{key}</th><td>{html.escape(name)}</td><td>{'↓ 越低越好' if d == 'lower' else '↑ 越高越好'}"
                   f"</td><td class='text'>{html.escape(meaning)}</td></tr>" for key, name, d, meaning in GLOSSARY)
    return ("<details><summary>指标说明（点击展开）</summary><table><tr><th>指标</th><th>名称</th>"
            "<th>方向</th><th>含义</th></tr>" + rows + "</table></details>")


def write_report(path: Path, info: RunInfo, schema: LabelSchema, result: dict, calls: list[Call]) -> None:
    e = html.escape
    metrics = result["metrics"]
    systems = list(metrics)
    by_id = {c.call_id: c for c in calls}
    parts = [f"<h1>模型评估报告</h1><p>训练目录 <code>{e(result['run'])}</code> · 编码器 "
             f"<code>{e(str(info.encoder))}</code> · 评估通话 {result['n_calls']} 通，来自 "
             f"{', '.join(e(d['path']) for d in result['data'])} · 在 {info.n_train} 通上训练 {info.steps} 步"
             f"（最佳在第 {info.best_step} 步）</p><p class='note'>model = 本模型；prior = 只按训练集各等级比例预测的"
             f"基线；tfidf_lr = TF-IDF + 逻辑回归基线。模型应当明显好于两个基线。</p>"]
    notes = warnings_for(schema, metrics, calls)
    if notes:
        parts.append("<div class='warnings'><b>请先阅读</b><ul>"
                     + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul></div>")
    parts.append(_glossary())
    for head in schema.heads:
        keys = head.spec.table_metrics
        rows = "".join(
            f"<tr><th>{s}</th>" + "".join(
                "<td>–</td>" if metrics[s][head.name].get(k) is None else f"<td>{metrics[s][head.name][k]:.4f}</td>"
                for k in keys) + "</tr>"
            for s in systems if metrics[s][head.name].get("n")
        )
        parts.append(f"<h2>{e(head.display)} <small>{head.name} · {head.kind} · "
                     f"{metrics['model'][head.name].get('n', 0)} 通</small></h2>"
                     f"<table><tr><th></th>{''.join(f'<th>{k} {ARROW.get(k, str())}</th>' for k in keys)}</tr>{rows}"
                     "</table>")
        m = metrics["model"][head.name]
        if not m.get("n"):
            continue
        if "confusion" in m:
            parts.append(_confusion_table(head, m["confusion"]))
        if "per_label" in m:
            parts.append(_per_label_table(head, m["per_label"]))
        parts.append("<div>" + _calibration(head, {s: metrics[s][head.name]["calibration"] for s in systems
                                                   if "calibration" in metrics[s][head.name]}) + "</div>")
        if result.get("worst", {}).get(head.name):
            parts.append(_worst_table(head, result["worst"][head.name], by_id))
    for head in schema.turn_heads:  # per turn: STC-3's nugget metrics, then the argmax's accuracy and macro-F1
        keys = ("jsd", "rnss", "accuracy", "macro_f1")
        rows = "".join(f"<tr><th>{s}</th>" + "".join(
            "<td>–</td>" if metrics[s][head.name].get(k) is None else f"<td>{metrics[s][head.name][k]:.4f}</td>"
            for k in keys) + "</tr>" for s in systems if metrics[s][head.name].get("n"))
        m = metrics["model"][head.name]
        who = {"agent": "坐席", "customer": "客户"}.get(head.speaker or "", "全部")
        parts.append(f"<h2>{e(head.display)} <small>{head.name} · 逐句头（{who}的句子） · "
                     f"{m.get('dialogues', 0)} 通中的 {m.get('n', 0)} 句</small></h2><table><tr><th></th>"
                     f"{''.join(f'<th>{k} {ARROW.get(k, str())}</th>' for k in keys)}</tr>{rows}</table>")
        if "confusion" in m:
            parts.append(_confusion_table(head, m["confusion"]))
    if result.get("nmd_by_length"):
        parts.append("<h2>按通话长度的误差</h2>" + _by_length(result["nmd_by_length"]))
    style = ("body{font:14px system-ui,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;max-width:64rem;"
             "margin:2rem auto}table{border-collapse:collapse;margin:.6rem 0}caption{text-align:left;font-weight:600}"
             "td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:right}td.text{text-align:left}"
             "img{margin:.3rem}.warnings{background:#fffaeb;border:1px solid #fec84b;padding:.5rem 1rem;"
             "border-radius:6px}details{margin:1rem 0}.note{color:#555}")
    path.write_text(f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>callqa 模型评估报告</title>"
                    f"<style>{style}</style>" + "\n".join(parts), encoding="utf-8")
