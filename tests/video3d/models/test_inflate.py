from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import torch

from video3d.models import (
    VideoResNet,
    VideoResNetConfig,
    build_model,
    inflate_resnet2d,
    load_resnet2d_state_dict,
)

# (block family, layers, width): small enough for a CPU test, 4 bottlenecks cover A B C A
ARCHS = [("bottleneck", (1, 1, 1, 1), 0.25), ("basic", (2, 1, 1, 1), 0.25)]
VARIANTS = {
    "dg_p3d": {"unit": "p3d", "global_context": True, "dual_head": True},
    "g_p3d": {"unit": "p3d", "global_context": True, "dual_head": False},
    "p3d": {"unit": "p3d", "global_context": False, "dual_head": False},
    "i3d": {"unit": "i3d", "global_context": False, "dual_head": False},
    "c2d": {"unit": "c2d", "global_context": False, "dual_head": False},
}


def _pair(
    resnet2d: Callable[..., torch.nn.Module], randomize: Callable[..., None], block: str,
    layers: tuple[int, ...], width: float, variant: str, num_classes: int = 10,
) -> tuple[torch.nn.Module, VideoResNet]:
    torch.manual_seed(0)
    net2d = resnet2d(block, layers, width=width, num_classes=num_classes)
    randomize(net2d)
    net3d = VideoResNet(
        VideoResNetConfig(
            layers=layers, block=block, width=width, num_classes=num_classes,  # type: ignore[arg-type]
            dropout=0.0, **VARIANTS[variant],  # type: ignore[arg-type]
        )
    )
    net3d.load_state_dict(inflate_resnet2d(net2d.state_dict(), net3d))
    return net2d.eval(), net3d.eval()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(("block", "layers", "width"), ARCHS)
def test_static_clip_reproduces_2d_layer3_and_logits(
    resnet2d: Callable[..., torch.nn.Module], randomize: Callable[..., None],
    block: str, layers: tuple[int, ...], width: float, variant: str,
) -> None:
    net2d, net3d = _pair(resnet2d, randomize, block, layers, width, variant)
    frames = 16 if variant == "dg_p3d" else 8
    frame = torch.randn(2, 3, 48, 48)
    clip = frame[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()
    with torch.no_grad():
        ref = net2d.forward_layer3(frame)  # type: ignore[operator]
        got = net3d.forward_trunk(clip)
        assert got.shape[2] == frames // 4
        for t in range(got.shape[2]):
            err = (got[:, :, t] - ref).norm() / ref.norm()
            assert err < 1e-4, (t, float(err))
        # the temporal head is layer4 of the 2D net too: same logits
        logits = net3d.forward_logits(net3d.forward_features(clip))
        temporal = logits.temporal if variant == "dg_p3d" else logits  # type: ignore[union-attr]
        ref_logits = net2d(frame)
        assert (temporal - ref_logits).norm() / ref_logits.norm() < 1e-4


def test_inflation_does_not_depend_on_key_order(
    resnet2d: Callable[..., torch.nn.Module], randomize: Callable[..., None]
) -> None:
    net2d = resnet2d("bottleneck", (1, 2, 1, 1), width=0.25, num_classes=10)
    randomize(net2d)
    target = VideoResNet(VideoResNetConfig(layers=(1, 2, 1, 1), block="bottleneck", width=0.25,
                                           num_classes=10))
    state = net2d.state_dict()
    items = list(state.items())
    random.Random(0).shuffle(items)
    a = inflate_resnet2d(state, target)
    b = inflate_resnet2d(dict(items), target)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_inflation_rules_on_weights(
    resnet2d: Callable[..., torch.nn.Module], randomize: Callable[..., None]
) -> None:
    net2d, net3d = _pair(resnet2d, randomize, "bottleneck", (1, 1, 1, 1), 0.25, "dg_p3d")
    s2, s3 = net2d.state_dict(), net3d.state_dict()
    # stem at the centre tap of 4, others zero
    assert s3["conv1.weight"].shape[2] == 4
    torch.testing.assert_close(s3["conv1.weight"][:, :, 2], s2["conv1.weight"])
    assert s3["conv1.weight"][:, :, [0, 1, 3]].abs().sum() == 0
    # layer1.0 is A (identity), layer1.0's successor kinds B/C are zero
    wa = s3["layer1.0.conv_t.weight"]
    torch.testing.assert_close(wa[:, :, 1, 0, 0], torch.eye(wa.shape[0]))
    assert wa[:, :, [0, 2]].abs().sum() == 0
    assert s3["layer2.0.conv_t.weight"].abs().sum() == 0  # B
    assert s3["layer3.0.conv_t.weight"].abs().sum() == 0  # C
    assert s3["layer2.0.gc.expand.weight"].abs().sum() == 0
    assert s3["layer2.0.gc.expand.bias"].abs().sum() == 0
    # spatial head's layer4 is a copy of layer4
    for key in ("conv1.weight", "conv3.weight", "bn2.running_var", "downsample.0.weight"):
        torch.testing.assert_close(s3[f"spatial_layer4.0.{key}"], s3[f"layer4.0.{key}"])
    torch.testing.assert_close(s3["spatial_fc.weight"], s2["fc.weight"])


def test_inflation_is_pure(
    resnet2d: Callable[..., torch.nn.Module], randomize: Callable[..., None]
) -> None:
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=10)
    target = build_model("dg_p3d_resnet10", num_classes=10, width=0.25)
    before2d = {k: v.clone() for k, v in net2d.state_dict().items()}
    before3d = {k: v.clone() for k, v in target.state_dict().items()}
    out = inflate_resnet2d(net2d.state_dict(), target)  # type: ignore[arg-type]
    assert all(torch.equal(before2d[k], v) for k, v in net2d.state_dict().items())
    assert all(torch.equal(before3d[k], v) for k, v in target.state_dict().items())
    out["conv1.weight"].add_(1.0)  # the result shares no storage with the inputs
    assert all(torch.equal(before3d[k], v) for k, v in target.state_dict().items())


