"""`callqa export`: a training run → a servable model bundle (ONNX fp32 + int8), checked by a parity and quality gate.

The gate, recorded in parity.json and bundle.json:
- parity: PyTorch vs ONNX fp32 window logits on the validation calls, max absolute difference ≤ ``parity_tolerance``;
- quality: int8 vs fp32 call-level metrics on the same calls; an ordinal head's NMD may worsen by at most
  ``max_nmd_increase``, a multilabel or multiclass head's macro-F1 may drop by at most ``max_macro_f1_drop``.
A failed gate still writes the bundle (to inspect) but marks it failed: the export exits non-zero, the bundle is not
stored, and serving refuses it, unless ``force`` records an override that serving shows.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from callqa.bundle import BundleInfo, GateResult, sha256_file, write_bundle_info
from callqa.encoders import resolve_encoder
from callqa.metrics import evaluate_heads
from callqa.scorer import OnnxScorer, make_session, stack_probs, stack_turn_probs, turn_targets

from ..baselines import targets as call_targets
from ..evaluate import load_run
from ..model import CallScorer
from ..run import RunDir, RunInfo
from ..trainer import code_version
from .bundle_store import save_to_store, stored_already
from .gate import ExportError, GateConfig, quality_deltas, validation_calls
from .graph import export_onnx, window_parity
from .quantize import AUTO, DEFAULT_QUANTIZATION, TIMING_WINDOWS, quantize, window_feeds, windows_per_second
from .sentence import LAYERS, RUN_ENCODER, export_sentence_encoder


def base_encoder(info: RunInfo) -> str:
    """The pretrained encoder a run was fine-tuned from: for a student, its teacher's (the student's own starting
    folder is the teacher cut down, and may be gone)."""
    while info.config.distill is not None:
        info = RunDir(Path(info.config.distill.teacher)).info()
    return resolve_encoder(info.config.encoder)


def export_run(run_dir: Path, out: Path, version: str | None = None, validation: list[Path] | None = None,
               quantization: str = DEFAULT_QUANTIZATION, gate: GateConfig | None = None, force: bool = False,
               store: bool = True, log=print, sentence_encoder: str | Path | None = RUN_ENCODER,
               sentence_layers: int | None = LAYERS) -> BundleInfo:
    """Write the bundle to ``out``; raise :class:`ExportError` after writing it if the gate failed and not forced.
    ``sentence_encoder``: a pretrained encoder (folder or hub id; ``"run"``: the one the run was fine-tuned from;
    None: none) whose first ``sentence_layers`` layers go into ``out``/sentence/ for the scorecard's semantic rules
    (training/export/sentence.py)."""
    gate = gate or GateConfig()
    run_dir, out = Path(run_dir), Path(out)
    info, schema, model, encoder = load_run(run_dir)
    version = version or time.strftime("%Y%m%d-%H%M%S")
    if store:
        stored_already(version)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RunDir(run_dir).tokenizer, out / "tokenizer.json")

    started = time.time()
    log("exporting model.onnx (fp32)")
    export_onnx(model, out / "model.onnx")
    calls = validation_calls(info, validation)
    log(f"gate: checking on {len(calls)} validation calls")
    encoded = encoder.encode_batch(calls)
    windows = [w for e in encoded for w in e.windows]
    fp32_session = make_session(out / "model.onnx")
    parity, torch_logits = window_parity(model, fp32_session, windows, encoder.pad_id)

    draft = BundleInfo.model_validate({
        "name": run_dir.name, "version": version, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "callqa_version": code_version(), "run": str(run_dir), "encoder": str(info.encoder),
        "schema": info.label_schema.model_dump(mode="json"), "render": info.render.model_dump(mode="json"),
        "thresholds": info.thresholds, "data": [f.model_dump() for f in info.data],
        "quantization": quantization, "gate": {"passed": False}, "files": {},
    })
    targets = call_targets(calls, schema)
    targets.update({h.name: turn_targets(calls, h) for h in schema.turn_heads})
    thresholds = {k: np.array(v) for k, v in draft.thresholds.items()}

    def probs_of(predictions: list) -> dict[str, np.ndarray]:
        """Call heads [N, C] and turn heads [T, C] (NaN rows where a head has no prediction for a turn)."""
        return {**stack_probs(predictions), **{h.name: stack_turn_probs(predictions, h)[0] for h in schema.turn_heads}}

    dialogue = np.repeat(np.arange(len(calls)), [len(c.turns) for c in calls])

    def metrics_of(probs: dict[str, np.ndarray], own_thresholds: dict[str, list[float]] | None = None) -> dict:
        cuts = thresholds if own_thresholds is None else {k: np.array(v) for k, v in own_thresholds.items()}
        return evaluate_heads(schema, probs, targets, cuts, dialogue)

    fp32_scorer = OnnxScorer(fp32_session, encoder, draft)
    # PyTorch's window logits go through the same aggregation as ONNX's, so the two differ only by the graphs.
    torch_probs = probs_of(fp32_scorer.from_window_logits(encoded, torch_logits, calls))
    fp32_probs = probs_of(fp32_scorer.predict_encoded(encoded, calls))
    metrics = {"pytorch": metrics_of(torch_probs), "fp32": metrics_of(fp32_probs)}
    call_parity = max(float(np.nan_to_num(np.abs(torch_probs[h] - fp32_probs[h])).max(initial=0.0)) for h in fp32_probs)
    parity_failures = []
    logit_gap = max(v for k, v in parity.items() if k != "pooled")
    if logit_gap > gate.parity_tolerance:
        parity_failures.append(f"PyTorch vs ONNX fp32 window logits differ by {logit_gap:.2e} "
                               f"(allowed {gate.parity_tolerance:.0e})")

    hidden = model.encoder.config
    methods = AUTO if quantization == "auto" else (quantization,)
    log(f"quantizing model.int8.onnx ({', '.join(methods)}"
        + ("; the fastest that passes the gate serves)" if quantization == "auto" else ")"))
    calibration = window_feeds(windows, encoder.pad_id) if any(m.startswith("static") for m in methods) else None
    timing = window_feeds(windows, encoder.pad_id, limit=TIMING_WINDOWS, batch=32)
    speed = {"fp32": windows_per_second(fp32_session, timing)}
    tried, int8_metrics = {}, {}
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for method in methods:
            path = Path(tmp) / f"{method}.onnx"
            quantize(out / "model.onnx", path, method, hidden.num_attention_heads, hidden.hidden_size, calibration)
            session = make_session(path)
            int8_metrics[method] = metrics_of(probs_of(OnnxScorer(session, encoder, draft).predict_encoded(encoded, calls)))
            deltas, quality_failures = quality_deltas(schema, metrics["fp32"], int8_metrics[method], gate)
            speed[method] = windows_per_second(session, timing)
            tried[method] = {"int8_vs_fp32": deltas, "failures": quality_failures, "windows_per_s": speed[method]}
        passing = [m for m in methods if not tried[m]["failures"]]
        # The int8 file is the fastest method that passed (or, when none did, the fastest one, kept to inspect).
        method = max(passing or methods, key=speed.__getitem__)
        shutil.move(path.with_name(f"{method}.onnx"), out / "model.int8.onnx")
    deltas, quality_failures = tried[method]["int8_vs_fp32"], tried[method]["failures"]
    metrics["int8"] = int8_metrics[method]
    # auto promises the fastest graph that keeps quality: fp32 (vetted by the parity check) when no int8 method
    # passes, or when this machine runs fp32 faster (no VNNI, tiny models). A method asked for by name serves itself.
    serve = "fp32" if quantization == "auto" and (not passing or speed["fp32"] >= speed[method]) else "int8"
    # One line says what happened: each method tried, and what serves.
    verdicts = [f"{m} failed the gate ({'; '.join(tried[m]['failures'])})" if tried[m]["failures"]
                else f"{m} passed ({speed[m] / speed['fp32']:.2f}× fp32)" for m in methods]
    if serve == "fp32":
        chosen = "serving fp32 (model.onnx): " + ("passed" if not parity_failures else "failed")
    else:
        chosen = f"serving int8 {method}: " + ("passed" if not quality_failures else "failed: " + "; ".join(quality_failures))
    log(", ".join([*verdicts, chosen]))
    draft = draft.model_copy(update={"quantization": method, "serve": serve})
    # A student against its teacher's PyTorch fp32, by the gate's measures. Reported, not enforced: whether its speed
    # is worth the loss is the user's trade; the gate proper guards the export (int8 against its own fp32).
    vs_teacher, teacher = None, distilled_from(info, log)
    if teacher:
        _, logits = window_parity(teacher[1], None, windows, encoder.pad_id)
        metrics["teacher"] = metrics_of(probs_of(fp32_scorer.from_window_logits(encoded, logits, calls)),
                                        teacher[0].thresholds)
        deltas_vs_teacher, outside = quality_deltas(schema, metrics["teacher"], metrics[serve], gate)
        vs_teacher = {"teacher": info.config.distill.teacher, "deltas": deltas_vs_teacher, "within_limits": not outside,
                      "outside": outside}
        log(f"{serve} against the teacher's PyTorch fp32: "
            + ("within the gate's limits" if not outside else "outside the gate's limits: " + "; ".join(outside)))
    failures = parity_failures + (quality_failures if serve == "int8" else [])
    result = GateResult(passed=not failures, forced=bool(failures) and force, failures=failures)

    parity_report = {
        "n_calls": len(calls), "n_windows": len(windows), "gate": gate.model_dump(), "result": result.model_dump(),
        "pytorch_vs_onnx_fp32": {"max_abs_window_output": parity, "max_abs_call_probability": call_parity},
        "int8_vs_fp32": deltas, "quantization": method, "quantizations_tried": tried, "serve": serve,
        "fp32_windows_per_s": speed["fp32"], "served_vs_teacher": vs_teacher,
        "seconds": round(time.time() - started, 1),
    }
    (out / "parity.json").write_text(json.dumps(parity_report, indent=2) + "\n", encoding="utf-8")
    report = RunDir(run_dir).eval_report
    if report.exists():
        shutil.copyfile(report, out / "report.html")
    names = ["model.onnx", "model.int8.onnx", "tokenizer.json", "parity.json"]
    if sentence_encoder is not None:
        base = base_encoder(info) if str(sentence_encoder) == RUN_ENCODER else sentence_encoder
        log(f"exporting sentence/ (the first {sentence_layers or 'all'} layers of {Path(str(base)).name}, for "
            f"semantic scorecard rules)")
        export_sentence_encoder(base, out / "sentence", sentence_layers)
        names += ["sentence/model.onnx", "sentence/tokenizer.json", "sentence/encoder.json"]
    files = {name: sha256_file(out / name) for name in names}
    bundle = draft.model_copy(update={"metrics": {"validation": metrics}, "gate": result, "files": files})
    write_bundle_info(out, bundle)

    if failures and not force:
        raise ExportError("export gate failed, bundle not stored:\n  " + "\n  ".join(failures)
                          + f"\nInspect {out}/parity.json; --force exports anyway and records the override.")
    if store:
        save_to_store(out, bundle)
        log(f"stored as {bundle.tag} in the BentoML model store")
    return bundle


def distilled_from(info: RunInfo, log) -> tuple[RunInfo, CallScorer] | None:
    """A distilled run's teacher (its run info and model), if the run was distilled and the teacher is still there."""
    if info.config.distill is None:
        return None
    teacher = Path(info.config.distill.teacher)
    if not RunDir(teacher).finished():
        log(f"teacher {teacher} not found: the student is not compared with it")
        return None
    teacher_info, _, model, _ = load_run(teacher)
    return teacher_info, model
