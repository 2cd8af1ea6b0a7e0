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
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{head.name}: calibration")
    ax.legend(fontsize=7)
    return _png(fig)


def _by_length(by_length: dict[str, list[dict]]) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for head, buckets in by_length.items():
        ax.plot([b["tokens"] for b in buckets], [b["nmd"] for b in buckets], marker="o", label=head)
    ax.set_xlabel("call length (tokens)")
    ax.set_ylabel("NMD (lower is better)")
    ax.set_title("model error by call length")
    ax.legend(fontsize=7)
    return _png(fig)


# What every metric means, for readers who are not data scientists (QA leads read this report too).
GLOSSARY = [
    ("nmd", "NMD 归一化匹配距离", "lower", "distance between the predicted and the annotators' distribution over levels "
     "(STC-3's official metric); 0 = identical, 1 = all mass at opposite ends"),
    ("rsnod", "RSNOD 序数散度", "lower", "like NMD but squares the differences: penalises mass far from the annotators' more"),
    ("qwk", "QWK 二次加权 Kappa", "higher", "agreement of the most likely level with the majority label beyond chance; "
     "one level off costs less than two; 1 = perfect, 0 = chance; – where undefined (one level only)"),
    ("mae", "MAE 平均绝对误差", "lower", "mean distance between the expected score and the annotators' mean, in levels"),
    ("accuracy", "准确率", "higher", "share of calls whose most likely level is the majority label"),
    ("macro_f1", "宏平均 F1", "higher", "F1 averaged over classes (topics: over labels that occur), so rare classes count"),
    ("micro_f1", "微平均 F1", "higher", "F1 over every (call, label) decision"),
    ("ece", "ECE 期望校准误差", "lower", "gap between the model's confidence and how often it is right; 0 = calibrated"),
    ("jsd", "JSD 詹森-香农散度", "lower", "turn heads: divergence of the predicted from the annotators' distribution of a "
     "turn, in bits (0..1), averaged over a call's turns, then calls (STC-3's nugget metric)"),
    ("rnss", "RNSS 归一化平方和根", "lower", "turn heads: sqrt(Σ (p − q)² / 2) per turn (0..1), averaged like JSD"),
]
ARROW = {key: "↓" if direction == "lower" else "↑" for key, _, direction, _ in GLOSSARY}
SMALL_SET = 100  # calls: below this, differences of a few hundredths are mostly noise


def warnings_for(schema: LabelSchema, metrics: dict, calls: list[Call]) -> list[str]:
    """What a reader should know before trusting the numbers."""
    out = []
    if len(calls) < SMALL_SET:
        out.append(f"Only {len(calls)} evaluation calls: differences of a few hundredths between systems are within "
                   f"noise here; evaluate on at least {SMALL_SET} held-out calls before choosing a model.")
    agents = {c.agent_id for c in calls if c.agent_id}
    if len(agents) == 1:
        out.append("Every evaluation call comes from one agent: the numbers say little about other agents.")
    baseline = metrics.get("tfidf_lr", {})
    for head in schema.heads:
        key = head.spec.gate_metric
        model, base = metrics["model"][head.name].get(key), baseline.get(head.name, {}).get(key)
        if model is None or base is None:
            continue
        if (model > base) if key in LOWER_IS_BETTER else (model < base):
            out.append(f"{head.display} ({head.name}): the model's {key} {model:.4f} is worse than TF-IDF + LR's "
                       f"{base:.4f}; more labels, more steps or another recipe are needed before it helps here.")
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
    return (f"<table class='confusion'><caption>混淆矩阵 confusion (rows: majority label, columns: model's most likely "
            f"level)</caption><tr><th></th>{header}</tr>{''.join(rows)}</table>")


