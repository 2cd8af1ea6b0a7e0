"""callqa core: the call format, label schemas and head kinds, rendering calls into model input, the ONNX scorer and
the one scoring session and pipeline, scorecards and their rules, redaction, batch scoring (``batch/``: engines and
sinks). Torch-free: it may import numpy, onnxruntime, tokenizers, pydantic and the like, never ``callqa.training``
or ``callqa.serving`` (a sink of the review store is named in ``batch/sinks`` by import path, loaded only when asked
for)."""

from callqa.calls import Call, Turn, Votes
from callqa.encoders import EncoderNotFound, encoder_path
from callqa.render import CallEncoder, EncodedCall, RenderSpec, aggregate_windows, render_call
from callqa.schema import Head, LabelSchema, load_schema
from callqa.scorecard import Scorecard, load_scorecard

__version__ = "0.1.0"

__all__ = [
    "Call",
    "CallEncoder",
    "EncodedCall",
    "EncoderNotFound",
    "Head",
    "LabelSchema",
    "RenderSpec",
    "Scorecard",
    "Turn",
    "Votes",
    "aggregate_windows",
    "encoder_path",
    "load_schema",
    "load_scorecard",
    "render_call",
]
