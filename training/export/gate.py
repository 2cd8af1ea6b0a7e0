"""The export gate: the validation calls it judges on, the limits, and int8 against fp32 per head."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from callqa.calls import Call
from callqa.jsonl import load_calls
from callqa.schema import LabelSchema

from ..run import RunInfo


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parity_tolerance: float = 1e-4
    max_nmd_increase: float = 0.005
    max_macro_f1_drop: float = 0.01


class ExportError(RuntimeError):
    pass



def validation_calls(info: RunInfo, override: list[Path] | None = None) -> list[Call]:
    """The run's validation calls: the files it validated on, or its held-out share of the training files."""
    if override:
        return load_calls(override)
    changed = [f.path for f in info.validation_sources if f.changed()]
    if changed:
        raise ExportError(f"{changed[0]}: the run's validation data is missing or changed since training; "
                          f"pass --validation FILE (labeled calls the model did not train on)")
    calls = load_calls([Path(f.path) for f in info.validation_sources])
    held_out = info.held_out()
    return [c for c in calls if c.call_id in held_out] if held_out else calls


def quality_deltas(schema: LabelSchema, fp32: dict, int8: dict, gate: GateConfig,
                   names: tuple[str, str] = ("int8", "fp32")) -> tuple[dict, list[str]]:
    """Per head, the candidate's (``int8``) gate metric against the reference's (``fp32``), and the heads on which
    it is worse than the gate allows. ``names``: what the messages call the candidate and the reference (the export
    gate: int8 against fp32; `callqa retrain`: the new model against the last)."""
    candidate, reference = names
    deltas, failures = {}, []
    for head in schema.all_heads:
        a, b = fp32[head.name], int8[head.name]
        if not a.get("n"):
            continue
        if head.spec.gate_metric == "nmd":
            d = b["nmd"] - a["nmd"]
            deltas[head.name] = {"nmd": d}
            if d > gate.max_nmd_increase:
                failures.append(f"{head.name}: {candidate} NMD {b['nmd']:.4f} is {d:.4f} worse than {reference} "
                                f"(allowed {gate.max_nmd_increase})")
        else:
            d = b["macro_f1"] - a["macro_f1"]
            deltas[head.name] = {"macro_f1": d}
            if -d > gate.max_macro_f1_drop:
                failures.append(f"{head.name}: {candidate} macro-F1 {b['macro_f1']:.4f} is {-d:.4f} below "
                                f"{reference} (allowed {gate.max_macro_f1_drop})")
    return deltas, failures
