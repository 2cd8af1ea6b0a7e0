"""The callqa scoring API (BentoML on onnxruntime; never imports torch).

    POST /score       calls in the project's format (labels not needed) → per call and head: the distribution over
                      levels, expected score, most likely level and confidence; topics with probabilities and the
                      bundle's thresholds applied; the model tag. Needs a scorer key.
    GET  /api/model   the served bundle: tag, schema (heads, Chinese display names), gate, validation metrics.
    /api/reviews/…    the review queue and reviews (serving/review_api.py). Needs a reviewer key.
    GET  /review/     the review UI for QA reviewers (static files; it asks for a reviewer key).
    GET  /metrics     Prometheus metrics by route template (a metrics or admin key).
    GET  /healthz /readyz /docs.json   BentoML's health probes and the OpenAPI spec.

Run it with `callqa serve` (or `bentoml serve callqa.serving.service:ScoringAPI`). Settings: configs/serving/.

One service, one worker: ``ScoringAPI`` validates, authenticates (middleware) and formats; its ``CallModel`` holds
the ONNX session and runs the calls of the requests that arrive while it is busy together (serving/batcher.py), one
run per core at once, in length-sorted chunks so short calls are not padded to long ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from callqa import __version__
from callqa.bundle import GateResult, read_bundle_info, resolve_bundle
from callqa.calls import Call, Turn
from callqa.evidence import CallEvidence, attributions, occlusion_batch
from callqa.pipeline import ScoredCall
from callqa.redact import redact_call
from callqa.schema import HeadView, LabelSchema
from callqa.scorer import CallPrediction, OnnxScorer
from callqa.serving.appeal_api import APPEAL_OPERATIONS, appeal_routes
from callqa.serving.batcher import GreedyBatcher
from callqa.serving.calibration_api import CALIBRATION_OPERATIONS, calibration_routes
from callqa.serving.coaching_api import COACHING_OPERATIONS, coaching_routes
from callqa.serving.config import Limits, load_serving_config
from callqa.serving.directory import AgentDirectory
from callqa.serving.explainer import Explainer
from callqa.serving.feedback_api import FEEDBACK_OPERATIONS, feedback_routes
from callqa.serving.middleware import GuardMiddleware, QuietValidationErrors, RouteTable
from callqa.serving.openapi import DOCS_PAGE, DOCS_SCRIPT, Operation, build_spec
from callqa.serving.report import ReportBuilder
from callqa.serving.review_api import KeyInfo, key_info, review_operations
from callqa.serving.review_routes import review_routes
from callqa.serving.store import Appeals, Calibrations, Coaching, Feedbacks, ReviewStore
from callqa.serving.store_sink import StoreSink
from callqa.session import ScoringSession

CONFIG = load_serving_config()
# `callqa serve` resolves a tag like callqa-scorer:latest to a folder first, so both services load the same bundle.
BUNDLE_DIR = resolve_bundle(CONFIG.bundle)
BUNDLE_INFO = read_bundle_info(BUNDLE_DIR)
# A child of the "bentoml" logger: BentoML configures its handlers and format in every worker.
log = logging.getLogger("bentoml.callqa")

predicted_levels = bentoml.metrics.Counter(
    name="callqa_predicted_level", documentation="Calls scored, by head and predicted level (topics: per label)",
    labelnames=["head", "level"],
)


model_tokens = bentoml.metrics.Counter(
    name="callqa_model_tokens", documentation="Tokens the model computed: real ones, and padding (waste = padding / "
    "(real + padding))", labelnames=["kind"],
)


class ServedTurn(Turn):
    """A turn within this deployment's limit on characters per turn (limits.max_turn_chars)."""

    text: str = Field(min_length=1, max_length=CONFIG.limits.max_turn_chars, json_schema_extra={"pattern": r"\S"})


class ServedCall(Call):
    """A call within this deployment's limits: the schema states them (the OpenAPI document is made from the running
    config), and the request is parsed by it."""

    turns: list[ServedTurn] = Field(min_length=1, max_length=CONFIG.limits.max_turns, description=(
        f"at most {CONFIG.limits.max_turns} turns of at most {CONFIG.limits.max_turn_chars} characters each, and "
        f"{CONFIG.limits.max_call_chars} characters in all"))


def check_limits(calls: list[Call], limits: Limits) -> list[Call]:
    """The calls, or a ValueError naming the first call over the characters-per-call limit (the one limit a JSON
    Schema cannot state; the others are in :class:`ServedCall`)."""
    for i, call in enumerate(calls):
        total = sum(len(turn.text) for turn in call.turns)
        if total > limits.max_call_chars:
            raise ValueError(f"calls[{i}].turns: {total} characters in all, more than the limit of "
                             f"{limits.max_call_chars}")
    return calls


