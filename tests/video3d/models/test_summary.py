from __future__ import annotations

import pytest
import torch

from video3d.models import build_model, count_params, summarize
from video3d.models.__main__ import main


def test_c2d_resnet50_matches_the_2d_resnet50_figures() -> None:
    # torchvision's resnet50: 25,557,032 parameters, 4.09 GMACs at 224x224.
    s = summarize(
        lambda: build_model("c2d_resnet50", num_classes=1000, stem_temporal_stride=1),
        (1, 3, 1, 224, 224),
    )
    assert s.params == 25_557_032
    assert abs(s.macs / 1e9 - 4.09) < 0.01


def test_summary_rows_add_up_and_scale_with_frames() -> None:
    s16 = summarize(lambda: build_model("dg_p3d_resnet50"), (1, 3, 16, 224, 224))
    s32 = summarize(lambda: build_model("dg_p3d_resnet50"), (1, 3, 32, 224, 224))
    assert sum(r.params for r in s16.rows) == s16.params
    assert sum(r.macs for r in s16.rows) == s16.macs
    with torch.device("meta"):
        net = build_model("dg_p3d_resnet50")
    linear = sum(m.in_features * m.out_features for m in net.modules()
                 if isinstance(m, torch.nn.Linear))
    assert s32.macs == 2 * s16.macs - linear  # convs scale with T, the per-clip Linears do not
    assert {r.name for r in s16.rows} >= {"conv1", "layer4", "spatial_layer4", "spatial_fc"}
    with torch.device("meta"):
        assert count_params(build_model("dg_p3d_resnet50")) == s16.params


def test_cli_summary_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "dg_p3d_resnet50", "--frames", "16", "--size", "224"]) == 0
    out = capsys.readouterr().out
    assert "spatial_layer4" in out and "GMACs" in out and "50.38 M params" in out


def test_cli_summary_rejects_bad_clip_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "dg_p3d_resnet50", "--frames", "8"]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert main(["summary", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_table_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--models", "p3d_resnet10,dg_p3d_resnet10", "--frames", "16,32",
                 "--size", "64", "--width", "0.25"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| model | params (M) | GMACs @16 | GMACs @32")
    assert len(lines) == 4
    assert main(["list", "i3d_*"]) == 0
    assert capsys.readouterr().out.split() == [
        "i3d_resnet10", "i3d_resnet101", "i3d_resnet18", "i3d_resnet50",
    ]


def test_cli_inflate_round_trip(tmp_path: object, resnet2d: object) -> None:
    import pathlib

    src = pathlib.Path(str(tmp_path)) / "r2d.pth"
    dst = pathlib.Path(str(tmp_path)) / "out.pt"
    net2d = resnet2d("basic", (1, 1, 1, 1), width=0.25, num_classes=10)  # type: ignore[operator]
    torch.save(net2d.state_dict(), src)
    argv = ["inflate", "g_p3d_resnet10", "--from", str(src), "--out", str(dst),
            "--width", "0.25", "--num-classes", "10"]
    assert main(argv) == 0
    net = build_model("g_p3d_resnet10", width=0.25, num_classes=10)
    net.load_state_dict(torch.load(dst, weights_only=True))
    torch.testing.assert_close(net.fc.weight, net2d.fc.weight)
