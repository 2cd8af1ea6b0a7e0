"""The report as one self-contained HTML page (styles and SVG charts inline, no script), the page the dashboard
frames."""

from __future__ import annotations

import base64
import html
import io
import logging
import warnings
from pathlib import Path

from .context import points_text
from .model import Report

# Chinese text in the HTML and the charts' SVG text: the first of these fonts the reader's machine has.
CJK_FONTS = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'


# The HTML report's one style element (the served page's Content-Security-Policy allows it by hash).
REPORT_STYLE = (f"body{{font-family:{CJK_FONTS};margin:2em auto;max-width:1100px;color:#101828}}"
                "table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.5em}"
                "th,td{border:1px solid #d0d5dd;padding:.3em .6em;text-align:right}th{background:#f2f4f7}"
                "td:first-child,th:first-child{text-align:left}.meta,.note{color:#667085}.source{background:#fffaeb;"
                "padding:.5em}.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:100%}")


def charts(report: Report) -> list[str]:
    """Inline SVG charts (matplotlib; text kept as text so the browser draws Chinese with the page's fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 10,
                         "font.sans-serif": [f.strip('" ') for f in CJK_FONTS.split(",")] + ["DejaVu Sans"]})
    # Text stays text in the SVG, so a machine without CJK fonts only measures it with a Latin font: say nothing.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    warnings.filterwarnings("ignore", message="findfont: Font family")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    out = []
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, values in list(report.trend.items())[:9]:  # all calls and the first agents: a readable chart
        xs = [p for p, v in zip(report.trend_periods, values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.plot(xs, ys, marker="o", linewidth=2.5 if name == "全部" else 1, label=name)
    ax.set_title("平均得分趋势")
    ax.set_ylabel("平均得分")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    out.append(_svg(fig))
    if report.items:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(report.items)))
        titles = [t for t, _, _ in report.items]
        ax.barh(titles, [m for _, _, m in report.items], color="#e4e7ec", label="标准分")
        ax.barh(titles, [a for _, a, _ in report.items], color="#3538cd", height=0.5, label="平均得分")
        ax.invert_yaxis()
        ax.set_title("评分项：平均得分 / 标准分")
        ax.legend(fontsize=8)
        out.append(_svg(fig))
    plt.close("all")
    return out


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _cell(value) -> str:
    if value is None:
        return "–"
    return html.escape(points_text(value) if isinstance(value, float) else str(value))


def write_html(report: Report, path: Path) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")


def render_html(report: Report) -> str:
    """One self-contained page: styles and charts inline, no script, no network. Links open in the whole window
    (the dashboard shows the page in a frame)."""
    parts = [f"<h1>{html.escape(report.title)}</h1>",
             f"<p class=meta>{html.escape(report.scope)} · 时区 {html.escape(report.time_zone)} · 生成于 "
             f"{html.escape(report.generated)}</p>", f"<p class=source>{html.escape(report.source)}</p>",
             # Charts as images: an SVG's own style attributes stay inside it, under any page's style policy.
             '<div class=charts>' + "".join(f'<figure><img alt="图表" src="data:image/svg+xml;base64,'
                                            f'{base64.b64encode(svg.encode()).decode()}"></figure>'
                                            for svg in report.charts) + "</div>"]
    for t in report.tables:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
        body = []
        for n, row in enumerate(t.rows):
            cells = [f"<td>{_cell(v)}</td>" for v in row]
            if n in t.links:
                cells[0] = f'<td><a href="{html.escape(t.links[n])}">{_cell(row[0])}</a></td>'
            # An agent's row names the agent, so the dashboard can drill down to them.
            key = f' data-agent="{html.escape(str(row[0]))}"' if t.name == "agents" else ""
            body.append(f"<tr{key}>" + "".join(cells) + "</tr>")
        note = f"<p class=note>{html.escape(t.note)}</p>" if t.note else ""
        parts.append(f'<section id="{t.name}"><h2>{html.escape(t.title)}</h2><table><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(body) or '<tr><td>（无）</td></tr>'}</tbody></table>{note}</section>")
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><base target="_top">'
            f"<title>{html.escape(report.title)}</title><style>{REPORT_STYLE}</style></head><body>{''.join(parts)}</body></html>")
