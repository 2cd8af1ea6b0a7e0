"""`callqa evaluate`: a run's model on labeled calls, next to the two baselines, as metrics.json and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from callqa.bundle import sha256_file
from callqa.jsonl import load_calls
from callqa.metrics import evaluate_heads, nmd
from callqa.render import CallEncoder
from callqa.schema import LabelSchema
from callqa.scorer import turn_targets

from . import baselines
from .data import build_dataset, row_targets
from .model import CallScorer
from .predict import predict_rows
from .report import write_report
from .run import RunDir, RunInfo
from .trainer import pick_device

LENGTH_BUCKETS = (0, 128, 256, 512, 1024, 10**9)


def load_run(run_dir: Path) -> tuple[RunInfo, LabelSchema, CallScorer, CallEncoder]:
    """A trained run ready to predict: its run.json, label schema, model (encoder + heads, on the CPU) and the encoder
    that renders calls the way it was trained."""
    run = RunDir(run_dir)
    info = run.info()
    model = CallScorer.load(run.model)
    encoder = CallEncoder.from_file(run.tokenizer, info.render)
    return info, info.label_schema, model, encoder


def _training_calls(info: RunInfo, log) -> list | None:
    """The run's training calls, if its data files are still there unchanged (baselines train on exactly those)."""
    changed = [f.path for f in info.data if f.changed()]
    if changed:
        log(f"baselines skipped: training file {changed[0]} is missing or changed since the run")
        return None
    held_out = info.held_out()
    return [c for c in load_calls([Path(f.path) for f in info.data]) if c.call_id not in held_out]


def worst_calls(head, calls: list, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None,
                n: int = 10) -> list[dict]:
    """The ``n`` calls the model gets most wrong on a head (ids, error, label and prediction; no transcript text).
    The error is the head kind's (``head.spec.error_title``: the call's NMD, 1 − p(majority label), wrong labels)."""
    has = q.sum(-1) > 0
    error = head.spec.call_errors(head, p, q, thresholds)
    out = []
    for i in np.argsort(-np.where(has, error, -1.0), kind="stable")[:n]:
        if not has[i] or error[i] <= 0:
            break
        gold = head.spec.gold(head, q[i : i + 1])[0]
        guess = head.spec.predicted(head, p[i : i + 1], thresholds)[0]
        out.append({"call_id": calls[i].call_id, "error": float(error[i]), "gold": gold, "predicted": guess})
    return out


def evaluate_run(run_dir: Path, data: list[Path], out: Path | None = None, device: str | None = None,
                 with_baselines: bool = True, log=print) -> dict:
    """Evaluate a run on labeled calls (`callqa evaluate`): every head's metrics against the baselines, written
    under the run's eval/ (or ``out``) with a report; returns the metrics."""
    calls = load_calls(data)
    if not calls:
        raise ValueError(f"{', '.join(map(str, data))}: no calls to evaluate on")
    info, schema, model, encoder = load_run(run_dir)
    out = out or RunDir(run_dir).eval
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    rows = build_dataset(calls, encoder, schema).to_list()
    probs, _ = predict_rows(model.to(dev), rows, schema, encoder.pad_id, 32, dev)
    q = {h.name: row_targets(rows, h.name) for h in schema.heads}
    q.update({h.name: turn_targets(calls, h) for h in schema.turn_heads})
    dialogue = np.repeat(np.arange(len(calls)), [len(c.turns) for c in calls])
    thresholds = {k: np.array(v) for k, v in info.thresholds.items()}

    systems = {"model": probs}
    if with_baselines:
        train_calls = _training_calls(info, log)
        if train_calls:
            log(f"baselines: fitting on {len(train_calls)} training calls")
            systems["prior"] = baselines.prior(train_calls, calls, schema)
            systems["tfidf_lr"] = baselines.tfidf_lr(train_calls, calls, schema)

    metrics = {name: evaluate_heads(schema, p, q, thresholds, dialogue) for name, p in systems.items()}
    n_tokens = np.array([r["n_tokens"] for r in rows])
    by_length = {}
    for h in schema.heads:
        if not h.spec.scale:  # NMD by call length: heads whose levels are a scale
            continue
        has = q[h.name].sum(-1) > 0
        per_call = nmd(probs[h.name], q[h.name])
        by_length[h.name] = [
            {"tokens": f"{lo}–{hi if hi < 10**9 else '∞'}", "n": int(sel.sum()), "nmd": float(per_call[sel].mean())}
            for lo, hi in zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:])
            if (sel := has & (n_tokens >= lo) & (n_tokens < hi)).any()
        ]
    result = {"run": str(run_dir), "data": [{"path": str(p), "sha256": sha256_file(p)} for p in data],
              "n_calls": len(calls), "metrics": metrics, "nmd_by_length": by_length,
              "worst": {h.name: worst_calls(h, calls, probs[h.name], q[h.name], thresholds.get(h.name)) for h in schema.heads}}
    (out / "metrics.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as f:
        for i, call in enumerate(calls):
            line = {"call_id": call.call_id, **{h.name: probs[h.name][i].round(5).tolist() for h in schema.heads}}
            if schema.turn_heads:  # per turn, the head's distribution, or null for another speaker's turn
                turns = dialogue == i
                line["turns"] = {h.name: [row.round(5).tolist() if h.applies_to(t) and np.isfinite(row).all() else None
                                          for row, t in zip(probs[h.name][turns], call.turns)] for h in schema.turn_heads}
            f.write(json.dumps(line) + "\n")
    write_report(out / "report.html", info, schema, result, calls)
    return result
