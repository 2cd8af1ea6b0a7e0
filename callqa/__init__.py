"""callqa core: the call format, label schemas, rendering calls into model input, scorecards, redaction. Torch-free."""

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
