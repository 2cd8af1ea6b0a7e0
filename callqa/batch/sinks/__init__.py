"""The sinks of `callqa score --into NAME`: a new one is a module and a registry line. Entries are import paths, so
the core names the review store's sink (serving/store_sink.py) without importing the serving side."""

from __future__ import annotations

import importlib

from .base import FolderSink, Sink

SINKS = {
    "parquet": "callqa.batch.sinks.parquet:ParquetSink",
    "jsonl": "callqa.batch.sinks.jsonl:JsonlSink",
    "store": "callqa.serving.store_sink:StoreSink",
}


def make_sink(name: str, target: str) -> Sink:
    """The sink registered as ``name``, writing to ``target`` (a folder, or the store's database URL)."""
    if name not in SINKS:
        raise ValueError(f"--into: one of {', '.join(SINKS)}, not {name!r}")
    module, cls = SINKS[name].split(":")
    return getattr(importlib.import_module(module), cls)(target)


__all__ = ["SINKS", "FolderSink", "Sink", "make_sink"]
