"""The generic video ResNet (DG-P3D, G-P3D, P3D, I3D, R(2+1)D, C2D) and its outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from video3d.models._blocks import BasicBlock3d, Bottleneck3d
from video3d.models._config import (
    BASE_WIDTHS,
    SPATIAL_HEAD_TIME_POOL,
    UnitKind,
    VideoResNetConfig,
    scaled_width,
)
from video3d.models._frozen_bn import bn_stats_frozen, freeze_bn_stats, unfreeze_bn_stats

__all__ = ["DualFeatures", "DualLogits", "VideoResNet", "dual_head_loss"]

#: ``maker(kind, in_channels, planes, stride, global_context=...) -> block``
BlockMaker = Callable[..., nn.Module]
_MAKERS: dict[str, type[BasicBlock3d] | type[Bottleneck3d]] = {
    "basic": BasicBlock3d,
    "bottleneck": Bottleneck3d,
}


class DualLogits(NamedTuple):
    """Logits of DG-P3D's two heads (returned by ``forward`` in training mode)."""

    temporal: torch.Tensor
    spatial: torch.Tensor

    def mean(self) -> torch.Tensor:
        """The prediction: the mean of the two heads' logits."""
        return (self.temporal + self.spatial) / 2


class DualFeatures(NamedTuple):
    """Final feature maps of DG-P3D's two heads, (N, C, T, H, W) each."""

    temporal: torch.Tensor
    spatial: torch.Tensor


def dual_head_loss(
    output: DualLogits | torch.Tensor, target: torch.Tensor, **ce_kwargs: Any
) -> torch.Tensor:
    """Training loss of any model here: CE(temporal) + CE(spatial), or CE for one head.

    Args:
        output: what the model's ``forward`` returned (:class:`DualLogits` or a tensor).
        target: class indices (N,) or class probabilities (N, K).
        **ce_kwargs: passed to :func:`torch.nn.functional.cross_entropy` (e.g.
            ``label_smoothing``).

    Example:
        >>> import torch
        >>> out = DualLogits(torch.zeros(2, 3), torch.zeros(2, 3))
        >>> round(float(dual_head_loss(out, torch.tensor([0, 1]))), 4)
        2.1972
    """
    if isinstance(output, DualLogits):
        return F.cross_entropy(output.temporal, target, **ce_kwargs) + F.cross_entropy(
            output.spatial, target, **ce_kwargs
        )
    if isinstance(output, torch.Tensor):
        return F.cross_entropy(output, target, **ce_kwargs)
    raise TypeError(
        f"output must be a DualLogits or a Tensor of logits, got {type(output).__name__}."
    )


