"""callqa core: the call format, label schemas and head kinds, rendering calls into model input, the ONNX scorer and
the one scoring session and pipeline, scorecards and their rules, redaction, batch scoring (``batch/``: engines and
sinks). Torch-free: it may import numpy, onnxruntime, tokenizers, pydantic and the like, never ``callqa.training``
or ``callqa.serving`` (a sink of the review store is named in ``batch/sinks`` by import path, loaded only when asked
for)."""

from callqa.bundle import BundleInfo, load_bundle, read_bundle_info, resolve_bundle
from callqa.calls import Call, Turn, Votes
from callqa.encoders import EncoderNotFound, encoder_path
from callqa.heads import KINDS, HeadKind
from callqa.jsonl import load_calls, write_calls
from callqa.metrics import evaluate_heads
from callqa.pipeline import ScoredCall, head_scores
from callqa.redact import redact, redact_call
from callqa.render import CallEncoder, EncodedCall, RenderSpec, aggregate_windows, render_call
from callqa.schema import Head, LabelSchema, load_schema
from callqa.scorecard import Scorecard, load_scorecard
from callqa.semantic import ExampleMatcher, OnnxSentenceEncoder, SentenceEncoder
from callqa.session import ScoringSession, score_calls
from callqa.split import split_calls

__version__ = "0.1.0"

# Training needs torch (the train extra): its entry points load on first use, so `import callqa` stays torch-free.
_TRAINING = {
    "TrainConfig": "callqa.training.config:TrainConfig",
    "train": "callqa.training.trainer:train",
    "evaluate": "callqa.training.evaluate:evaluate_run",
    "export": "callqa.training.export:export_run",
    "distill": "callqa.training.distill:distill",
    "load_run": "callqa.training.evaluate:load_run",
    "Trainer": "callqa.training.trainer:Trainer",
    "DistillationTrainer": "callqa.training.distill:DistillationTrainer",
    "RunDir": "callqa.training.run:RunDir",
    "RunInfo": "callqa.training.run:RunInfo",
}


def __getattr__(name: str):
    if name in _TRAINING:
        import importlib

        module, attribute = _TRAINING[name].split(":")
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'callqa' has no attribute {name!r}")


__all__ = [
    "BundleInfo",
    "Call",
    "CallEncoder",
    "DistillationTrainer",
    "EncodedCall",
    "EncoderNotFound",
    "Head",
    "HeadKind",
    "KINDS",
    "LabelSchema",
    "RenderSpec",
    "RunDir",
    "RunInfo",
    "Scorecard",
    "ScoredCall",
    "ScoringSession",
    "TrainConfig",
    "Trainer",
    "Turn",
    "Votes",
    "aggregate_windows",
    "distill",
    "encoder_path",
    "evaluate",
    "evaluate_heads",
    "export",
    "head_scores",
    "load_bundle",
    "load_calls",
    "load_run",
    "load_schema",
    "load_scorecard",
    "ExampleMatcher",
    "OnnxSentenceEncoder",
    "SentenceEncoder",
    "read_bundle_info",
    "redact",
    "redact_call",
    "render_call",
    "resolve_bundle",
    "score_calls",
    "split_calls",
    "train",
    "write_calls",
]
