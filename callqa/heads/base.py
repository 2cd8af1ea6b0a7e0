"""The base class of a head kind: everything that differs between kinds of heads, as methods of one object.

Code that treats heads asks ``head.spec`` (the head's kind) and never compares kind names: activation, the label's
shape, decoding into the API's response, metrics and the int8 gate's metric, uncertainty for the review queue,
model–reviewer agreement, what the month report counts, the review UI's descriptor. Training keeps the one part that
needs torch, the loss, registered by kind class (``training.model.LOSSES``; :func:`registered` looks a kind up along
its class's bases, so a subclass inherits its parent's loss unless it registers its own).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, Field

from callqa.calls import Label
from callqa.measures import DEFAULT_THRESHOLD, calibration_curve, ece, kappa
from callqa.scores import LevelScore, TopicsScore

T = TypeVar("T")


class Head(Protocol):
    """What a kind reads of the head it is handed (callqa.schema.Head; a protocol here, so that the schema may import
    the kinds and not the other way round)."""

    name: str
    kind: str
    display: str
    scope: str
    classes: dict[str, str]

    @property
    def class_ids(self) -> list[str]: ...

    @property
    def size(self) -> int: ...

    @property
    def values(self) -> np.ndarray: ...

    def index(self, class_id: object) -> int: ...


class LabelError(ValueError):
    """A call's label that does not fit its head (unknown class, wrong shape)."""


