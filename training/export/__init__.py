"""`callqa export`, by concept: ``graph.py`` (the window graph in ONNX and PyTorch–ONNX parity), ``quantize.py``
(the int8 candidates and their timing), ``gate.py`` (the validation calls, the limits, int8 against fp32 per head),
``bundle_store.py`` (the BentoML model store), and ``run.py`` (a run → a gated bundle, the steps in order). May import
the core and the rest of training (the model, runs, evaluation), never serving."""

from __future__ import annotations

from .bundle_store import save_to_store, stored_already
from .gate import ExportError, GateConfig, quality_deltas, validation_calls
from .graph import WindowGraph, export_onnx, output_names, window_parity
from .quantize import (
    AUTO,
    CALIBRATION_WINDOWS,
    DEFAULT_QUANTIZATION,
    OPSET,
    QUANTIZATIONS,
    TIMING_WINDOWS,
    quantize,
    quantize_static_qdq,
    window_feeds,
    windows_per_second,
)
from .run import distilled_from, export_run

__all__ = ["AUTO", "CALIBRATION_WINDOWS", "DEFAULT_QUANTIZATION", "OPSET", "QUANTIZATIONS", "TIMING_WINDOWS",
           "ExportError", "GateConfig", "WindowGraph", "distilled_from", "export_onnx", "export_run", "output_names",
           "quality_deltas", "quantize", "quantize_static_qdq", "save_to_store", "stored_already",
           "validation_calls", "window_feeds", "window_parity", "windows_per_second"]
