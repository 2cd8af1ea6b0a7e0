"""A bundle in the BentoML model store: refusing a version stored already, and storing one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from callqa.bundle import BENTO_MODEL_NAME, BundleInfo

from .gate import ExportError


def stored_already(version: str) -> None:
    """Refuse a version the BentoML store holds, before any work (the store never overwrites a tag)."""
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{BENTO_MODEL_NAME}:{version}"
    try:
        bentoml.models.get(tag)
    except NotFound:
        return
    raise ExportError(f"{tag} is already in the BentoML model store ({os.environ.get('BENTOML_HOME', '~/bentoml')}): "
                      f"choose another --version, or delete it first with `bentoml models delete {tag}`")


def save_to_store(directory: Path, bundle: BundleInfo) -> None:
    import bentoml

    metadata = {"gate_passed": bundle.gate.passed, "forced": bundle.gate.forced, "run": bundle.run,
                "encoder": bundle.encoder, "quantization": bundle.quantization, "callqa_version": bundle.callqa_version,
                "heads": [h.name for h in bundle.schema_.all_heads]}
    with bentoml.models.create(bundle.tag, labels={"schema": bundle.schema_.name}, metadata=metadata) as model:
        for path in Path(directory).iterdir():
            if path.is_file():
                shutil.copyfile(path, Path(model.path) / path.name)
            elif path.is_dir():  # sentence/: the semantic rules' encoder
                shutil.copytree(path, Path(model.path) / path.name)