class HeadView(BaseModel):
    """How the review UI shows and sets one head (GET /api/model ``heads``): the UI reads this, never the head's
    kind, so a new kind of head needs no branch in serving/ui."""

    name: str
    display: str
    scope: Literal["call", "turn"]
    widget: Literal["levels", "labels"] = Field(description="levels: pick one class (the model's distribution and confidence beside them); "
                        "labels: pick any (each with the model's probability against its threshold)")
    multiple: bool = Field(description="the label is a list of class ids (else one class id)")
    expected: bool = Field(description="the model's expected score on the scale is shown (an ordinal head)")
    classes: dict[str, str] = Field(description="class id → Chinese name, in the scale's order")
    thresholds: dict[str, float] = Field(default={}, description="labels: class id → the probability it counts from")
    filterable: bool = Field(description="the queue can be searched by this head's predicted labels (topic=)")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class HeadKind(ABC):
    """One kind of head. Subclasses set the class attributes and implement the abstract methods; one instance per
    kind lives in :data:`callqa.heads.KINDS` under its ``name``."""

    name: ClassVar[str]
    min_classes: ClassVar[int] = 2
    multiple: ClassVar[bool] = False  # the label is a list of class ids (independent yes/no per class)
    scale: ClassVar[bool] = False  # the classes are a scale: an expected score, linear points on a scorecard
    gate_metric: ClassVar[str]  # what export's int8 gate compares with fp32 (see LOWER_IS_BETTER for its direction)
    table_metrics: ClassVar[tuple[str, ...]]  # metric columns of `callqa train/evaluate` tables, most important first
    agreement_metric: ClassVar[str] = "kappa"  # what model–reviewer agreement reports: "QWK" or "kappa"
    kappa_weights: ClassVar[str | None] = None
    # How a reviewer sees and sets the head: "levels" — one of the classes; "labels" — any of them.
    widget: ClassVar[Literal["levels", "labels"]] = "levels"
    # The month report's 分类统计 counts calls per label of this head, and the queue can be searched by them.
    counted: ClassVar[bool] = False
    error_title: ClassVar[str]  # what a call's error on the head is (training report, worst calls)

    def __repr__(self) -> str:
        return f"<head kind {self.name}>"

    # -- the model's output -------------------------------------------------------------------------------------
    @abstractmethod
    def activate(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from logits [..., C]: a distribution over levels, or one probability per label."""

    @abstractmethod
    def decode(self, head: Head, probs: np.ndarray, thresholds: list[float] | None = None) -> LevelScore | TopicsScore:
        """One call's (or turn's) score as the API answers it."""

    @abstractmethod
    def predicted(self, head: Head, probs: np.ndarray, thresholds: np.ndarray | None = None) -> list:
        """Per row of ``probs`` [N, C] the label the model gives, in the call format (a class id, or a list)."""

    def gold(self, head: Head, q: np.ndarray) -> list:
        """Per row of targets ``q`` [N, C] the label they stand for (the majority class; the labels present)."""
        return self.predicted(head, q)

    @abstractmethod
    def uncertainty(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[float, float]:
        """(entropy, margin) of one prediction, both on 0..1: how unsure the model is, for the review queue."""

    @abstractmethod
    def uncertainty_of(self, score: LevelScore | TopicsScore) -> tuple[float, float]:
        """:meth:`uncertainty` of a score as the API answered it (the review store keeps those)."""

    @abstractmethod
    def columns(self, head: Head, score: LevelScore | TopicsScore) -> dict[str, Any]:
        """A score as flat columns of a batch output row (``callqa score``), keyed by suffix (``level``, …)."""

    def counted_labels(self, head: Head, score: LevelScore | TopicsScore | dict, meta: dict | None = None) -> list[str]:
        """The class ids the month report counts this call under (``counted`` kinds); none by default."""
        return []

    def counted_label(self, head: Head, label: Label) -> list[str]:
        """The class ids a reviewer's label for this head counts the call under (``counted`` kinds)."""
        return []

    # -- labels -------------------------------------------------------------------------------------------------
    @abstractmethod
    def target(self, head: Head, label: Label) -> np.ndarray:
        """The training target of a label: a distribution, or a 0/1 vector. Raises :class:`LabelError`."""

    @abstractmethod
    def label_json_schema(self, head: Head) -> dict:
        """A reviewer's label for this head as JSON Schema."""

    # -- evaluation ---------------------------------------------------------------------------------------------
    @abstractmethod
    def metrics(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> dict:
        """Every metric of the head over rows that carry a label (``q`` [N, C] non-zero)."""

    @abstractmethod
    def call_errors(self, head: Head, p: np.ndarray, q: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        """Per row, how wrong the model is (:attr:`error_title` says what the number is); 0 is right."""

    def tune_thresholds(self, p: np.ndarray, q: np.ndarray) -> list[float] | None:
        """Cut-offs tuned on validation rows, for kinds that decide at thresholds; None for the others."""
        return None

    def positive_weights(self, q: np.ndarray) -> np.ndarray | None:
        """Weights of positive targets in the loss (rare labels), for kinds that have them."""
        return None

    def distillation_weight(self, head: Head) -> float:
        """How much more a head's loss weighs against a teacher's soft targets (see training.distill)."""
        return 1.0

    # -- agreement of reviewers and the model -------------------------------------------------------------------
    @abstractmethod
    def agreement(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        """{n, accuracy, kappa} of (reviewer label, model label) pairs."""

    @abstractmethod
    def agreement_detail(self, head: Head, pairs: list[tuple[Any, Any]]) -> dict:
        """{confusion, per_label}: a level head's confusion matrix (rows reviewer) or a label head's counts."""

    # -- evidence and the UI ------------------------------------------------------------------------------------
    def measure(self, head: Head, probs: np.ndarray, target: int | None) -> tuple[str, float, int | None]:
        """(what, value, target class) an occlusion compares with the turn left out: p of the predicted class."""
        target = int(np.argmax(probs)) if target is None else target
        return f"p({head.class_ids[target]})", float(probs[target]), target

    def view(self, head: Head, thresholds: list[float] | None = None) -> HeadView:
        """The UI's descriptor of ``head`` (``thresholds``: a labels head's tuned cut-offs, in class order)."""
        cuts = {}
        if self.multiple:
            cuts = dict(zip(head.class_ids, thresholds)) if thresholds else {c: DEFAULT_THRESHOLD for c in head.class_ids}
        return HeadView(name=head.name, display=head.display, scope=head.scope, widget=self.widget,
                        multiple=self.multiple, expected=self.scale, classes=dict(head.classes), thresholds=cuts,
                        filterable=self.counted and head.scope == "call")


def calibration(confidence: np.ndarray, correct: np.ndarray) -> dict:
    """ECE and the reliability curve: the part of every kind's metrics that measures calibration."""
    return {"ece": ece(confidence, correct), "calibration": calibration_curve(confidence, correct)}


def binary_kappa(a: list[int], b: list[int]) -> float | None:
    return kappa(a, b, [0, 1])


def normalised_entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / math.log(len(p)))


def registered(registry: dict[type, T], kind: HeadKind) -> T:
    """What ``registry`` holds for ``kind``'s class or its nearest base: a subclass inherits its parent's entry."""
    for cls in type(kind).__mro__:
        if cls in registry:
            return registry[cls]
    raise KeyError(f"nothing registered for head kind {kind.name!r}")
