"""The one place a scoring setup is built: a bundle (its gate and files checked), the QA scorecard checked against
the bundle's label schema, the ONNX graph with its threads, and the pipeline that turns the model's probabilities
into head scores and the card. /score, `callqa score` (into Parquet, JSONL or the review store), the Ray engine's
actors and the benchmarks all start here, so a scorecard that does not fit the model is refused the same way
everywhere, before any call is scored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from callqa.bundle import BundleInfo, load_bundle, resolve_bundle
from callqa.calls import Call
from callqa.pipeline import ScoredCall, ScoringPipeline
from callqa.redact import redact_call
from callqa.schema import LabelSchema
from callqa.scorecard import Scorecard, ScorecardError, load_scorecard
from callqa.scorer import OnnxScorer, ScoringThreads
from callqa.semantic import OnnxSentenceEncoder

PRECISIONS = {"int8": "model.int8.onnx", "fp32": "model.onnx"}


def scorecard_for(name: str | Path | Scorecard | None, bundle_dir: Path | None = None) -> Scorecard | None:
    """The card called ``name`` (a shipped name, a YAML path, or a card already loaded; None or "none": no card),
    its semantic rules given the sentence encoder of the bundle in ``bundle_dir``."""
    if name is None or str(name) == "none":
        return None
    # ScoringPipeline checks the card against the bundle's schema: its schema name first, so a card for another
    # schema is refused in one line naming both, then its heads and levels.
    card = name if isinstance(name, Scorecard) else load_scorecard(name)
    if card.semantic and card.encoder is None:
        card.use_encoder(sentence_encoder_of(card, bundle_dir))
    return card


def sentence_encoder_of(card: Scorecard, bundle_dir: Path | None) -> OnnxSentenceEncoder:
    """The bundle's sentence encoder (``sentence/``, written by `callqa export --sentence-encoder`), which a card's
    semantic rules match turns with; ScorecardError naming the rules when the bundle has none."""
    folder = None if bundle_dir is None else Path(bundle_dir) / "sentence"
    if folder is None or not (folder / "model.onnx").exists():
        rules = ", ".join(r.id for r in card.semantic)
        raise ScorecardError(f"{card.source}: semantic rules ({rules}) need a sentence encoder, and bundle "
                             f"{bundle_dir or '(none)'} has none; re-export it with `callqa export --sentence-encoder "
                             f"e5-small`")
    return OnnxSentenceEncoder(folder, threads=1)


class ScoringSession:
    """A bundle and a scorecard ready to score. ``run_threads`` is each model run's onnxruntime threads (1: runs
    side by side use the cores, as `callqa score` and the service do); ``runs`` how many run at once
    (:meth:`threads`; None: one per core). ``precision`` picks the graph (int8, fp32; None: the bundle's choice).
    ``redact``: calls are scored and kept with phone, ID and card numbers masked (:meth:`prepare`)."""

    def __init__(self, bundle: str | Path, scorecard: str | Path | Scorecard | None = "default", precision: str | None = None,
                 run_threads: int | None = 1, runs: int | None = None, redact: bool = False):
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision: int8 or fp32, not {precision!r}")
        self.bundle_dir = resolve_bundle(bundle)
        self.precision, self.run_threads, self.runs, self.redact = precision, run_threads, runs, redact
        self.scorer = OnnxScorer.from_bundle(self.bundle_dir, model_file=PRECISIONS.get(precision or ""),
                                             threads=run_threads)
        card = scorecard_for(scorecard, self.bundle_dir)
        # How a Ray actor opens the same card: by the name it was given, or a loaded card by its YAML file.
        self.scorecard_name = None if card is None else card.source if isinstance(scorecard, Scorecard) else str(scorecard)
        self.pipeline = ScoringPipeline(self.scorer.info, card)

    @staticmethod
    def check(bundle: str | Path, scorecard: str | Path | None = "default") -> tuple[Path, BundleInfo]:
        """What opening a session would refuse, without loading the graph (`callqa serve` asks before it starts
        its workers): the bundle's folder and info, or BundleError / ScorecardError / FileNotFoundError."""
        folder = resolve_bundle(bundle)
        info, _ = load_bundle(folder)
        ScoringPipeline(info, scorecard_for(scorecard, folder))
        return folder, info

    @property
    def info(self) -> BundleInfo:
        return self.scorer.info

    @property
    def schema(self) -> LabelSchema:
        return self.scorer.schema

    @property
    def tag(self) -> str:
        return self.scorer.info.tag

    def threads(self) -> ScoringThreads:
        """``runs`` model runs side by side, each on its own copy of the scorer (close it, or use it in a with)."""
        return ScoringThreads(self.scorer, self.runs)

    def prepare(self, calls: Sequence[Call]) -> list[Call]:
        """The calls as this session scores and keeps them (redacted, where asked)."""
        return [redact_call(c) for c in calls] if self.redact else list(calls)

    def score(self, calls: Sequence[Call], with_scorecard: bool = True) -> list[ScoredCall]:
        """Score calls in this thread: head scores and, unless skipped, the card."""
        return self.pipeline.score(self.scorer, calls, with_scorecard)


def score_calls(calls: Sequence[Call], bundle: str | Path, scorecard: str | Path | Scorecard | None = "default",
                precision: str | None = None) -> list[ScoredCall]:
    """Score calls in this process as /score would (head scores and the scorecard), with one run on every core: the
    shortest way from Python. For many calls, `callqa score` (or a :class:`ScoringSession` on an engine of
    :mod:`callqa.batch`) runs side by side and writes as it goes."""
    return ScoringSession(bundle, scorecard, precision, run_threads=None).score(calls)


__all__ = ["PRECISIONS", "ScoringSession", "score_calls", "scorecard_for"]
