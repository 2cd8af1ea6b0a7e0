"""A run's checkpoint while it is unfinished: a killed `callqa train`, run again with the same config and --out,
resumes from its last save (model, optimizer, scheduler, the loop's state and the best weights so far)."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import TrainConfig
from .run import RunDir


def new_state() -> dict:
    """The training loop's state at step 0 (what a checkpoint saves besides the tensors)."""
    return {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_step": None, "bad_evals": 0, "history": []}


class Checkpoint:
    """``RUN/checkpoint/state.pt`` while a run is unfinished: model, optimizer, scheduler, loop state, best weights."""

    def __init__(self, run_dir: Path, config: TrainConfig):
        self.dir, self.path = RunDir(run_dir).checkpoint, RunDir(run_dir).checkpoint_state
        self.config = config.model_dump(mode="json", by_alias=True)

    def load(self, model, optimizer, scheduler) -> tuple[dict, dict | None] | None:
        """(loop state, best weights) of an unfinished run, restored into model/optimizer/scheduler; None if none."""
        if not self.path.exists():
            return None
        saved = torch.load(self.path, map_location="cpu", weights_only=False)
        if saved["config"] != self.config:
            raise ValueError(f"{self.dir} was written by a different config; use a new --out or delete the checkpoint")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        return saved["state"], saved.get("best_weights")

    def save(self, model, optimizer, scheduler, state: dict, best_weights: dict | None) -> None:
        self.dir.mkdir(exist_ok=True)
        tmp = self.dir / "state.pt.tmp"
        torch.save({"config": self.config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": state, "best_weights": best_weights}, tmp)
        tmp.replace(self.path)  # atomic: a kill mid-save leaves the previous checkpoint intact

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()
            self.dir.rmdir()