@pytest.mark.parametrize("depth", [50, 101])
@pytest.mark.parametrize("family", ["dg_p3d", "g_p3d", "p3d", "i3d", "c2d"])
def test_key_coverage_full_size_on_meta(
    resnet2d: Callable[..., torch.nn.Module], family: str, depth: int
) -> None:
    layers = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    with torch.device("meta"):
        net2d = resnet2d("bottleneck", layers, num_classes=1000)
        target = build_model(f"{family}_resnet{depth}", num_classes=1000)
    out = inflate_resnet2d(net2d.state_dict(), target)  # type: ignore[arg-type]
    expected = target.state_dict()
    assert out.keys() == expected.keys()
    assert all(out[k].shape == expected[k].shape for k in out)


def test_fc_is_kept_from_target_when_class_count_differs(
    resnet2d: Callable[..., torch.nn.Module],
) -> None:
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=1000)
    target = build_model("dg_p3d_resnet10", num_classes=7, width=0.25)
    out = inflate_resnet2d(net2d.state_dict(), target)  # type: ignore[arg-type]
    assert torch.equal(out["fc.weight"], target.state_dict()["fc.weight"])
    with pytest.raises(ValueError, match="copy_fc=True"):
        inflate_resnet2d(net2d.state_dict(), target, copy_fc=True)  # type: ignore[arg-type]
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=7)
    out = inflate_resnet2d(net2d.state_dict(), target, copy_fc=False)  # type: ignore[arg-type]
    assert torch.equal(out["fc.weight"], target.state_dict()["fc.weight"])


def test_depth_mismatch_errors(resnet2d: Callable[..., torch.nn.Module]) -> None:
    deeper = resnet2d("basic", (2, 2, 2, 2), width=0.25, num_classes=10)
    shallow = build_model("p3d_resnet10", num_classes=10, width=0.25)
    with pytest.raises(ValueError, match=r"2D keys have no place.*layer1\.1\."):
        inflate_resnet2d(deeper.state_dict(), shallow)  # type: ignore[arg-type]
    shallower = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=10)
    deep = build_model("p3d_resnet18", num_classes=10, width=0.25)
    with pytest.raises(ValueError, match=r"no 'layer1\.1\.conv1\.weight'"):
        inflate_resnet2d(shallower.state_dict(), deep)  # type: ignore[arg-type]


def test_width_mismatch_and_r2plus1d_errors(resnet2d: Callable[..., torch.nn.Module]) -> None:
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.5, num_classes=10)
    with pytest.raises(ValueError, match=r"shape mismatch for 'conv1\.weight'"):
        inflate_resnet2d(
            net2d.state_dict(), build_model("p3d_resnet10", width=0.25)  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="R\\(2\\+1\\)D"):
        inflate_resnet2d(
            net2d.state_dict(), build_model("r2plus1d_resnet10", width=0.5)  # type: ignore[arg-type]
        )


def test_load_resnet2d_state_dict_unwraps_and_strips_prefix(
    tmp_path: object, resnet2d: Callable[..., torch.nn.Module]
) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "r.pth"
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=10)
    wrapped = {"state_dict": {"module." + k: v for k, v in net2d.state_dict().items()}}
    torch.save(wrapped, path)
    loaded = load_resnet2d_state_dict(path)
    assert loaded.keys() == net2d.state_dict().keys()
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_resnet2d_state_dict(path)
