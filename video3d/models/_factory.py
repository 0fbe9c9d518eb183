"""Keyword-only factory functions, one per registered model (``build_model`` by name)."""

from __future__ import annotations

from video3d.models._config import Unit, VideoResNetConfig
from video3d.models._net import VideoResNet
from video3d.models._registry import register_model


def _make(
    depth: int, unit: Unit, *, global_context: bool, dual_head: bool, num_classes: int,
    dropout: float, width: float, in_channels: int, stem_temporal_stride: int,
    zero_init_residual: bool,
) -> VideoResNet:
    return VideoResNet(
        VideoResNetConfig(
            depth=depth, unit=unit, global_context=global_context, dual_head=dual_head,
            num_classes=num_classes, dropout=dropout, width=width, in_channels=in_channels,
            stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
        )
    )


@register_model
def dg_p3d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """DG-P3D on ResNet-10. P3D A/B/C units, global context and the dual head."""
    return _make(
        10, "p3d", global_context=True, dual_head=True, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def dg_p3d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """DG-P3D on ResNet-18. P3D A/B/C units, global context and the dual head."""
    return _make(
        18, "p3d", global_context=True, dual_head=True, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def dg_p3d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """DG-P3D on ResNet-50. P3D A/B/C units, global context and the dual head."""
    return _make(
        50, "p3d", global_context=True, dual_head=True, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def dg_p3d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """DG-P3D on ResNet-101. P3D A/B/C units, global context and the dual head."""
    return _make(
        101, "p3d", global_context=True, dual_head=True, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def g_p3d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """G-P3D on ResNet-10. DG-P3D without the dual head."""
    return _make(
        10, "p3d", global_context=True, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def g_p3d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """G-P3D on ResNet-18. DG-P3D without the dual head."""
    return _make(
        18, "p3d", global_context=True, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def g_p3d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """G-P3D on ResNet-50. DG-P3D without the dual head."""
    return _make(
        50, "p3d", global_context=True, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def g_p3d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """G-P3D on ResNet-101. DG-P3D without the dual head."""
    return _make(
        101, "p3d", global_context=True, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def p3d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """P3D on ResNet-10. P3D A/B/C units, no global context, one head."""
    return _make(
        10, "p3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def p3d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """P3D on ResNet-18. P3D A/B/C units, no global context, one head."""
    return _make(
        18, "p3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def p3d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """P3D on ResNet-50. P3D A/B/C units, no global context, one head."""
    return _make(
        50, "p3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def p3d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """P3D on ResNet-101. P3D A/B/C units, no global context, one head."""
    return _make(
        101, "p3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def i3d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """I3D on ResNet-10. 3×3×3 convs in every block, one head."""
    return _make(
        10, "i3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def i3d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """I3D on ResNet-18. 3×3×3 convs in every block, one head."""
    return _make(
        18, "i3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def i3d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """I3D on ResNet-50. 3×3×3 convs in every block, one head."""
    return _make(
        50, "i3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def i3d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """I3D on ResNet-101. 3×3×3 convs in every block, one head."""
    return _make(
        101, "i3d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def r2plus1d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """R(2+1)D on ResNet-10. 1×3×3 → 3×1×1 with the parameter-preserving mid width, one head."""
    return _make(
        10, "r2plus1d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def r2plus1d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """R(2+1)D on ResNet-18. 1×3×3 → 3×1×1 with the parameter-preserving mid width, one head."""
    return _make(
        18, "r2plus1d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def r2plus1d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """R(2+1)D on ResNet-50. 1×3×3 → 3×1×1 with the parameter-preserving mid width, one head."""
    return _make(
        50, "r2plus1d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def r2plus1d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """R(2+1)D on ResNet-101. 1×3×3 → 3×1×1 with the parameter-preserving mid width, one head."""
    return _make(
        101, "r2plus1d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def c2d_resnet10(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """C2D on ResNet-10. 1×3×3 convs only (a 2D ResNet run per frame after the stem), one head."""
    return _make(
        10, "c2d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def c2d_resnet18(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """C2D on ResNet-18. 1×3×3 convs only (a 2D ResNet run per frame after the stem), one head."""
    return _make(
        18, "c2d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def c2d_resnet50(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """C2D on ResNet-50. 1×3×3 convs only (a 2D ResNet run per frame after the stem), one head."""
    return _make(
        50, "c2d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )


@register_model
def c2d_resnet101(
    *, num_classes: int = 400, dropout: float = 0.5, width: float = 1.0, in_channels: int = 3,
    stem_temporal_stride: int = 4, zero_init_residual: bool = False,
) -> VideoResNet:
    """C2D on ResNet-101. 1×3×3 convs only (a 2D ResNet run per frame after the stem), one head."""
    return _make(
        101, "c2d", global_context=False, dual_head=False, num_classes=num_classes,
        dropout=dropout, width=width, in_channels=in_channels,
        stem_temporal_stride=stem_temporal_stride, zero_init_residual=zero_init_residual,
    )
