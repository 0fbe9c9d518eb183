"""Configuration of a video ResNet and the pure index math behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

BlockFamily = Literal["basic", "bottleneck"]
Unit = Literal["p3d", "i3d", "r2plus1d", "c2d"]
UnitKind = Literal["A", "B", "C", "i3d", "r2plus1d", "c2d"]

#: Blocks per stage for each depth (torchvision's ResNet layouts, plus ResNet-10).
DEPTH_LAYERS: dict[int, tuple[BlockFamily, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

#: Temporal max-pool (kernel = stride) in front of the spatial head's layer4.
SPATIAL_HEAD_TIME_POOL = 4
#: Channels of the stem and of the four stages' ``planes`` at width 1.
BASE_WIDTHS = (64, 128, 256, 512)
_UNITS = ("p3d", "i3d", "r2plus1d", "c2d")
_P3D_CYCLE: tuple[UnitKind, UnitKind, UnitKind] = ("A", "B", "C")


def p3d_unit_kind(global_index: int) -> UnitKind:
    """P3D block type of the block at ``global_index`` (counted over all stages from 0).

    Example:
        >>> [p3d_unit_kind(i) for i in range(5)]
        ['A', 'B', 'C', 'A', 'B']
    """
    if global_index < 0:
        raise ValueError(f"global_index must be >= 0, got {global_index}.")
    return _P3D_CYCLE[global_index % 3]


def unit_kinds(unit: Unit, layers: tuple[int, ...]) -> tuple[tuple[UnitKind, ...], ...]:
    """Kind of the middle (spatio-temporal) unit of every block, stage by stage.

    Example:
        >>> unit_kinds("p3d", (3, 4, 6, 3))[3]
        ('B', 'C', 'A')
    """
    kinds: list[tuple[UnitKind, ...]] = []
    start = 0
    for n in layers:
        if unit == "p3d":
            kinds.append(tuple(p3d_unit_kind(start + i) for i in range(n)))
        else:
            kinds.append(tuple(unit for _ in range(n)))
        start += n
    return tuple(kinds)


def r2plus1d_mid_width(t: int, d: int, n_in: int, n_out: int) -> int:
    """Width M of the (2+1)D factorisation that keeps the parameter count of a t×d×d conv.

    M = floor(t·d²·Nin·Nout / (d²·Nin + t·Nout)) (Tran et al., CVPR 2018).

    Example:
        >>> r2plus1d_mid_width(3, 3, 64, 64)
        144
    """
    for name, value in (("t", t), ("d", d), ("n_in", n_in), ("n_out", n_out)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    return (t * d * d * n_in * n_out) // (d * d * n_in + t * n_out)


def scaled_width(base: int, width: float) -> int:
    """Channels of a layer of ``base`` channels at width multiplier ``width`` (at least 1)."""
    return max(1, int(round(base * width)))


@dataclass(frozen=True)
class VideoResNetConfig:
    """Everything that fixes a :class:`~video3d.models.VideoResNet`'s architecture.

    Args:
        depth: ResNet depth, one of :data:`DEPTH_LAYERS` (10, 18, 34 basic; 50, 101, 152
            bottleneck). Ignored for the layout when ``layers`` is given.
        unit: the spatio-temporal unit in each block: ``"p3d"`` (A/B/C cycled over the global
            block index), ``"i3d"`` (3×3×3), ``"r2plus1d"`` (1×3×3 → BN → ReLU → 3×1×1 with
            the parameter-preserving mid width) or ``"c2d"`` (1×3×3 only, no temporal conv).
        global_context: add the global-context branch to every residual block.
        dual_head: add the spatial head (DG-P3D).
        num_classes: classifier outputs.
        dropout: dropout probability before each classifier.
        width: channel multiplier on the stem and every stage.
        in_channels: input channels.
        stem_temporal_stride: temporal kernel and stride of the stem conv (the only temporal
            down-sampling); 4 in the paper.
        zero_init_residual: zero the last BN's scale in every block (torchvision's option).
        layers: blocks per stage, overriding the depth's layout (small test networks).
        block: ``"basic"`` or ``"bottleneck"`` when ``layers`` is given (default: the depth's).
    """

    depth: int = 50
    unit: Unit = "p3d"
    global_context: bool = True
    dual_head: bool = True
    num_classes: int = 400
    dropout: float = 0.5
    width: float = 1.0
    in_channels: int = 3
    stem_temporal_stride: int = 4
    zero_init_residual: bool = False
    layers: tuple[int, int, int, int] | None = None
    block: BlockFamily | None = None

    def __post_init__(self) -> None:
        if self.layers is None and self.depth not in DEPTH_LAYERS:
            raise ValueError(
                f"depth must be one of {sorted(DEPTH_LAYERS)} (or pass layers=), got {self.depth}."
            )
        if self.layers is not None and (
            len(self.layers) != 4 or any(int(n) < 1 for n in self.layers)
        ):
            raise ValueError(f"layers must be 4 positive block counts, got {self.layers!r}.")
        if self.block is not None and self.block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {self.block!r}.")
        if self.unit not in _UNITS:
            raise ValueError(f"unit must be one of {_UNITS}, got {self.unit!r}.")
        if isinstance(self.num_classes, bool) or int(self.num_classes) != self.num_classes or (
            self.num_classes < 1
        ):
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if not (math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width must be a positive finite multiplier, got {self.width!r}.")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels!r}.")
        if isinstance(self.stem_temporal_stride, bool) or self.stem_temporal_stride < 1:
            raise ValueError(
                f"stem_temporal_stride must be a positive integer, got "
                f"{self.stem_temporal_stride!r}."
            )

    @property
    def block_family(self) -> BlockFamily:
        """``"basic"`` or ``"bottleneck"``."""
        if self.block is not None:
            return self.block
        if self.layers is not None and self.depth not in DEPTH_LAYERS:
            return "bottleneck"
        return DEPTH_LAYERS[self.depth][0]

    @property
    def stage_layers(self) -> tuple[int, int, int, int]:
        """Blocks in each of the four stages."""
        if self.layers is not None:
            return tuple(int(n) for n in self.layers)  # type: ignore[return-value]
        return DEPTH_LAYERS[self.depth][1]

    @property
    def expansion(self) -> int:
        """Output channels of a block over its ``planes`` (4 for bottleneck, 1 for basic)."""
        return 4 if self.block_family == "bottleneck" else 1

    @property
    def frames_multiple(self) -> int:
        """Clip lengths the network accepts are the positive multiples of this number."""
        return frames_multiple(self.stem_temporal_stride, dual_head=self.dual_head)

    @property
    def unit_kinds(self) -> tuple[tuple[UnitKind, ...], ...]:
        """Unit kind of every block, per stage (the spatial head's layer4 repeats stage 4's)."""
        return unit_kinds(self.unit, self.stage_layers)


def frames_multiple(stem_temporal_stride: int, *, dual_head: bool) -> int:
    """Clip-length multiple a network needs.

    The stem's temporal kernel equals its stride and has no padding, so the clip length must be a
    multiple of the stride; the dual head max-pools the stem's output over time by
    :data:`SPATIAL_HEAD_TIME_POOL` (kernel = stride), which multiplies the requirement by 4.

    Example:
        >>> frames_multiple(4, dual_head=True), frames_multiple(2, dual_head=True)
        (16, 8)
    """
    return stem_temporal_stride * (SPATIAL_HEAD_TIME_POOL if dual_head else 1)
