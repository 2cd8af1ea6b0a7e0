"""What the training commands print: Hugging Face's progress bars tamed, and metrics tables per head kind."""

from __future__ import annotations

from rich import box
from rich.table import Table

from callqa.console import console, err_console
from callqa.heads import KINDS


def library_bars() -> None:
    """Hugging Face's own progress bars: transformers' per-file bars (loading weights, writing shards) are noise;
    datasets' bars (rendering calls) help in a terminal but fill a log with carriage returns, so only there."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not err_console.is_terminal:
        datasets.disable_progress_bars()


def print_metrics(schema, by_system: dict[str, dict[str, dict]]) -> None:
    """One table per kind of head, so each fits a terminal; its columns are the kind's (callqa.heads). Lower is
    better for NMD, RSNOD, MAE and ECE; "-" marks a metric that is undefined (a kappa over one class)."""
    first = next(iter(by_system.values()))
    for kind in KINDS.values():
        keys = kind.table_metrics
        heads = [h.name for h in schema.heads if h.spec is kind and first.get(h.name, {}).get("n")]
        if not heads:
            continue
        # No vertical rules and no cell may shrink below its header: 9 columns fit 80 columns uncut.
        table = Table(title=f"{kind.name} heads", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ["head", "system", "n", *keys]:
            width = max([len(col), 6 * (col in keys)] + [len(h) for h in heads] * (col == "head"))
            table.add_column(col, justify="left" if col in ("head", "system") else "right", no_wrap=True,
                             min_width=width)
        for head in heads:
            for system, metrics in by_system.items():
                m = metrics[head]
                table.add_row(head, system, str(m.get("n", 0)),
                              *(f"{m[k]:.4f}" if m.get(k) is not None else "-" for k in keys))
        console.print(table)
