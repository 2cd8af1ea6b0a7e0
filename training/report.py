"""report.html: metrics next to the baselines, confusion matrices, calibration curves, error by call length.

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

from callqa.schema import LabelSchema  # noqa: E402

from .run import RunInfo  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _confusion(head, matrix) -> str:
    fig, ax = plt.subplots(figsize=(3.2, 3.0))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(head.size), head.class_ids, rotation=45)
    ax.set_yticks(range(head.size), head.class_ids)
    ax.set_xlabel("predicted (argmax)")
    ax.set_ylabel("gold (majority)")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_title(f"{head.name}: confusion")
    return _png(fig)


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


def write_report(path: Path, info: RunInfo, schema: LabelSchema, result: dict) -> None:
    metrics = result["metrics"]
    systems = list(metrics)
    parts = [f"<h1>callqa evaluation</h1><p>run <code>{html.escape(result['run'])}</code> · encoder "
             f"<code>{html.escape(str(info.encoder))}</code> · {result['n_calls']} calls from "
             f"{', '.join(html.escape(d['path']) for d in result['data'])} · trained {info.steps} steps "
             f"(best at {info.best_step}) on {info.n_train} calls</p>"]
    for head in schema.heads:
        keys = head.spec.table_metrics
        rows = "".join(
            f"<tr><th>{s}</th>" + "".join(f"<td>{metrics[s][head.name].get(k, float('nan')):.4f}</td>" for k in keys) + "</tr>"
            for s in systems if metrics[s][head.name].get("n")
        )
        parts.append(f"<h2>{html.escape(head.display)} <small>({head.name}, {head.kind}, "
                     f"n={metrics['model'][head.name].get('n', 0)})</small></h2>"
                     f"<table><tr><th></th>{''.join(f'<th>{k}</th>' for k in keys)}</tr>{rows}</table>")
        m = metrics["model"][head.name]
        if not m.get("n"):
            continue
        plots = []
        if "confusion" in m:
            plots.append(_confusion(head, m["confusion"]))
        plots.append(_calibration(head, {s: metrics[s][head.name]["calibration"] for s in systems
                                         if "calibration" in metrics[s][head.name]}))
        parts.append("<div>" + "".join(plots) + "</div>")
    if result.get("nmd_by_length"):
        parts.append("<h2>error by call length</h2>" + _by_length(result["nmd_by_length"]))
    style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:right}img{margin:.3rem}")
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>callqa evaluation</title><style>{style}</style>"
                    + "\n".join(parts), encoding="utf-8")