# The request's calls: the project's call format within the configured limits.
ScoreCalls = Annotated[list[ServedCall], Field(min_length=1, max_length=CONFIG.limits.max_calls),
                       AfterValidator(lambda calls: check_limits(calls, CONFIG.limits))]


class ScoreRequest(BaseModel):
    """POST /score's body. Strict: an unknown field (a misspelt ``"redcat"``) or a string where a boolean belongs is
    a 400, never silently ignored or coerced."""

    model_config = ConfigDict(extra="forbid")

    calls: ScoreCalls = Field(description="calls in the project's JSONL format; labels are ignored")
    redact: StrictBool = Field(default=False, description="mask phone, ID, bank card numbers and e-mails before "
                               "scoring (and storing)")
    store: StrictBool = Field(default=False, description="also store the calls and their scores for review (the "
                              "review queue); a call stored again gets the new prediction, its reviews are kept")
    scorecard: StrictBool = Field(default=True, description="also grade each call on the server's QA scorecard "
                                  "(items, deductions with evidence, red line); false skips it")
    evidence: StrictBool = Field(default=False, description="also give each turn's attribution per head (occlusion: "
                                 "the call is scored once more per turn, so at most limits.max_evidence_turns turns "
                                 "in all)")

    @model_validator(mode="after")
    def _evidence_within_budget(self) -> ScoreRequest:
        turns = sum(len(c.turns) for c in self.calls)
        if self.evidence and turns > CONFIG.limits.max_evidence_turns:
            raise ValueError(f"evidence: {turns} turns in all, more than the limit of "
                             f"{CONFIG.limits.max_evidence_turns} for a request with evidence")
        return self


class ScoreResponse(BaseModel):
    model: str = Field(description="the bundle's tag, callqa-scorer:VERSION")
    warning: str | None = Field(default=None, description="set when the bundle was exported past a failed gate")
    stored: int | None = Field(default=None, description="with store: calls added to the review store (a repeat of "
                               "an identical call and prediction is not stored twice)")
    results: list[ScoredCall]


class CallModel:
    """The ONNX model of one bundle, in the service's worker: one run per core at once, each on one onnxruntime
    thread, fed by a greedy batcher. onnxruntime releases the GIL while it runs, so the worker's event loop keeps
    reading and answering requests meanwhile.

    One thread per run, not one run on every core (:class:`callqa.scorer.ScoringThreads`): the event loop needs a
    core now and then, and a run whose threads meet at every operator loses both cores while one of them waits for
    the loop (raw onnxruntime on 2 cores lost 11-17 % of its speed to a process taking 10 % of one core). Single-thread
    runs each lose only the time taken from them: +18-22 % calls/s at concurrency 32 (docs/serving.md).

    It used to be a BentoML service of its own, in a second worker: every call then crossed a local HTTP hop, was
    validated by pydantic a second time, and its probabilities went back as JSON (~0.7 ms of CPU per call beside the
    int8 student's ~11 ms on 2 cores)."""

    def __init__(self) -> None:
        # The worker's scoring session: the bundle, the card checked against its schema, one thread per run.
        self.session = ScoringSession(BUNDLE_DIR, CONFIG.scorecard, CONFIG.precision, run_threads=1, runs=CONFIG.threads)
        self.threads = self.session.threads()
        # Requests that arrive while every run is busy share the next free one, in arrival order.
        self.batcher = GreedyBatcher(self._run, max_items=CONFIG.limits.max_calls, max_runs=self.threads.n)

    async def predict(self, calls: list[Call]) -> list[CallPrediction]:
        return await self.batcher.submit(calls)

    def busy(self) -> bool:
        """/score has calls waiting, or every run is taken: work of lower priority (evidence) waits."""
        return bool(self.batcher.waiting) or self.batcher.running >= self.batcher.max_runs

    async def _run(self, calls: list[Call]) -> list[CallPrediction]:
        return await asyncio.wrap_future(self.threads.submit(self._predict, calls))

    @staticmethod
    def _predict(scorer: OnnxScorer, calls: list[Call]) -> list[CallPrediction]:
        predictions = scorer.predict(calls)
        real, computed = scorer.tokens.take()
        model_tokens.labels(kind="real").inc(real)
        model_tokens.labels(kind="padding").inc(computed - real)
        return predictions


@functools.cache
def call_model() -> CallModel:
    """The worker's model, loaded when ScoringAPI starts (never in BentoML's supervising process)."""
    return CallModel()


