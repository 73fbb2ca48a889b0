"""Distributed data-parallel training (torchrun): this process's rank and the few collectives the
loop needs; each is a no-op in a single process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class DistInfo:
    """This process's place in a distributed run (torchrun's environment variables)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def setup(self, device: str) -> torch.device:
        """This rank's device (``cuda`` becomes cuda:LOCAL_RANK); joins the process group."""
        if self.world > 1 and device.startswith("cuda") and ":" not in device:
            device = f"cuda:{self.local_rank}"
        dev = torch.device(device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        return dev

    def wrap(self, objective: nn.Module, device: torch.device) -> nn.Module:
        """What computes the training loss: the objective, or DDP around it (gradients averaged)."""
        if self.world == 1:
            return objective
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(objective, device_ids=ids)

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (so all ranks skip or stop together)."""
        ok = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if self.world > 1:
            ok = ok.cpu()
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if self.world == 1:
            return values
        packed = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(packed)
        return packed.tolist()

    def broadcast(self, value: float) -> float:
        """Rank 0's value."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, 0)
        return float(t)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()
