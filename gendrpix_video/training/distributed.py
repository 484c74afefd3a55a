"""Data-parallel training over the GPUs of one host: `torchrun --nproc_per_node N -m ...train`.

One process per GPU. Each rank fills its own (HR, LR, teacher) bank from its own seed, so the
teacher's cost is spread too; gradients are averaged by one all-reduce of a flat buffer per step,
so every rank takes the same optimizer step and the weights stay identical without broadcasting.
Rank 0 alone evaluates, checkpoints and writes files. Without torchrun's environment (WORLD_SIZE
unset) every function here is a no-op, and single-GPU runs behave as before.

A plain all-reduce rather than DistributedDataParallel: the discriminator of Stage II runs twice
before one backward, and a compiled student is fine with it; at 17M parameters the reduce is a
fraction of a millisecond over NVLink.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str) -> Group:
    """Join the process group torchrun describes; pick this rank's GPU (cuda:LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world <= 1:
        return Group(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None)
    return Group(rank=rank, world=world, device=dev)


def average_gradients(params, group: Group) -> None:
    """Mean of every rank's gradients, in place (one flat all-reduce)."""
    if not group.active:
        return
    ps = [p for p in params if p.requires_grad]
    for p in ps:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in ps])
    dist.all_reduce(flat)
    flat /= group.world
    offset = 0
    for p in ps:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def any_rank(flag: bool, group: Group) -> bool:
    """True on every rank when it is true on one (a shared stop decision; syncs the CPU)."""
    if not group.active:
        return flag
    t = torch.tensor([int(flag)], device=group.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def from_main(value: float, group: Group) -> float:
    """Rank 0's value on every rank."""
    if not group.active:
        return value
    t = torch.tensor([float(value)], device=group.device, dtype=torch.float64)
    dist.broadcast(t, 0)
    return float(t.item())


def same_weights(module: torch.nn.Module, group: Group) -> None:
    """Copy rank 0's parameters and buffers to every rank (a common start whatever each built)."""
    if not group.active:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def barrier(group: Group) -> None:
    if group.active:
        dist.barrier()


def close(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()
