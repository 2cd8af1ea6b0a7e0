"""The scoring service's settings: configs/serving/default.yaml, or the file CALLQA_SERVING_CONFIG names;
CALLQA_BUNDLE, CALLQA_DB and CALLQA_AGENTS override `bundle`, `database` and `agents`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callqa.resources import config_dir
from callqa.yamlfile import read_yaml, require_mapping, validate

from .store import QueuePolicy

DEFAULT_CONFIG = config_dir("serving") / "default.yaml"


class Limits(BaseModel):
    """Input limits: a request over any of them gets a 4xx naming the field, before it reaches the model."""

    model_config = ConfigDict(extra="forbid")

    max_calls: int = Field(default=64, ge=1)
    max_turns: int = Field(default=400, ge=1)
    max_turn_chars: int = Field(default=4000, ge=1)
    max_call_chars: int = Field(default=40000, ge=1)
    max_body_bytes: int = Field(default=4_000_000, ge=1024)
    max_evidence_turns: int = Field(default=400, ge=1, description="/score with evidence: turns of all calls of one "
                                    "request, at most (each turn costs one more scoring of its call)")
    max_evidence_blocks: int = Field(default=64, ge=1, description="the review UI's evidence: a stored call of more "
                                     "turns is occluded in this many blocks of neighbouring turns (at most this many "
                                     "+ 1 scorings per call)")
    evidence_seconds: float = Field(default=60, gt=0, le=600, description="the review UI's evidence: given up (503) "
                                    "past this many seconds; it runs only while /score leaves a model run free")


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle: str = "callqa-scorer:latest"
    scorecard: str | None = Field(default="default", description="the QA scorecard /score and ingest apply: a shipped "
                                  "name (configs/scorecards) or a YAML path; null: none")
    database: str = "sqlite:///var/callqa.db"
    auth: bool = True
    threads: int | None = Field(default=None, ge=1, description="cores the model uses: that many model runs at once, "
                                "one onnxruntime thread each (null: every core this process may use)")
    precision: Literal["int8", "fp32"] | None = Field(default=None, description="which graph to serve (default: the bundle's choice, int8)")
    limits: Limits = Limits()
    recycle_after_requests: int | None = Field(
        default=100_000, ge=10, description="the worker restarts after this many requests, returning the memory "
        "BentoML 1.4 keeps per request (~5 KB, docs/serving.md); connections wait in the socket's backlog while the "
        "fresh worker loads its model")
    review: QueuePolicy = QueuePolicy()
    agents: str | None = Field(default=None, description="agent directory (CSV agent_id,name,team or YAML): names and "
                               "teams in reports and the dashboard")
    time_zone: str = Field(default="Asia/Shanghai", description="calendar periods of reports and the dashboard")
    appeal_days: float = Field(default=7.0, gt=0, le=366, description="an agent may appeal a call's scorecard this many "
                               "days after it was scored")


def load_serving_config(path: str | Path | None = None) -> ServingConfig:
    path = Path(path or os.environ.get("CALLQA_SERVING_CONFIG") or DEFAULT_CONFIG)
    document = read_yaml(path, ValueError, "serving config")
    config = validate(ServingConfig, document, ValueError, data=require_mapping(document, ValueError, "a serving config"))
    overrides = {"bundle": os.environ.get("CALLQA_BUNDLE"), "database": os.environ.get("CALLQA_DB"),
                 "agents": os.environ.get("CALLQA_AGENTS")}
    if os.environ.get("CALLQA_AUTH", "").lower() in ("0", "off", "false"):
        overrides["auth"] = False
    return config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
