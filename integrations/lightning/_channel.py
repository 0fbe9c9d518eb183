"""Rank 0 -> every rank: small Python objects over torch.distributed (a no-op on one process)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["RankChannel"]


class RankChannel:
    """Broadcasts what rank 0 shares to every rank of the default process group.

    Without a process group (or with one process) :meth:`share` returns its argument, so the
    same code runs on one process and under DDP.
    """

    def __init__(self) -> None:
        import torch.distributed as dist

        self.active = bool(dist.is_available() and dist.is_initialized())
        self.active = self.active and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world_size = dist.get_world_size() if self.active else 1

    @classmethod
    def connect(cls, backend: str | None = None) -> RankChannel:
        """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), if not joined yet.

        Args:
            backend: ``"gloo"`` or ``"nccl"``; default: ``"nccl"`` when CUDA is available,
                else ``"gloo"``.
        """
        import torch
        import torch.distributed as dist

        world = os.environ.get("WORLD_SIZE", "1")
        try:
            world_size = int(world)
        except ValueError:
            raise ValueError(f"WORLD_SIZE must be an integer, got {world!r}") from None
        if world_size > 1 and dist.is_available() and not dist.is_initialized():
            missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
            if missing:
                raise RuntimeError(
                    f"WORLD_SIZE={world_size} but {', '.join(missing)} unset: launch every rank "
                    "with torchrun (e.g. torchrun --nproc_per_node 2 train.py)"
                )
            chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
            if chosen == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(chosen)
        return cls()

    def share(self, obj: Any = None) -> Any:
        """Rank 0: send ``obj`` to every rank and return it. Other ranks: return what it sent."""
        if not self.active:
            return obj
        import torch
        import torch.distributed as dist

        device = None
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=device)
        return box[0]
