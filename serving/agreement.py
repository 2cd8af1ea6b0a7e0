"""Model–reviewer agreement per head and per ISO week: how often reviewers keep what the model said.

For each reviewed call the model's value is the prediction the latest review was made on, and the reviewer's value
is the call's current label. Ordinal heads: quadratic-weighted kappa (QWK), accuracy, confusion matrix (rows:
reviewer, columns: model). Multiclass: Cohen's kappa. Multilabel (topics): every (call, topic) pair is a yes/no
decision — kappa and accuracy over those pairs, and per topic how often model and reviewer said yes.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, Field

from callqa.schema import LabelSchema

from .store import ReviewedCall, item_points


class Agreement(BaseModel):
    n: int
    accuracy: float
    kappa: float | None  # QWK for ordinal heads, Cohen's kappa otherwise; None when undefined (one class only)


class HeadAgreement(BaseModel):
    head: str
    display: str
    kind: str
    metric: str  # what `kappa` is: "QWK" or "kappa"
    overall: Agreement
    weeks: dict[str, Agreement]  # "2026-W47" → agreement of the reviews of that week
    classes: list[str]  # class display names, the order of the confusion matrix
    confusion: list[list[int]] | None  # level heads: rows reviewer, columns model
    per_label: dict[str, dict[str, int]] | None  # topics: label → {model, reviewer, both}


def group_by_model(reviewed: Iterable[ReviewedCall]) -> dict[str, list[ReviewedCall]]:
    """Reviewed calls per bundle that scored them (in the order first seen): agreement is a model's, per bundle."""
    out: dict[str, list[ReviewedCall]] = {}
    for r in reviewed:
        out.setdefault(r.model, []).append(r)
    return out


def agreement(reviewed: Iterable[ReviewedCall], schema: LabelSchema) -> list[HeadAgreement]:
    """Agreement per head of ``schema`` over the reviewed calls that carry a reviewer label for it."""
    pairs: dict[str, list[tuple[str, object, object]]] = defaultdict(list)  # head → (week, reviewer, model)
    for r in reviewed:
        year, week, _ = r.reviewed_at.isocalendar()
        for head in schema.heads:
            if head.name in r.labels and head.name in r.predicted:
                pairs[head.name].append((f"{year}-W{week:02d}", r.labels[head.name], r.predicted[head.name]))
    out = []
    for head in schema.heads:
        rows = pairs.get(head.name)
        if not rows:
            continue
        kind = head.spec
        by_week: dict[str, list] = defaultdict(list)
        for week, rev, mod in rows:
            by_week[week].append((rev, mod))
        everything = [(rev, mod) for _, rev, mod in rows]
        out.append(HeadAgreement(head=head.name, display=head.display, kind=head.kind,
                                 metric=head.spec.agreement_metric,
                                 overall=Agreement(**kind.agreement(head, everything)),
                                 weeks={w: Agreement(**kind.agreement(head, p)) for w, p in sorted(by_week.items())},
                                 classes=list(head.classes.values()), **kind.agreement_detail(head, everything)))
    return out


class RulePrecision(BaseModel):
    rule: str
    title: str
    reviewed: int = Field(description="hits on reviewed calls")
    wrong: int = Field(description="hits reviewers marked 误判")
    missed: int = Field(default=0, description="漏扣 reviewers marked on an item this rule judges (an item of several "
                        "rules counts its 漏扣 against each: callqa.rule_tuning reads them the same way)")

    @property
    def precision(self) -> float | None:
        """Hits confirmed / hits reviewed (None: no hit reviewed)."""
        return (self.reviewed - self.wrong) / self.reviewed if self.reviewed else None

    @property
    def recall(self) -> float | None:
        """Hits confirmed / (hits confirmed + 漏扣): how much of what reviewers deduct the rule finds (None: neither)."""
        confirmed = self.reviewed - self.wrong
        return confirmed / (confirmed + self.missed) if confirmed + self.missed else None


class ItemAgreement(BaseModel):
    item: str
    title: str
    n: int
    exact: float = Field(description="share of calls where reviewer and scorecard give the same points")
    mae: float = Field(description="mean absolute difference of points")


class ScorecardAgreement(BaseModel):
    calls: int
    rules: list[RulePrecision]
    items: list[ItemAgreement]


def scorecard_agreement(reviewed: Iterable[ReviewedCall]) -> ScorecardAgreement:
    """Per rule, precision = hits confirmed / hits reviewed (a reviewed hit not marked 误判 is confirmed) and its
    misses (漏扣 on its items); per item, how often the reviewer's points equal the scorecard's. Counts reviewed calls
    whose prediction had a scorecard."""
    rules: dict[str, RulePrecision] = {}
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    titles: dict[str, str] = {}
    calls = 0
    for r in reviewed:
        if r.scorecard is None:
            continue
        calls += 1
        review, of_record = r.scorecard_review, item_points(r.record)
        missed = Counter(m.item for m in review.missed) if review else Counter()
        for item in r.scorecard.items().values():
            titles[item.id] = item.title
            points[item.id].append((item.points, of_record[item.id]))
            _count(rules, item, review, missed[item.id])
    items = [ItemAgreement(item=item, title=titles[item], n=len(pairs),
                           exact=float(np.mean([abs(a - b) < 1e-6 for a, b in pairs])),
                           mae=float(np.mean([abs(a - b) for a, b in pairs]))) for item, pairs in points.items()]
    return ScorecardAgreement(calls=calls, rules=sorted(rules.values(), key=lambda r: r.rule), items=items)