class VideoResNet(nn.Module):
    """A ResNet inflated to video, built from per-block makers (see :class:`VideoResNetConfig`).

    Input: (N, C, T, H, W) with ``T`` a positive multiple of :attr:`frames_multiple`.
    ``forward`` returns :class:`DualLogits` in training mode and their mean in eval mode for a
    dual-head model; single-head models always return a logits tensor. Use :meth:`loss` (or
    :func:`dual_head_loss`) for the training loss of either.

    Example:
        >>> import torch
        >>> from video3d.models import VideoResNetConfig
        >>> net = VideoResNet(VideoResNetConfig(depth=10, width=0.125, num_classes=5,
        ...                                     stem_temporal_stride=2)).eval()
        >>> net(torch.randn(1, 3, 8, 32, 32)).shape
        torch.Size([1, 5])
    """

    def __init__(self, config: VideoResNetConfig) -> None:
        super().__init__()
        self.config = config
        maker = _MAKERS[config.block_family]
        widths = [scaled_width(w, config.width) for w in BASE_WIDTHS]
        st = config.stem_temporal_stride
        self.conv1 = nn.Conv3d(
            config.in_channels, widths[0], (st, 7, 7), (st, 2, 2), (0, 3, 3), bias=False
        )
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        kinds = config.unit_kinds
        in_ch = widths[0]
        stages: list[nn.Sequential] = []
        for i, (planes, stage_kinds) in enumerate(zip(widths, kinds)):
            stage = self._make_stage(maker, stage_kinds, in_ch, planes, 1 if i == 0 else 2)
            stages.append(stage)
            in_ch = planes * config.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_ch
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(in_ch, config.num_classes)
        self.spatial_pool: nn.MaxPool3d | None = None
        self.spatial_layer4: nn.Sequential | None = None
        self.spatial_fc: nn.Linear | None = None
        if config.dual_head:
            k = SPATIAL_HEAD_TIME_POOL
            self.spatial_pool = nn.MaxPool3d((k, 1, 1), (k, 1, 1))
            layer3_out = widths[2] * config.expansion
            self.spatial_layer4 = self._make_stage(maker, kinds[3], layer3_out, widths[3], 1)
            self.spatial_fc = nn.Linear(in_ch, config.num_classes)
        self._init_weights()

    def _make_stage(
        self, maker: BlockMaker, kinds: Sequence[UnitKind], in_ch: int, planes: int, stride: int
    ) -> nn.Sequential:
        gc = self.config.global_context
        blocks = [maker(kinds[0], in_ch, planes, stride, global_context=gc)]
        out_ch = planes * self.config.expansion
        blocks += [maker(k, out_ch, planes, 1, global_context=gc) for k in kinds[1:]]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks():
            if self.config.zero_init_residual:
                nn.init.zeros_(block.last_bn.weight)
            if block.gc is not None:  # re-assert: the branch starts as the identity function
                nn.init.zeros_(block.gc.expand.weight)
                nn.init.zeros_(block.gc.expand.bias)

    # ----------------------------------------------------------------- introspection
    def blocks(self) -> Iterable[BasicBlock3d | Bottleneck3d]:
        """Every residual block, stages in order, then the spatial head's layer4."""
        for stage in self.stages():
            yield from stage  # type: ignore[misc]

    def stages(self) -> list[nn.Sequential]:
        """``layer1``..``layer4`` and, for a dual-head model, ``spatial_layer4``."""
        out = [self.layer1, self.layer2, self.layer3, self.layer4]
        if self.spatial_layer4 is not None:
            out.append(self.spatial_layer4)
        return out

    @property
    def frames_multiple(self) -> int:
        """Clip lengths this network accepts are the positive multiples of this number."""
        return self.config.frames_multiple

    @property
    def dual_head(self) -> bool:
        return self.config.dual_head

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Raise ``ValueError`` unless ``shape`` is a valid (N, C, T, H, W) input shape."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 5:
            raise ValueError(
                f"input must have rank 5 (N, C, T, H, W), got rank {len(shape)} shape {shape}."
            )
        n, c, t, h, w = shape
        if c != self.config.in_channels:
            raise ValueError(
                f"input must have {self.config.in_channels} channels at dim 1 (N, C, T, H, W), "
                f"got shape {shape}."
            )
        self.check_clip_length(t)
        if min(n, h, w) < 1:
            raise ValueError(f"input has an empty dimension: shape {shape}.")

    def check_clip_length(self, frames: int) -> None:
        """Raise ``ValueError`` unless ``frames`` is a positive multiple of frames_multiple."""
        m = self.frames_multiple
        if frames < 1 or frames % m:
            why = (
                f"stem temporal stride {self.config.stem_temporal_stride} x spatial-head time "
                f"pool {SPATIAL_HEAD_TIME_POOL}"
                if self.config.dual_head
                else f"stem temporal stride {self.config.stem_temporal_stride}"
            )
            raise ValueError(
                f"clip length must be a positive multiple of {m} ({why}), got {frames} frames."
            )

    # ----------------------------------------------------------------- forward passes
    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and layer1..layer3 (the part both heads share); checks the input first."""
        self.check_input_shape(x.shape)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor | DualFeatures:
        """Final feature maps: layer4's output, or both heads' for a dual-head model."""
        shared = self.forward_trunk(x)
        temporal = self.layer4(shared)
        if self.spatial_layer4 is None or self.spatial_pool is None:
            return temporal
        return DualFeatures(temporal, self.spatial_layer4(self.spatial_pool(shared)))

    def _classify(self, feat: torch.Tensor, fc: nn.Linear, pre_logits: bool) -> torch.Tensor:
        pooled = self.dropout(torch.flatten(self.avgpool(feat), 1))
        return pooled if pre_logits else fc(pooled)

    def forward_logits(
        self, features: torch.Tensor | DualFeatures, *, pre_logits: bool = False
    ) -> torch.Tensor | DualLogits:
        """Pool, dropout and classify every head, whatever the mode (no averaging)."""
        if isinstance(features, DualFeatures):
            assert self.spatial_fc is not None
            return DualLogits(
                self._classify(features.temporal, self.fc, pre_logits),
                self._classify(features.spatial, self.spatial_fc, pre_logits),
            )
        return self._classify(features, self.fc, pre_logits)

    def forward_head(
        self, features: torch.Tensor | DualFeatures, *, pre_logits: bool = False
    ) -> torch.Tensor | DualLogits:
        """timm-style head: :class:`DualLogits` in training, the heads' mean in eval.

        With ``pre_logits=True`` it returns the pooled vectors (both heads', unaveraged).
        """
        out = self.forward_logits(features, pre_logits=pre_logits)
        if isinstance(out, DualLogits) and not self.training and not pre_logits:
            return out.mean()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor | DualLogits:
        return self.forward_head(self.forward_features(x))

    def loss(
        self, output: DualLogits | torch.Tensor, target: torch.Tensor, **ce_kwargs: Any
    ) -> torch.Tensor:
        """CE(temporal) + CE(spatial) for dual-head output, CE otherwise."""
        return dual_head_loss(output, target, **ce_kwargs)

    # ----------------------------------------------------------------- frozen BN
    def freeze_bn_stats(self) -> list[str]:
        """Freeze the running statistics of every BN but the stem's ``bn1``."""
        return freeze_bn_stats(self, exclude=("bn1",))

    def unfreeze_bn_stats(self) -> list[str]:
        """Undo :meth:`freeze_bn_stats`."""
        return unfreeze_bn_stats(self)

    @property
    def bn_stats_frozen(self) -> bool:
        """Whether any BN's statistics are frozen."""
        return bn_stats_frozen(self)
