"""The engines of `callqa score --engine NAME`: where chunks are scored. A new one is a module and a registry line."""

from __future__ import annotations

from .local import LocalEngine, score_chunk
from .ray import RayEngine

ENGINES = {"local": LocalEngine, "ray": RayEngine}

__all__ = ["ENGINES", "LocalEngine", "RayEngine", "score_chunk"]
