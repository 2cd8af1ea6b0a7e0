"""Training recipes as data: configs/train/*.yaml parsed into a checked :class:`TrainConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callqa.render import RenderSpec
from callqa.schema import LabelSchema, SchemaError, load_schema
from callqa.yamlfile import read_yaml, require_mapping, validate


class ConfigError(ValueError):
    """A training config that cannot be used; raised before any training starts."""


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=5, gt=0)
    max_steps: int | None = Field(default=None, gt=0, description="stop after this many optimizer steps")
    batch_size: int = Field(default=16, ge=1, description="calls per forward pass")
    grad_accum: int = Field(default=1, ge=1)
    lr: float = Field(default=5e-5, gt=0, description="encoder learning rate")
    head_lr: float = Field(default=1e-3, gt=0, description="learning rate of the linear heads")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    freeze_layers: int = Field(default=0, ge=0, description="freeze embeddings and the lowest N encoder layers")


class LossConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ordinal: Literal["ce", "ce+emd"] = Field(
        default="ce+emd", description="soft-target cross-entropy, optionally plus squared EMD between CDFs"
    )
    emd_weight: float = Field(default=1.0, ge=0)
    pos_weight: bool = Field(default=False, description="weight positive topics by their rarity (multilabel BCE)")
    head_weights: dict[str, float] = Field(default_factory=dict, description="per-head loss weights (default 1)")
    source_weights: dict[str, float] = Field(
        default_factory=dict, description="per-call loss weights by the call's meta.source (default 1): e.g. survey: "
        "0.3 for the weak labels `callqa feedback export` writes; training calls only, validation is unweighted")

    @field_validator("source_weights")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0 <= v <= 100]
        if bad:
            raise ValueError(f"weights are 0–100: {', '.join(bad)}")
        return value


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(default="loss", description="validation metric for early stopping: loss, or HEAD.METRIC "
                        "(e.g. A.nmd, attitude.qwk, topics.macro_f1); 'mean.nmd' averages over ordinal heads; "
                        "'mean.gate' averages each head's export-gate metric as a loss (NMD, 1 − macro-F1)")
    every_steps: int | None = Field(default=None, gt=0, description="evaluate every N steps (default: each epoch)")
    patience: int = Field(default=3, ge=1, description="evaluations without improvement before stopping")
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5, description="held out when no --validation file")


class DistillConfig(BaseModel):
    """Train on a teacher run's predictions (`callqa distill` writes this section)."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(description="the teacher's run folder")
    alpha: float = Field(default=0.7, ge=0, le=1, description="each target is alpha × the teacher's distribution + "
                         "(1 − alpha) × the gold label where the call has one; calls without labels learn the teacher's")
    layers: list[int] = Field(default_factory=list, description="the teacher's encoder layers the student kept")


class TrainConfig(BaseModel):
    """A training recipe (configs/train/*.yaml): the encoder, the schema and heads, rendering, optimisation, seeds."""

    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(default="callcenter", alias="schema", description="schema name or YAML path")
    encoder: str | None = Field(default=None, description="hub id or local path; default: the shared e5 copy or the hub")
    render: RenderSpec = Field(default_factory=RenderSpec)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    heads: list[str] | None = Field(default=None, description="train only these heads of the schema")
    distill: DistillConfig | None = Field(default=None, description="learn a teacher run's outputs (callqa distill)")
    seed: int = 42

    @model_validator(mode="after")
    def _heads_exist(self) -> TrainConfig:
        try:
            schema = load_schema(self.schema_)
        except SchemaError as err:
            raise ValueError(str(err)) from None
        names = [h.name for h in schema.all_heads]
        unknown = [h for h in (self.heads or []) + list(self.loss.head_weights) if h not in names]
        if unknown:
            raise ValueError(f"unknown head(s) {', '.join(unknown)}: schema {schema.name!r} has {', '.join(names)}")
        metric = self.eval.metric
        if metric != "loss":
            head, _, name = metric.partition(".")
            if not name or (head != "mean" and head not in names):
                raise ValueError(f"eval.metric {metric!r}: use 'loss', 'mean.nmd' or HEAD.METRIC with a head of {schema.name!r}")
        return self

    def overridden(self, max_steps: int | None = None, seed: int | None = None, metric: str | None = None) -> TrainConfig:
        """This recipe with a command line's --max-steps, --seed and --metric where given."""
        config = self
        if metric is not None:
            config = config.model_copy(update={"eval": config.eval.model_copy(update={"metric": metric})})
        if max_steps is not None:
            config = config.model_copy(update={"optim": config.optim.model_copy(update={"max_steps": max_steps})})
        if seed is not None:
            config = config.model_copy(update={"seed": seed})
        # model_copy skips validation: check the result now, not at the first evaluation (a misspelt --metric).
        return TrainConfig.model_validate(config.model_dump(by_alias=True))

    def label_schema(self) -> LabelSchema:
        """The schema, narrowed to ``heads`` when the config names some."""
        try:
            schema = load_schema(self.schema_)
        except SchemaError as err:
            raise ValueError(str(err)) from None
        if self.heads:
            schema = schema.narrowed(self.heads)
        return schema

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        document = read_yaml(path, ConfigError, "config")
        require_mapping(document, ConfigError, "a training config")
        return validate(cls, document, ConfigError, data=document.data or {})
