from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from video3d.models import (
    Bottleneck3d,
    DualFeatures,
    DualLogits,
    VideoResNet,
    VideoResNetConfig,
    build_model,
    dg_p3d_resnet10,
    dg_p3d_resnet50,
    dual_head_loss,
    get_model_fn,
    list_models,
)

FAMILIES = ["dg_p3d", "g_p3d", "p3d", "i3d", "r2plus1d", "c2d"]


def _small(name: str, **kw: object) -> VideoResNet:
    kw.setdefault("width", 0.125)
    kw.setdefault("num_classes", 5)
    return build_model(name, **kw)  # type: ignore[return-value]


@pytest.mark.parametrize("depth", [50, 101])
def test_dg_p3d_feature_shapes_on_meta(depth: int) -> None:
    with torch.device("meta"):
        net = build_model(f"dg_p3d_resnet{depth}")
        feats = net.forward_features(torch.empty(2, 3, 16, 224, 224))  # type: ignore[operator]
    assert isinstance(feats, DualFeatures)
    assert tuple(feats.temporal.shape) == (2, 2048, 4, 7, 7)
    assert tuple(feats.spatial.shape) == (2, 2048, 1, 14, 14)


def test_dg_p3d_block_kinds_and_spatial_head_copy_layer4_kinds() -> None:
    with torch.device("meta"):
        net = dg_p3d_resnet50()
    kinds = [[b.kind for b in stage] for stage in net.stages()]
    assert kinds == [
        ["A", "B", "C"], ["A", "B", "C", "A"], ["B", "C", "A", "B", "C", "A"],
        ["B", "C", "A"], ["B", "C", "A"],
    ]
    assert all(b.gc is not None for b in net.blocks())
    # spatial head's layer4 keeps the spatial resolution: no stride anywhere
    assert net.spatial_layer4 is not None
    assert net.spatial_layer4[0].conv2.stride == (1, 1, 1)
    assert net.layer4[0].conv2.stride == (1, 2, 2)
    assert net.conv1.kernel_size == (4, 7, 7) and net.conv1.stride == (4, 2, 2)
    assert net.conv1.padding == (0, 3, 3)
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv3d))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("depth", [10, 18, 50, 101])
def test_every_registered_model_builds_with_the_right_heads(family: str, depth: int) -> None:
    name = f"{family}_resnet{depth}"
    assert name in list_models()
    with torch.device("meta"):
        net = build_model(name, num_classes=7)
    assert isinstance(net, VideoResNet)
    assert (net.spatial_fc is not None) == (family == "dg_p3d")
    has_gc = family in ("dg_p3d", "g_p3d")
    assert all((b.gc is not None) == has_gc for b in net.blocks())
    assert net.frames_multiple == (16 if family == "dg_p3d" else 4)


def test_factories_are_keyword_only() -> None:
    for name in list_models():
        params = inspect.signature(get_model_fn(name)).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name
    with pytest.raises(TypeError):
        dg_p3d_resnet10(10)  # type: ignore[misc]


def test_build_model_unknown_name_suggests() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'dg_p3d_resnet5'.*Did you mean"):
        build_model("dg_p3d_resnet5")
    with pytest.raises(TypeError):
        build_model("p3d_resnet10", depth=50)


def test_train_mode_returns_dual_logits_eval_returns_mean() -> None:
    torch.manual_seed(0)
    net = _small("dg_p3d_resnet10", stem_temporal_stride=2, dropout=0.0)
    x = torch.randn(2, 3, 8, 32, 32)
    out = net.train()(x)
    assert isinstance(out, DualLogits) and out.temporal.shape == (2, 5)
    net.eval()
    with torch.no_grad():
        both = net.forward_logits(net.forward_features(x))
        mean = net(x)
    assert isinstance(both, DualLogits) and isinstance(mean, torch.Tensor)
    torch.testing.assert_close(mean, (both.temporal + both.spatial) / 2)
    torch.testing.assert_close(mean, both.mean())
    pre = net.forward_head(net.forward_features(x), pre_logits=True)
    assert isinstance(pre, DualLogits) and pre.temporal.shape == (2, net.num_features)


@pytest.mark.parametrize("family", ["g_p3d", "p3d", "i3d", "r2plus1d", "c2d"])
def test_single_head_models_return_a_tensor_in_both_modes(family: str) -> None:
    net = _small(f"{family}_resnet10")
    x = torch.randn(2, 3, 4, 32, 32)
    assert isinstance(net.train()(x), torch.Tensor)
    with torch.no_grad():
        assert net.eval()(x).shape == (2, 5)


@pytest.mark.parametrize("frames", [16, 32])
def test_dual_head_with_longer_clips(frames: int) -> None:
    net = _small("dg_p3d_resnet10").eval()
    with torch.no_grad():
        feats = net.forward_features(torch.randn(1, 3, frames, 32, 32))
    assert isinstance(feats, DualFeatures)
    assert feats.temporal.shape[2] == frames // 4
    assert feats.spatial.shape[2] == frames // 16


