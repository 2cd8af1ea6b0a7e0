"""``run.json``: what a training run was and produced, as a typed model that evaluation, export and bench read.

The encoder is recorded by name and a hash of its weights, never by a local path: a run trained on
``/tmp/xyz/multilingual-e5-small-zh`` and one trained on ``~/.cache/callqa/models/multilingual-e5-small-zh`` name the
same encoder, and a report can be shared without leaking a machine's folders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callqa.bundle import sha256_file
from callqa.render import RenderSpec
from callqa.schema import LabelSchema

from .config import TrainConfig


class DataFile(BaseModel):
    path: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> DataFile:
        return cls(path=str(path), sha256=sha256_file(path))

    def changed(self) -> bool:
        """True when the file is gone or no longer what the run read."""
        return not Path(self.path).exists() or sha256_file(Path(self.path)) != self.sha256


class EncoderRef(BaseModel):
    name: str = Field(description="hub id, or the model folder's name")
    sha256: str = Field(description="SHA-256 of the encoder's float32 weights as loaded (name-sorted tensors)")

    def __str__(self) -> str:
        return f"{self.name} (sha256 {self.sha256[:12]})"

    @classmethod
    def of(cls, name_or_path: str, encoder) -> EncoderRef:
        """``encoder``: the loaded torch module; its weights are hashed, so the same model hashes the same
        whichever file format or folder it came from."""
        digest = hashlib.sha256()
        for key, tensor in sorted(encoder.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        path = Path(name_or_path)
        return cls(name=path.name if path.exists() else name_or_path, sha256=digest.hexdigest())


class Evaluation(BaseModel):
    """One evaluation on validation data during training: its step and epoch, the validation loss, and each head's
    headline metrics flat as ``head.metric`` (``attitude.nmd``), as run.json has always written them."""

    model_config = ConfigDict(extra="allow")

    step: int
    epoch: int
    val_loss: float

    @property
    def metrics(self) -> dict[str, float | None]:
        """``head.metric`` → value."""
        return dict(self.model_extra or {})

    def __getitem__(self, key: str) -> Any:  # run.json's readers before it was typed read entries as mappings
        return getattr(self, key) if key in type(self).model_fields else self.metrics[key]


class HeadMetrics(BaseModel):
    """One head's metrics on validation data, as :func:`callqa.metrics.evaluate_heads` computes them: ``n`` (calls
    or turns that carry the head) and the metrics of its kind (``nmd``, ``macro_f1``, ``confusion``, …)."""

    model_config = ConfigDict(extra="allow")

    n: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]


class Validation(BaseModel):
    """Where the validation calls came from: files of their own, or a held-out share of the training files."""

    files: list[DataFile] = []
    held_out_fraction: float | None = None
    held_out_ids: list[str] = []


class RunInfo(BaseModel):
    """A finished training run, as its ``run.json`` records it: the code and encoder, the recipe, the label schema
    and render spec, the data it read (paths and hashes), where validation came from, the steps, the thresholds
    tuned on validation, the validation metrics and the evaluation history. Read and written by :class:`RunDir`."""

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    callqa_version: str
    created: str
    encoder: EncoderRef
    config: TrainConfig
    label_schema: LabelSchema = Field(alias="schema")
    render: RenderSpec
    data: list[DataFile]
    validation: Validation
    n_train: int
    n_validation: int
    steps: int
    best_step: int | None
    device: str
    processes: int = 1  # training processes (DDP ranks); device is rank 0's
    train_seconds: float
    loop_seconds: float | None = None  # of train_seconds, the optimizer steps and evaluations (no data preparation)
    thresholds: dict[str, list[float]] = {}
    validation_loss: float
    validation_metrics: dict[str, HeadMetrics]
    history: list[Evaluation]

    @model_validator(mode="before")
    @classmethod
    def _earlier_format(cls, data: Any) -> Any:
        # Runs written before run.json was typed: "encoder" a path, "validation" a list of files or a held-out dict.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("encoder"), str):
            data["encoder"] = {"name": Path(data["encoder"]).name, "sha256": "unknown"}
        validation = data.get("validation")
        if isinstance(validation, list):
            data["validation"] = {"files": validation}
        elif isinstance(validation, dict) and "call_ids" in validation:
            data["validation"] = {"held_out_fraction": validation.get("from_training_data"),
                                  "held_out_ids": validation["call_ids"]}
        return data

    @property
    def validation_sources(self) -> list[DataFile]:
        """The files the validation calls are read from: the run's validation files, or its training files."""
        return self.validation.files or self.data

    def held_out(self) -> set[str]:
        """Ids of the training-file calls held out for validation (empty when it validated on files of its own)."""
        return set(self.validation.held_out_ids)


@dataclass(frozen=True)
class RunDir:
    """A training run's folder, its layout in one place: ``run.json`` (the typed :class:`RunInfo`), ``model/`` (the
    encoder and heads), ``tokenizer.json``, ``eval/`` (what `callqa evaluate` writes), ``checkpoint/`` while the run
    is unfinished, ``student-init/`` (a distilled student's starting weights). Nothing else joins paths inside a run."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def info_file(self) -> Path:
        return self.root / "run.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def encoder_config_file(self) -> Path:
        return self.model / "encoder" / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_report(self) -> Path:
        return self.eval / "report.html"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def checkpoint_state(self) -> Path:
        return self.checkpoint / "state.pt"

    @property
    def student_init(self) -> Path:
        return self.root / "student-init"

    def finished(self) -> bool:
        """A run that wrote its run.json (training writes it last)."""
        return self.info_file.exists()

    def info(self) -> RunInfo:
        if not self.finished():
            raise FileNotFoundError(f"{self.root}: not a finished run (no run.json); train with "
                                    f"`callqa train --out {self.root}`")
        return RunInfo.model_validate_json(self.info_file.read_text(encoding="utf-8"))

    def write_info(self, info: RunInfo) -> None:
        text = json.dumps(info.model_dump(mode="json", by_alias=True), ensure_ascii=False, indent=2)
        self.info_file.write_text(text, encoding="utf-8")

    def encoder_config(self) -> dict:
        """The trained encoder's config.json (its layers, heads, hidden size)."""
        return json.loads(self.encoder_config_file.read_text(encoding="utf-8"))