def _count(rules: dict[str, RulePrecision], item, review, missed: int) -> None:
    """One item of a reviewed call: its rules' hits (and which were marked 误判), and the 漏扣 marked on it."""
    for d in item.deductions:
        entry = rules.setdefault(d.rule, RulePrecision(rule=d.rule, title=d.title, reviewed=0, wrong=0))
        entry.title = d.title  # a rule first met through a 漏扣 was known by its item's title
        entry.reviewed += 1
        if review and review.marks_wrong(item.id, d):
            entry.wrong += 1
    for rule in item.rules if missed else ():
        # Known by its item's title (a Chinese name for the screen) until a hit of it names the rule's own.
        rules.setdefault(rule, RulePrecision(rule=rule, title=item.title, reviewed=0, wrong=0)).missed += missed


def measure_text(value: float | None) -> str:
    """A kappa, precision or recall as the reports print it: three decimals, or "–" where it is undefined."""
    return "–" if value is None else f"{value:.3f}"


def agreement_html(report: list[HeadAgreement], title: str, card: ScorecardAgreement | None = None) -> str:
    """A self-contained HTML page (no scripts, no external files) of the agreement report."""
    e = html.escape
    parts = [f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{e(title)}</title><style>"
             "body{font:14px system-ui,'Noto Sans CJK SC',sans-serif;margin:2em;max-width:70em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:right}th:first-child,td:first-child{text-align:left}caption{text-align:left;font-weight:600}"
             "</style></head><body>", f"<h1>{e(title)}</h1>",
             "<p>模型预测与复核员标注的一致性（按周）。有序项目用二次加权 Kappa（QWK），主题按（通话, 主题）逐项比较。</p>"]
    if not report:
        parts.append("<p>尚无复核记录。</p>")
    for h in report:
        parts.append(f"<h2>{e(h.display)} <small>({e(h.head)}, {h.kind})</small></h2>")
        parts.append(f"<table><caption>按周</caption><tr><th>周</th><th>通话数</th><th>准确率</th><th>{h.metric}</th></tr>")
        for week, a in [*h.weeks.items(), ("全部", h.overall)]:
            parts.append(f"<tr><td>{e(week)}</td><td>{a.n}</td><td>{a.accuracy:.3f}</td><td>{measure_text(a.kappa)}</td></tr>")
        parts.append("</table>")
        if h.confusion is not None:
            head_row = "".join(f"<th>{e(c)}</th>" for c in h.classes)
            parts.append(f"<table><caption>混淆矩阵（行：复核员，列：模型）</caption><tr><th></th>{head_row}</tr>")
            for name, row in zip(h.classes, h.confusion):
                parts.append(f"<tr><th>{e(name)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        if h.per_label is not None:
            parts.append("<table><caption>各主题</caption><tr><th>主题</th><th>模型选中</th><th>复核员选中</th><th>两者都选</th></tr>")
            for name, c in h.per_label.items():
                parts.append(f"<tr><td>{e(name)}</td><td>{c['model']}</td><td>{c['reviewer']}</td><td>{c['both']}</td></tr>")
            parts.append("</table>")
    if card is not None and card.calls:
        parts.append(f"<h2>评分表 <small>({card.calls} 通已复核)</small></h2>")
        parts.append("<table><caption>规则准确率（复核员确认的扣分 / 复核过的扣分）与漏扣（复核员在规则所属评分项上补扣；"
                     "查全率 = 确认的扣分 / (确认的扣分 + 漏扣)）</caption>"
                     "<tr><th>规则</th><th>扣分次数</th><th>误判</th><th>准确率</th><th>漏扣</th><th>查全率</th></tr>")
        for r in card.rules:
            parts.append(f"<tr><td>{e(r.title)} ({e(r.rule)})</td><td>{r.reviewed}</td><td>{r.wrong}</td>"
                         f"<td>{measure_text(r.precision)}</td><td>{r.missed}</td><td>{measure_text(r.recall)}</td></tr>")
        parts.append("</table><table><caption>评分项一致性（复核员与评分表给分相同的比例，平均分差）</caption>"
                     "<tr><th>评分项</th><th>通话数</th><th>一致</th><th>平均分差</th></tr>")
        for i in card.items:
            parts.append(f"<tr><td>{e(i.title)} ({e(i.item)})</td><td>{i.n}</td><td>{i.exact:.3f}</td>"
                         f"<td>{i.mae:.2f}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
