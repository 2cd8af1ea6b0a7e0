"""The model bundle: the contract between training (which writes it) and serving (which loads it).

A bundle is a directory: ``bundle.json`` (this module's :class:`BundleInfo`), ``tokenizer.json``, ``model.onnx``
(fp32), ``model.int8.onnx`` and ``parity.json``. The ONNX graphs are window level: ``input_ids`` and
``attention_mask`` in; ``pooled`` and one ``logits.HEAD`` output per head out. Call-level scores are the weighted
window mean of :func:`callqa.render.aggregate_windows`, exactly as in training.

:func:`load_bundle` checks every file against the hash recorded at export and refuses a bundle whose parity and
quality gate failed, unless the export was forced, which the bundle records and serving shows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callqa.render import CallEncoder, RenderSpec
from callqa.schema import LabelSchema

FORMAT = "callqa-bundle/1"
BENTO_MODEL_NAME = "callqa-scorer"


class BundleError(RuntimeError):
    """A bundle that cannot be served; the message says which file and why."""


class GateResult(BaseModel):
    """Outcome of the export's parity (PyTorch vs ONNX) and quality (int8 vs fp32) checks."""

    passed: bool
    forced: bool = False
    failures: list[str] = Field(default_factory=list, description="one line per failed check")


class BundleInfo(BaseModel):
    """``bundle.json``: everything serving needs to score exactly as the model was trained and validated."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["callqa-bundle/1"] = FORMAT
    name: str
    version: str
    created: str
    callqa_version: str
    run: str = Field(description="the training run this bundle was exported from")
    encoder: str
    schema_: LabelSchema = Field(alias="schema")
    render: RenderSpec
    thresholds: dict[str, list[float]] = Field(default_factory=dict, description="per-label thresholds of multilabel heads")
    data: list[dict] = Field(default_factory=list, description="training files and their sha256")
    serve: Literal["int8", "fp32"] = "int8"
    quantization: str = Field(description="how model.int8.onnx was made (see docs/export.md)")
    metrics: dict = Field(default_factory=dict, description="validation metrics per model file and head")
    gate: GateResult
    files: dict[str, str] = Field(description="file name → sha256 at export")

    @property
    def tag(self) -> str:
        return f"{BENTO_MODEL_NAME}:{self.version}"

    @property
    def model_file(self) -> str:
        return "model.int8.onnx" if self.serve == "int8" else "model.onnx"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bundle_info(directory: Path) -> BundleInfo:
    """A bundle's bundle.json (its tag, schema, thresholds, gate and metrics), without loading or checking its files."""
    path = Path(directory) / "bundle.json"
    if not path.exists():
        raise BundleError(f"{directory}: not a model bundle (no bundle.json); make one with `callqa export --run RUN`")
    try:
        return BundleInfo.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{path}: field {field}: {first['msg']}") from None


def verify_files(directory: Path, info: BundleInfo) -> None:
    for name, recorded in info.files.items():
        path = Path(directory) / name
        if not path.exists():
            raise BundleError(f"{path}: missing from the bundle")
        found = sha256_file(path)
        if found != recorded:
            raise BundleError(
                f"{path}: sha256 {found[:12]}… does not match {recorded[:12]}… recorded at export; "
                f"the file changed after export. Re-export the run."
            )


def load_bundle(directory: str | Path) -> tuple[BundleInfo, CallEncoder]:
    """The bundle's metadata and the call encoder it was trained with; raises :class:`BundleError` if unservable."""
    directory = Path(directory)
    info = read_bundle_info(directory)
    if not info.gate.passed and not info.gate.forced:
        raise BundleError(
            f"{directory}: the export gate failed ({'; '.join(info.gate.failures)}). Serving refuses it; fix the "
            f"model or re-export with --force to accept the loss (the override is recorded and shown)."
        )
    verify_files(directory, info)
    return info, CallEncoder.from_file(directory / "tokenizer.json", info.render)


def write_bundle_info(directory: Path, info: BundleInfo) -> None:
    text = json.dumps(info.model_dump(mode="json", by_alias=True), ensure_ascii=False, indent=2)
    (Path(directory) / "bundle.json").write_text(text + "\n", encoding="utf-8")


def resolve_bundle(ref: str | Path) -> Path:
    """A bundle folder, or a tag in the BentoML model store (``callqa-scorer:VERSION``, ``VERSION`` or ``latest``)."""
    path = Path(ref)
    if path.exists():
        return path
    try:
        import bentoml
        from bentoml.exceptions import BentoMLException
    except ImportError:
        raise FileNotFoundError(f"{ref}: no such bundle folder (tags need the serve extra: pip install 'callqa[serve]')") from None

    if "/" in str(ref) or str(ref).startswith("."):
        raise FileNotFoundError(f"{ref}: no such bundle folder")
    tag = str(ref) if ":" in str(ref) else f"{BENTO_MODEL_NAME}:{ref}"
    try:
        return Path(bentoml.models.get(tag).path)
    except BentoMLException:  # not in the store, or not a valid tag at all
        raise FileNotFoundError(f"{ref}: neither a bundle folder nor a model in the BentoML store "
                                f"(`callqa bundles list` shows what is there)") from None