def test_loss_matches_cross_entropies_and_training_step_updates_weights() -> None:
    torch.manual_seed(0)
    net = _small("dg_p3d_resnet10", stem_temporal_stride=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 8, 32, 32), torch.tensor([0, 1, 2, 3])
    out = net(x)
    loss = net.loss(out, y)
    assert isinstance(out, DualLogits)
    expected = nn.functional.cross_entropy(out.temporal, y) + nn.functional.cross_entropy(
        out.spatial, y
    )
    torch.testing.assert_close(loss, expected)
    before = net.spatial_fc.weight.detach().clone()  # type: ignore[union-attr]
    loss.backward()
    opt.step()
    assert not torch.equal(before, net.spatial_fc.weight)  # type: ignore[union-attr]
    # the zero-initialised global-context output layer receives gradient
    assert net.layer1[0].gc.expand.weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_dual_head_loss_on_a_tensor_and_bad_type() -> None:
    logits, y = torch.randn(3, 4), torch.tensor([0, 1, 3])
    torch.testing.assert_close(dual_head_loss(logits, y), nn.functional.cross_entropy(logits, y))
    with pytest.raises(TypeError, match="DualLogits or a Tensor"):
        dual_head_loss([logits], y)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 16, 32, 32), "rank 5"),
        ((1, 1, 16, 32, 32), "3 channels"),
        ((1, 3, 8, 32, 32), "multiple of 16"),
        ((1, 3, 20, 32, 32), "got 20 frames"),
        ((1, 3, 0, 32, 32), "multiple of 16"),
    ],
)
def test_bad_input_fails_before_any_convolution(shape: tuple[int, ...], match: str) -> None:
    net = _small("dg_p3d_resnet10")
    calls: list[int] = []
    net.conv1.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(shape))
    assert calls == []


def test_stem_stride_rule_for_single_head() -> None:
    net = _small("p3d_resnet10", stem_temporal_stride=2)
    assert net.frames_multiple == 2
    net.check_clip_length(6)
    with pytest.raises(ValueError, match="multiple of 2 \\(stem temporal stride 2\\)"):
        net.check_clip_length(7)


def _manual_unit(block: Bottleneck3d, h: torch.Tensor) -> torch.Tensor:
    """DESIGN §3's formulas, written out for the middle of a bottleneck."""
    s, t, bn = block.conv2, block.conv_t, block.bn2
    if block.kind == "A":
        return torch.relu(bn(t(s(h))))
    if block.kind == "B":
        return torch.relu(bn(s(h) + t(h)))
    x = torch.relu(bn(s(h)))
    return torch.relu(x + t(x))


@pytest.mark.parametrize("kind", ["A", "B", "C"])
@pytest.mark.parametrize("stride", [1, 2])
def test_p3d_bottleneck_units_follow_the_design(kind: str, stride: int) -> None:
    torch.manual_seed(1)
    block = Bottleneck3d(kind, 16, 4, stride, global_context=True).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        block.gc.expand.weight.normal_()  # type: ignore[union-attr]
        x = torch.randn(2, 16, 4, 8, 8)
        h = torch.relu(block.bn1(block.conv1(x)))
        out = block.bn3(block.conv3(_manual_unit(block, h)))
        gc = block.gc.expand(torch.relu(block.gc.reduce(out.mean((2, 3, 4)))))  # type: ignore[union-attr]
        identity = block.downsample(x) if block.downsample is not None else x
        expected = torch.relu(out + gc[:, :, None, None, None] + identity)
        torch.testing.assert_close(block(x), expected)
    assert block.conv_t is not None
    assert block.conv_t.kernel_size == (3, 1, 1)
    assert block.conv_t.stride == ((1, stride, stride) if kind == "B" else (1, 1, 1))
    assert block.conv2.kernel_size == (1, 3, 3)
    assert sum(isinstance(m, nn.BatchNorm3d) for m in block.modules()) == 3 + (
        block.downsample is not None
    )


def test_r2plus1d_unit_keeps_the_3d_parameter_budget() -> None:
    r21 = Bottleneck3d("r2plus1d", 256, 64)
    i3d = Bottleneck3d("i3d", 256, 64)
    n_r21 = r21.conv2.weight.numel() + r21.conv_t.weight.numel()  # type: ignore[union-attr]
    n_i3d = i3d.conv2.weight.numel()
    assert r21.conv2.out_channels == 144
    assert n_i3d - (9 * 64 + 3 * 64) < n_r21 <= n_i3d


def test_width_multiplier_and_in_channels() -> None:
    net = VideoResNet(VideoResNetConfig(depth=18, width=0.25, in_channels=2, num_classes=3))
    assert net.conv1.in_channels == 2 and net.conv1.out_channels == 16
    assert net.fc.in_features == 128
