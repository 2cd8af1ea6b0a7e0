"""What a batch job did, summed over its chunks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchResult:
    calls: int = 0
    rejected_lines: int = 0
    parts_written: int = 0
    parts_skipped: int = 0
    real_tokens: int = 0  # tokens of the calls' windows
    computed_tokens: int = 0  # tokens the model ran, padding included

    def add(self, other: BatchResult) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def padding_waste(self) -> float:
        return 1 - self.real_tokens / self.computed_tokens if self.computed_tokens else 0.0


COUNTS = ("calls", "rejected_lines", "parts_written", "parts_skipped", "real_tokens", "computed_tokens")