def _per_label_table(head, per_label: dict) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(head.classes[c])} <small>({e(c)})</small></th><td>{m['support']}</td>"
                   f"<td>{m['threshold']:.2f}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
                   f"<td>{m['f1']:.3f}</td></tr>" for c, m in per_label.items())
    return ("<table><caption>每个主题 per label, at the thresholds tuned on validation</caption><tr><th>label</th>"
            "<th>calls</th><th>threshold</th><th>precision ↑</th><th>recall ↑</th><th>F1 ↑</th></tr>" + rows + "</table>")


def _excerpt(call: Call, limit: int = 160) -> str:
    text = " / ".join(f"{'坐席' if t.speaker == 'agent' else '客户'}：{t.text}" for t in redact_call(call).turns)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _worst_table(head, worst: list[dict], calls: dict[str, Call]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(w['call_id'])}</td><td>{w['error']:.3f}</td><td>{e(str(w['gold']))}</td>"
                   f"<td>{e(str(w['predicted']))}</td><td class='text'>{e(_excerpt(calls[w['call_id']]))}</td></tr>"
                   for w in worst if w["call_id"] in calls)
    what = {"ordinal": "NMD of the call", "multiclass": "1 − p(majority label)", "multilabel": "labels wrong"}[head.kind]
    return (f"<table class='worst'><caption>最差的 {len(worst)} 通 the worst calls ({what}; numbers redacted)</caption>"
            "<tr><th>call</th><th>error</th><th>label</th><th>model</th><th>transcript</th></tr>" + rows + "</table>")


def _glossary() -> str:
    rows = "".join(f"<tr><th>{key}</th><td>{html.escape(name)}</td><td>{'↓ lower' if d == 'lower' else '↑ higher'} is "
                   f"better</td><td class='text'>{html.escape(meaning)}</td></tr>" for key, name, d, meaning in GLOSSARY)
    return ("<details><summary>指标说明 what the metrics mean</summary><table><tr><th>metric</th><th>名称</th>"
            "<th></th><th>meaning</th></tr>" + rows + "</table></details>")


def write_report(path: Path, info: RunInfo, schema: LabelSchema, result: dict, calls: list[Call]) -> None:
    e = html.escape
    metrics = result["metrics"]
    systems = list(metrics)
    by_id = {c.call_id: c for c in calls}
    parts = [f"<h1>模型评估报告 callqa evaluation</h1><p>run <code>{e(result['run'])}</code> · encoder "
             f"<code>{e(str(info.encoder))}</code> · {result['n_calls']} calls from "
             f"{', '.join(e(d['path']) for d in result['data'])} · trained {info.steps} steps "
             f"(best at {info.best_step}) on {info.n_train} calls</p>"]
    notes = warnings_for(schema, metrics, calls)
    if notes:
        parts.append("<div class='warnings'><b>注意 Read this first</b><ul>"
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
                     f"n={metrics['model'][head.name].get('n', 0)}</small></h2>"
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
        parts.append(f"<h2>{e(head.display)} <small>{head.name} · turn head ({head.speaker or 'every'} turns) · "
                     f"{m.get('n', 0)} turns in {m.get('dialogues', 0)} calls</small></h2><table><tr><th></th>"
                     f"{''.join(f'<th>{k} {ARROW.get(k, str())}</th>' for k in keys)}</tr>{rows}</table>")
        if "confusion" in m:
            parts.append(_confusion_table(head, m["confusion"]))
    if result.get("nmd_by_length"):
        parts.append("<h2>按通话长度的误差 error by call length</h2>" + _by_length(result["nmd_by_length"]))
    style = ("body{font:14px system-ui,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;max-width:64rem;"
             "margin:2rem auto}table{border-collapse:collapse;margin:.6rem 0}caption{text-align:left;font-weight:600}"
             "td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:right}td.text{text-align:left}"
             "img{margin:.3rem}.warnings{background:#fffaeb;border:1px solid #fec84b;padding:.5rem 1rem;"
             "border-radius:6px}details{margin:1rem 0}")
    path.write_text(f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>callqa evaluation</title>"
                    f"<style>{style}</style>" + "\n".join(parts), encoding="utf-8")
