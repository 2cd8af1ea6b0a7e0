"""Training on several processes with PyTorch DDP: one process per GPU (NCCL) or several CPU processes (gloo).

Every rank builds the same length-bucketed global batches (same seed) and trains on its share of each: DDP averages
the gradients, so a step over N processes is the step one process takes on the whole batch. Validation is split into
contiguous blocks, one per rank, and gathered, so every rank computes the same metrics and stops at the same step.
Rank 0 alone logs and writes checkpoints and the run.

Two ways in: ``callqa train --nproc N`` starts the processes itself (one machine); ``torchrun`` (several machines, or
a scheduler that already launches one process per GPU) sets RANK/WORLD_SIZE/MASTER_ADDR and each process runs
``python -m callqa.cli train …``, which joins the group it finds in the environment.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def share(self, batch: list[int]) -> list[int]:
        """This rank's calls of a global batch (every world-th call, so similar lengths stay together)."""
        return batch[self.rank :: self.world]

    def block(self, n: int) -> range:
        """This rank's contiguous block of ``n`` items (validation: gathered back in order)."""
        size = -(-n // self.world)
        return range(min(self.rank * size, n), min((self.rank + 1) * size, n))

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (a list of one without a process group)."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def label_counts(self, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Per head, the labeled calls (or turns) of the whole global batch divided by the ranks: what each rank divides
        its loss sum by, so that DDP's mean of the ranks' gradients is the gradient of the whole batch's mean loss
        (dividing by a rank's own count would weight a rank with fewer labeled calls up). None with one process."""
        if not self.distributed:
            return None
        names = list(masks)
        counts = torch.stack([masks[n].sum() for n in names]).to(torch.float64)
        dist.all_reduce(counts)
        counts = (counts / self.world).to(next(iter(masks.values())).dtype)
        return dict(zip(names, counts))

    def mean(self, value: float) -> float:
        """The mean of a number over ranks (the running loss each rank logs)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world


def join_from_env(device: str | None = None) -> Ranks:
    """Join the process group that torchrun or ``--nproc`` describes in the environment (WORLD_SIZE > 1): NCCL when
    the processes train on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        # gloo reduces CPU tensors; NCCL needs one GPU per process. all_gather_object moves its bytes on the
        # backend's device, so the current CUDA device is set first.
        gpu = torch.cuda.is_available() and not (device or "").startswith("cpu")
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if gpu else "gloo")
        if not gpu and "OMP_NUM_THREADS" not in os.environ:
            # CPU processes share the cores; each taking all of them would oversubscribe the machine.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return Ranks(dist.get_rank(), dist.get_world_size())


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device() -> str | None:
    """This process's GPU under a launcher (LOCAL_RANK), else None for the default device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(nproc: int, fn, *args) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, each with the environment torchrun would set."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(nproc, free_port(), fn, args), nprocs=nproc, join=True)


def _worker(rank: int, world: int, port: int, fn, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    fn(*args)
