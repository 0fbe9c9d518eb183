"""3D ConvNets for the reference workload: DG-P3D and its baselines.

Networks (all built by :class:`VideoResNet` from a :class:`VideoResNetConfig`), each as
``<family>_resnet{10,18,50,101}`` keyword-only factories and in the registry
(:func:`build_model`, :func:`list_models`):

- ``dg_p3d``: P3D A/B/C units cycled over the global block index, global context in every
  block, the dual (temporal + spatial) head; ``g_p3d`` without the dual head; ``p3d`` without
  global context either; ``i3d`` (3×3×3 units); ``r2plus1d`` (parameter-preserving 2+1D);
  ``c2d`` (no temporal convs; the 2D reference).

Also :func:`inflate_resnet2d` (2D ImageNet weights → video), :func:`freeze_bn_stats` /
:func:`unfreeze_bn_stats`, :func:`summarize` (parameters and MACs on the meta device) and
``python -m video3d.models summary NAME``. Needs torch only; no torchvision, no I/O except
:func:`load_resnet2d_state_dict`.

Example:
    >>> import torch
    >>> from video3d.models import build_model
    >>> net = build_model("dg_p3d_resnet10", num_classes=5, width=0.125, stem_temporal_stride=2)
    >>> out = net(torch.randn(2, 3, 8, 32, 32))  # training mode: DualLogits
    >>> loss = net.loss(out, torch.tensor([0, 4])); loss.backward()
    >>> net.eval()(torch.randn(2, 3, 8, 32, 32)).shape  # eval: mean of the two heads
    torch.Size([2, 5])
"""

from __future__ import annotations

from video3d.models import _factory
from video3d.models._blocks import BasicBlock3d, Bottleneck3d, GlobalContext
from video3d.models._config import (
    DEPTH_LAYERS,
    VideoResNetConfig,
    frames_multiple,
    p3d_unit_kind,
    r2plus1d_mid_width,
    unit_kinds,
)
from video3d.models._factory import (
    c2d_resnet10,
    c2d_resnet18,
    c2d_resnet50,
    c2d_resnet101,
    dg_p3d_resnet10,
    dg_p3d_resnet18,
    dg_p3d_resnet50,
    dg_p3d_resnet101,
    g_p3d_resnet10,
    g_p3d_resnet18,
    g_p3d_resnet50,
    g_p3d_resnet101,
    i3d_resnet10,
    i3d_resnet18,
    i3d_resnet50,
    i3d_resnet101,
    p3d_resnet10,
    p3d_resnet18,
    p3d_resnet50,
    p3d_resnet101,
    r2plus1d_resnet10,
    r2plus1d_resnet18,
    r2plus1d_resnet50,
    r2plus1d_resnet101,
)
from video3d.models._frozen_bn import bn_stats_frozen, freeze_bn_stats, unfreeze_bn_stats
from video3d.models._inflate import inflate_resnet2d, load_resnet2d_state_dict, stem_tap
from video3d.models._net import DualFeatures, DualLogits, VideoResNet, dual_head_loss
from video3d.models._registry import build_model, get_model_fn, list_models, register_model
from video3d.models._summary import ModelSummary, ModuleCost, count_params, summarize

del _factory

__all__ = [
    "DEPTH_LAYERS",
    "BasicBlock3d",
    "Bottleneck3d",
    "DualFeatures",
    "DualLogits",
    "GlobalContext",
    "ModelSummary",
    "ModuleCost",
    "VideoResNet",
    "VideoResNetConfig",
    "bn_stats_frozen",
    "build_model",
    "c2d_resnet10",
    "c2d_resnet18",
    "c2d_resnet50",
    "c2d_resnet101",
    "count_params",
    "dg_p3d_resnet10",
    "dg_p3d_resnet18",
    "dg_p3d_resnet50",
    "dg_p3d_resnet101",
    "dual_head_loss",
    "frames_multiple",
    "freeze_bn_stats",
    "g_p3d_resnet10",
    "g_p3d_resnet18",
    "g_p3d_resnet50",
    "g_p3d_resnet101",
    "get_model_fn",
    "i3d_resnet10",
    "i3d_resnet18",
    "i3d_resnet50",
    "i3d_resnet101",
    "inflate_resnet2d",
    "list_models",
    "load_resnet2d_state_dict",
    "p3d_resnet10",
    "p3d_resnet18",
    "p3d_resnet50",
    "p3d_resnet101",
    "p3d_unit_kind",
    "r2plus1d_mid_width",
    "r2plus1d_resnet10",
    "r2plus1d_resnet18",
    "r2plus1d_resnet50",
    "r2plus1d_resnet101",
    "register_model",
    "stem_tap",
    "summarize",
    "unfreeze_bn_stats",
    "unit_kinds",
]