class ModelInfo(BaseModel):
    """GET /api/model: what is served, and under which limits."""

    tag: str
    schema_: LabelSchema = Field(alias="schema", description="the heads, their classes and Chinese display names")
    gate: GateResult
    quantization: str
    serve: str = Field(description="the graph that scores: int8 or fp32")
    created: str
    metrics: dict[str, dict] = Field(description="validation metrics of the served graph, per head")
    limits: Limits
    heads: list[HeadView] = Field(description="how the review UI shows and sets each call head (its widget, "
                                  "classes, thresholds), in the schema's order")


def model_info(_request) -> JSONResponse:
    info = BUNDLE_INFO
    body = ModelInfo(tag=info.tag, schema=info.schema_, gate=info.gate, quantization=info.quantization,
                     serve=info.serve, created=info.created, limits=CONFIG.limits,
                     metrics=info.metrics.get("validation", {}).get(info.serve, {}),
                     heads=[h.view(info.thresholds.get(h.name)) for h in info.schema_.heads])
    return JSONResponse(body.model_dump(mode="json", by_alias=True))


@functools.cache
def review_store() -> ReviewStore:
    """The worker's review store, made on first use."""
    return ReviewStore(CONFIG.database, CONFIG.review)


@functools.cache
def store_sink() -> StoreSink:
    """/score's ``"store": true`` keeps calls as `callqa score --into store` does."""
    return StoreSink.of(review_store())


async def server_error(_request, err: Exception) -> JSONResponse:
    # The error body every other answer has; the type only, as an exception's text may quote stored data.
    log.error("unhandled %s in the review or model API", type(err).__name__)
    return JSONResponse({"error": "the server failed; see its log"}, status_code=500)


@functools.cache
def explainer() -> Explainer:
    """The review UI's evidence, bounded and below /score (serving/explainer.py)."""
    model, limits = call_model(), CONFIG.limits
    return Explainer(model._run, model.busy, BUNDLE_INFO.tag, BUNDLE_INFO.schema_, limits.max_evidence_blocks,
                     limits.evidence_seconds)


async def explain(call: Call, gone) -> CallEvidence:
    return await explainer().explain(call, gone)


UI_DIR = Path(__file__).resolve().parent / "ui"
@functools.cache
def report_builder() -> ReportBuilder:
    directory = AgentDirectory.load(CONFIG.agents) if CONFIG.agents else AgentDirectory()
    # ui_base "": links to calls are paths on this server (/review/?call=ID).
    return ReportBuilder(review_store(), BUNDLE_INFO.schema_, directory, tz=CONFIG.time_zone, ui_base="")


@functools.cache
def appeal_flow() -> Appeals:
    return Appeals(review_store(), BUNDLE_INFO.schema_, window_days=CONFIG.appeal_days)


@functools.cache
def calibrations() -> Calibrations:
    return Calibrations(review_store().engine, BUNDLE_INFO.schema_)


@functools.cache
def coaching() -> Coaching:
    return Coaching(review_store().engine)


@functools.cache
def feedbacks() -> Feedbacks:
    return Feedbacks(review_store().engine)


REVIEW_ROUTES = review_routes(review_store, BUNDLE_INFO.schema_, explain, BUNDLE_INFO.tag, report_builder)
info_app = Starlette(routes=[Route("/model", model_info), Route("/me", key_info), *coaching_routes(coaching),
                             *calibration_routes(calibrations),
                             Mount("/reviews", routes=REVIEW_ROUTES),
                             *appeal_routes(appeal_flow), *feedback_routes(feedbacks)],
                     exception_handlers={Exception: server_error})
ui_app = StaticFiles(directory=UI_DIR, html=True)

# Every route as clients see it: the OpenAPI spec, and the templates that logs and metrics name requests by.
OPERATIONS = [
    Operation("POST", "/score", "Score calls: per head the distribution, expected score, level and confidence",
              "scorer", ScoreResponse, body=ScoreRequest),
    Operation("GET", "/api/model", "The served bundle: tag, label schema, gate, validation metrics, limits", "any",
              ModelInfo),
    Operation("GET", "/api/me", "Who this key belongs to (id, name, role), for a key of any role", "any", KeyInfo),
    *review_operations(BUNDLE_INFO.schema_),
    *APPEAL_OPERATIONS,
    *FEEDBACK_OPERATIONS,
    *COACHING_OPERATIONS,
    *CALIBRATION_OPERATIONS,
    Operation("GET", "/metrics", "Prometheus metrics, by route template", "metrics",
              media_type="text/plain; version=0.0.4"),
    Operation("GET", "/healthz", "Alive", None, media_type="text/plain"),
    Operation("GET", "/readyz", "Ready to score", None, media_type="text/plain"),
]
SPEC = build_spec(OPERATIONS, title="callqa 智能质检：评分与复核接口", version=f"{__version__} ({BUNDLE_INFO.tag})",
                  description="每通电话的模型评分（POST /score：服务态度、共情、问题解决、投诉主题与质检评分表），"
                  "以及复核、申诉、质检报表接口。复核工作台：[/review/](/review/)，质检看板："
                  "[/review/dashboard.html](/review/dashboard.html)。密钥由管理员用 `callqa keys create` 创建。\n\n"
                  + __doc__.split("\n\n")[0])
