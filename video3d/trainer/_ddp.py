"""Multi-process training (``torchrun``, DDP) on top of the Trial protocol.

Only rank 0 talks to the planner. When the planner hands rank 0 a transition, rank 0 broadcasts
the job (the target state's parameters) to the other ranks, which run the same epochs in
lockstep. Rank 0 reports to the real trial and broadcasts the next epoch (or the stop) after
every report, so every rank stops at the same epoch. Only rank 0 gets a ``save`` function, so
only rank 0 writes checkpoints. Weights reach the other ranks through DDP's initial broadcast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DistContext", "FollowerTrial", "LeaderTrial", "dist_context", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Rank, world size and device of this process (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_sum(self, values: Any) -> Any:
        """Element-wise sum of a tensor over ranks (in place, returned)."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values


def dist_context() -> DistContext:
    """The context described by torchrun's environment (``RANK``, ``WORLD_SIZE``...)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistContext(rank=rank, world_size=world, local_rank=local)


def init_distributed(backend: str | None = None) -> DistContext:
    """Join the process group torchrun describes (no-op for a single process).

    Uses NCCL when CUDA is available and gloo otherwise, unless ``backend`` says.
    """
    ctx = dist_context()
    if not ctx.enabled:
        return ctx
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if chosen == "nccl":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(chosen, rank=ctx.rank, world_size=ctx.world_size)
    return ctx


def close_distributed() -> None:
    """Leave the process group cleanly (no-op when none was joined).

    Without this, gloo's threads can still be running at interpreter exit and the process
    aborts ("terminate called without an active exception") after its work is done.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


_STOP = -1


class LeaderTrial:
    """Rank 0's view of a real :class:`stageplan.Trial`: broadcasts every epoch decision."""

    def __init__(self, trial: Any, ctx: DistContext) -> None:
        self._trial = trial
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def epochs(self) -> Iterator[int]:
        for epoch in self._trial.epochs():
            self._ctx.broadcast(epoch)
            yield epoch
        self._ctx.broadcast(_STOP)

    def report(self, value: float, *, save: Callable[[str], Any] | None = None) -> Any:
        return self._trial.report(value, save=save)


class FollowerTrial:
    """Another rank's stand-in for the trial: epochs come from rank 0, reports go nowhere."""

    def __init__(self, params: dict[str, Any], ctx: DistContext) -> None:
        self.params = dict(params)
        self._ctx = ctx
        self.init_checkpoint: str | None = None  # weights arrive by DDP's broadcast
        self.resumed = False
        self.stop_epochs: list[int] = []

    def epochs(self) -> Iterator[int]:
        while True:
            epoch = self._ctx.broadcast(None)
            if epoch == _STOP:
                return
            self.stop_epochs.append(int(epoch))
            yield int(epoch)

    def report(self, value: float, *, save: Callable[[str], Any] | None = None) -> None:
        if save is not None:
            raise RuntimeError("a follower rank must not write checkpoints")
