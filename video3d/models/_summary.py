"""Parameter and MAC counts on the meta device (no memory, no compute)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ModelSummary", "ModuleCost", "count_params", "summarize"]


@dataclass(frozen=True)
class ModuleCost:
    """Parameters and multiply-accumulates of one top-level child module."""

    name: str
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """Per-module and total parameters and MACs of one forward pass.

    MACs are FLOPs / 2 as counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions
    and matrix products; BN, ReLU, pooling and additions are not counted, as is usual for the
    GMAC figures quoted for ResNets).
    """

    name: str
    input_shape: tuple[int, ...]
    rows: tuple[ModuleCost, ...]
    params: int
    macs: int

    def format(self) -> str:
        """A plain-text table."""
        lines = [
            f"{self.name}  input {tuple(self.input_shape)}",
            f"{'module':<18}{'params':>16}{'MACs':>20}",
        ]
        for r in self.rows:
            lines.append(f"{r.name:<18}{r.params:>16,}{r.macs:>20,}")
        lines.append(f"{'total':<18}{self.params:>16,}{self.macs:>20,}")
        lines.append(f"= {self.params / 1e6:.2f} M params, {self.macs / 1e9:.2f} GMACs")
        return "\n".join(lines)


def count_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def summarize(
    build: Callable[[], nn.Module] | nn.Module,
    input_shape: tuple[int, ...],
    *,
    name: str | None = None,
) -> ModelSummary:
    """Count parameters and MACs of one eval-mode forward pass of ``input_shape``.

    Args:
        build: a zero-argument callable building the model (called under
            ``torch.device("meta")`` so nothing is allocated), or a model (ideally on meta).
        input_shape: e.g. ``(1, 3, 16, 224, 224)``.
        name: label for the table (default: the class name).

    Example:
        >>> from video3d.models import build_model, summarize
        >>> s = summarize(lambda: build_model("c2d_resnet50", num_classes=1000,
        ...               stem_temporal_stride=1), (1, 3, 1, 224, 224))
        >>> round(s.params / 1e6, 2), round(s.macs / 1e9, 2)
        (25.56, 4.09)
    """
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(build, nn.Module):
        model = build
    else:
        with torch.device("meta"):
            model = build()
    device = next(model.parameters()).device
    model.eval()
    x = torch.empty(input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    counts = counter.get_flop_counts()
    prefix = type(model).__name__ + "."
    rows = []
    for child, module in model.named_children():
        flops = sum(counts.get(prefix + child, {}).values())
        params = count_params(module)
        if flops or params:
            rows.append(ModuleCost(child, params, flops // 2))
    return ModelSummary(
        name=name or type(model).__name__,
        input_shape=tuple(input_shape),
        rows=tuple(rows),
        params=count_params(model),
        macs=counter.get_total_flops() // 2,
    )