ROUTES = RouteTable(tuple(dict.fromkeys(op.path for op in OPERATIONS)))
# BentoML logs a refused request's ValidationError with its input values; the guard logs one line instead.
logging.getLogger("bentoml._internal.server.http_app").addFilter(QuietValidationErrors(ROUTES))
# The spec and its docs page, served from a mount at the root that answers only these paths (and so is matched before
# BentoML's own /docs.json and /, which document /score alone and load a tag manager from the internet).
docs_app = Starlette(routes=[
    Route("/docs.json", lambda _request: JSONResponse(SPEC)),
    Route("/docs.js", lambda _request: Response(DOCS_SCRIPT, media_type="text/javascript")),
    Route("/", lambda _request: HTMLResponse(DOCS_PAGE)),
])


def metrics_text() -> tuple[bytes, str]:
    """The Prometheus exposition of every worker's metrics: what BentoML's own /metrics serves (its multiprocess
    collector), served by the guard so it is authenticated and free of per-path series."""
    from bentoml._internal.container import BentoMLContainer

    client = BentoMLContainer.metrics_client.get()
    return client.generate_latest(), client.CONTENT_TYPE_LATEST


@bentoml.asgi_app(docs_app, path="/")
@bentoml.asgi_app(ui_app, path="/review")
@bentoml.asgi_app(info_app, path="/api")
# BentoML's HTTP metrics and access log name requests by raw path (ids, phone numbers, forged CR/LF lines, and an
# unbounded number of metric series): both are off, and the guard middleware does them by route template (one log
# line per request). Tracing is off too: callqa exports no traces, and BentoML's OpenTelemetry middleware otherwise
# makes a span per request — with the second log line /score had, ~0.5 ms of the worker's CPU per call.
@bentoml.service(name="callqa", workers=1, traffic={"timeout": 120}, metrics={"enabled": False},
                 logging={"access": {"enabled": False}}, tracing={"excluded_urls": ".*"})
class ScoringAPI:
    def __init__(self) -> None:
        self.model = call_model()
        info = BUNDLE_INFO
        self.warning = None
        if info.gate.forced:
            self.warning = f"{info.tag} was exported past a failed gate: {'; '.join(info.gate.failures)}"
            log.warning(self.warning)

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    async def score(self, calls: list[Call], redact: bool = False, store: bool = False,
                    scorecard: bool = True, evidence: bool = False) -> ScoreResponse:
        if redact:
            calls = [redact_call(c) for c in calls]
        # With evidence, every call's occlusion batch (the call first) goes to the model in one request.
        batches = [occlusion_batch(c) if evidence else [c] for c in calls]
        raw = await self.model.predict([c for batch in batches for c in batch])
        info, offset, firsts, explained = BUNDLE_INFO, 0, [], []
        for call, batch in zip(calls, batches):
            firsts.append(raw[offset])
            if evidence:
                explained.append(attributions(call, info.tag, info.schema_, raw[offset : offset + len(batch)]))
            offset += len(batch)
        results = self.model.session.pipeline.assemble(calls, firsts, with_scorecard=scorecard)
        for result, found in zip(results, explained):
            result.evidence = found
        for result in results:
            for head, value in result.predicted().items():
                for level in value if isinstance(value, list) else [value]:
                    predicted_levels.labels(head=head, level=level).inc()
        stored = None
        if store:
            stored = await run_in_threadpool(store_sink().keep, calls, results, info)
            for found in explained:  # what the review UI would compute again on demand
                await run_in_threadpool(review_store().save_evidence, found)
        return ScoreResponse(model=info.tag, warning=self.warning, results=results, stored=stored)


ScoringAPI.add_asgi_middleware(GuardMiddleware, database=CONFIG.database, auth=CONFIG.auth,
                               max_body_bytes=CONFIG.limits.max_body_bytes, routes=ROUTES,
                               metrics_text=metrics_text, recycle_after=CONFIG.recycle_after_requests)
