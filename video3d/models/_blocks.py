"""Residual blocks of the video ResNets: P3D A/B/C, I3D, R(2+1)D and C2D units.

Key names follow torchvision's 2D ResNet (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``conv3``,
``bn3``, ``downsample.0/1``) so that 2D weight inflation is a plain mapping. Parameters that a 2D
network does not have live under new names: ``conv_t`` (temporal conv), ``bn_mid`` (the BN
inside an R(2+1)D unit) and ``gc.reduce`` / ``gc.expand`` (global context).
"""

from __future__ import annotations

import torch
from torch import nn

from video3d.models._config import UnitKind, r2plus1d_mid_width

__all__ = ["BasicBlock3d", "Bottleneck3d", "GlobalContext", "make_unit", "run_unit"]


def conv_s(c_in: int, c_out: int, stride: int = 1) -> nn.Conv3d:
    """Spatial 1×3×3 conv with the spatial stride."""
    return nn.Conv3d(c_in, c_out, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def conv_t(c_in: int, c_out: int, stride: int = 1) -> nn.Conv3d:
    """Temporal 3×1×1 conv (``stride`` is spatial, used by the parallel P3D-B unit)."""
    return nn.Conv3d(c_in, c_out, (3, 1, 1), (1, stride, stride), (1, 0, 0), bias=False)


def conv_1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv3d:
    """Pointwise 1×1×1 conv with a spatial stride."""
    return nn.Conv3d(c_in, c_out, 1, (1, stride, stride), 0, bias=False)


class GlobalContext(nn.Module):
    """Global context branch: mean over T·H·W → Linear C→C/r → ReLU → Linear C/r→C.

    Returns a (N, C, 1, 1, 1) tensor that the block broadcast-adds to its output. ``expand``
    (weight and bias) starts at zero, so a fresh branch adds nothing.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.reduce = nn.Linear(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.expand = nn.Linear(hidden, channels)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3, 4))
        return self.expand(self.relu(self.reduce(pooled)))[:, :, None, None, None]


UnitModules = tuple[nn.Conv3d, nn.Conv3d | None, nn.BatchNorm3d, nn.BatchNorm3d | None]


def make_unit(kind: UnitKind, c_in: int, c_out: int, stride: int) -> UnitModules:
    """Build the spatio-temporal unit ``(conv, conv_t, bn, bn_mid)`` of one block.

    ``conv`` is the conv that inherits the 2D 3×3 weights; ``bn`` is the single BN after it.
    """
    if kind in ("A", "C"):
        return conv_s(c_in, c_out, stride), conv_t(c_out, c_out), nn.BatchNorm3d(c_out), None
    if kind == "B":
        return (conv_s(c_in, c_out, stride), conv_t(c_in, c_out, stride),
                nn.BatchNorm3d(c_out), None)
    if kind == "i3d":
        conv = nn.Conv3d(c_in, c_out, 3, (1, stride, stride), 1, bias=False)
        return conv, None, nn.BatchNorm3d(c_out), None
    if kind == "r2plus1d":
        mid = r2plus1d_mid_width(3, 3, c_in, c_out)
        return conv_s(c_in, mid, stride), conv_t(mid, c_out), nn.BatchNorm3d(c_out), (
            nn.BatchNorm3d(mid)
        )
    if kind == "c2d":
        return conv_s(c_in, c_out, stride), None, nn.BatchNorm3d(c_out), None
    raise ValueError(f"unknown unit kind {kind!r}; expected A, B, C, i3d, r2plus1d or c2d.")


def run_unit(
    kind: UnitKind,
    x: torch.Tensor,
    conv: nn.Conv3d,
    temporal: nn.Conv3d | None,
    bn: nn.BatchNorm3d,
    bn_mid: nn.BatchNorm3d | None,
) -> torch.Tensor:
    """Apply a unit built by :func:`make_unit`; the result has passed its final ReLU."""
    relu = torch.relu
    if kind == "A":  # cascade: BN(T(S(x)))
        assert temporal is not None
        return relu(bn(temporal(conv(x))))
    if kind == "B":  # parallel: BN(S(x) + T(x))
        assert temporal is not None
        return relu(bn(conv(x) + temporal(x)))
    if kind == "C":  # residual T: s + T(s), no BN on T
        assert temporal is not None
        s = relu(bn(conv(x)))
        return relu(s + temporal(s))
    if kind == "r2plus1d":
        assert temporal is not None and bn_mid is not None
        return relu(bn(temporal(relu(bn_mid(conv(x))))))
    return relu(bn(conv(x)))  # i3d, c2d


class _ResidualBlock(nn.Module):
    """Shared tail: optional global context, identity/downsample, final ReLU."""

    gc: GlobalContext | None
    downsample: nn.Sequential | None

    def _finish(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.gc is not None:
            out = out + self.gc(out)
        return torch.relu(out + identity)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(conv_1x1(c_in, c_out, stride), nn.BatchNorm3d(c_out))


class Bottleneck3d(_ResidualBlock):
    """1×1×1 → spatio-temporal unit (``conv2``/``conv_t``, one ``bn2``) → 1×1×1, expansion 4.

    Args:
        kind: unit kind (``"A"``, ``"B"``, ``"C"``, ``"i3d"``, ``"r2plus1d"``, ``"c2d"``).
        in_channels: block input channels.
        planes: width of the unit; the block outputs ``4 * planes`` channels.
        stride: spatial stride (on the unit's spatial conv and the downsample).
        global_context: add the global-context branch.
    """

    expansion = 4

    def __init__(
        self, kind: UnitKind, in_channels: int, planes: int, stride: int = 1, *,
        global_context: bool = False,
    ) -> None:
        super().__init__()
        self.kind: UnitKind = kind
        out_channels = planes * self.expansion
        self.conv1 = conv_1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2, self.conv_t, self.bn2, self.bn_mid = make_unit(kind, planes, planes, stride)
        self.conv3 = conv_1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride)
        self.gc = GlobalContext(out_channels) if global_context else None

    @property
    def last_bn(self) -> nn.BatchNorm3d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = run_unit(self.kind, out, self.conv2, self.conv_t, self.bn2, self.bn_mid)
        out = self.bn3(self.conv3(out))
        return self._finish(out, x)


class BasicBlock3d(_ResidualBlock):
    """Spatio-temporal unit (``conv1``/``conv_t``, one ``bn1``) → 1×3×3 ``conv2`` → ``bn2``.

    The basic-block analogue for ResNet-10/18/34: the first 3×3 conv becomes the unit.
    """

    expansion = 1

    def __init__(
        self, kind: UnitKind, in_channels: int, planes: int, stride: int = 1, *,
        global_context: bool = False,
    ) -> None:
        super().__init__()
        self.kind: UnitKind = kind
        self.conv1, self.conv_t, self.bn1, self.bn_mid = make_unit(
            kind, in_channels, planes, stride
        )
        self.conv2 = conv_s(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = _downsample(in_channels, planes, stride)
        self.gc = GlobalContext(planes) if global_context else None

    @property
    def last_bn(self) -> nn.BatchNorm3d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = run_unit(self.kind, x, self.conv1, self.conv_t, self.bn1, self.bn_mid)
        out = self.bn2(self.conv2(out))
        return self._finish(out, x)
