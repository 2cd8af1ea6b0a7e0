"""The Parquet sink: a dataset of flat score columns, one part per chunk (``part-iiiii-kkkkk.parquet``), written to a
temporary name and renamed when complete, so a rerun skips finished parts and never finds half a file."""

from __future__ import annotations

from pathlib import Path

from callqa.bundle import BundleInfo
from callqa.calls import Call
from callqa.pipeline import ScoredCall
from callqa.schema import LabelSchema

from ..chunks import Chunk
from .base import FolderSink, replace_atomically


class ParquetSink(FolderSink):
    """``target``: the output folder."""

    name = "parquet"

    suffix = ".parquet"

    def write(self, chunk: Chunk, calls: list[Call], scored: list[ScoredCall], info: BundleInfo) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [flat_row(c, s, info.tag, info.schema_) for c, s in zip(calls, scored, strict=True)]
        table = pa.Table.from_pylist(rows) if rows else pa.table({"call_id": pa.array([], pa.string())})
        part = self.part(chunk)
        tmp = part.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        replace_atomically(tmp, part)


def flat_row(call: Call, scored: ScoredCall, model: str, schema: LabelSchema) -> dict:
    """One output row: the call's ids and time, per head its level, confidence, expected score and distribution (or
    the topics over threshold), the scorecard's total, red line and per-item points, the model tag and card hash."""
    row: dict = {"call_id": call.call_id, "agent_id": call.agent_id,
                 "started_at": call.started_at.isoformat() if call.started_at else None, "model": model,
                 "n_tokens": scored.n_tokens, "truncated": scored.truncated}
    for name, score in scored.scores.items():
        head = schema[name]
        row.update({f"{name}.{column}": value for column, value in head.spec.columns(head, score).items()})
    card = scored.scorecard
    row["scorecard.name"] = card.name if card else None
    row["scorecard.hash"] = card.hash if card else None
    row["scorecard.total"] = card.total if card else None
    row["scorecard.red_line"] = card.red_line if card else None
    if card:
        row.update({f"item.{i.id}": i.points for i in card.items().values()})
    return row


def read_scores(out: Path):
    """The output dataset as one pyarrow Table (every finished part; not the rejects, not a killed job's .tmp)."""
    import pyarrow.dataset as ds

    return ds.dataset([str(p) for p in sorted(Path(out).glob("part-*.parquet"))], format="parquet").to_table()
