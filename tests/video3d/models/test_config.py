from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from video3d.models import (
    VideoResNetConfig,
    frames_multiple,
    p3d_unit_kind,
    r2plus1d_mid_width,
    unit_kinds,
)


def test_unit_kinds_cycle_over_the_global_block_index_resnet50() -> None:
    kinds = unit_kinds("p3d", (3, 4, 6, 3))
    assert kinds == (
        ("A", "B", "C"),
        ("A", "B", "C", "A"),
        ("B", "C", "A", "B", "C", "A"),
        ("B", "C", "A"),
    )


def test_unit_kinds_resnet101_layer4_starts_with_a() -> None:
    kinds = unit_kinds("p3d", (3, 4, 23, 3))
    assert kinds[3] == ("A", "B", "C")  # global index 30
    assert kinds[2][-1] == "C"  # global index 29


@pytest.mark.parametrize("unit", ["i3d", "r2plus1d", "c2d"])
def test_non_p3d_units_are_uniform(unit: str) -> None:
    assert {k for stage in unit_kinds(unit, (1, 2, 3, 1)) for k in stage} == {unit}  # type: ignore[arg-type]


def test_p3d_unit_kind_rejects_negative() -> None:
    with pytest.raises(ValueError, match="global_index"):
        p3d_unit_kind(-1)


@given(
    t=st.integers(1, 5), d=st.integers(1, 7), n_in=st.integers(1, 600), n_out=st.integers(1, 600)
)
def test_r2plus1d_mid_width_is_the_largest_width_within_the_3d_budget(
    t: int, d: int, n_in: int, n_out: int
) -> None:
    m = r2plus1d_mid_width(t, d, n_in, n_out)
    full = t * d * d * n_in * n_out

    def params(mid: int) -> int:
        return d * d * n_in * mid + t * mid * n_out

    assert params(m) <= full < params(m + 1)


def test_r2plus1d_mid_width_known_values() -> None:
    # Tran et al.: 64 -> 64 with a 3x3x3 conv gives M = 144.
    assert r2plus1d_mid_width(3, 3, 64, 64) == 144
    assert r2plus1d_mid_width(3, 7, 3, 64) == 83  # the (2+1)D stem: 3*49*3*64/(49*3+3*64)
    with pytest.raises(ValueError, match="n_in"):
        r2plus1d_mid_width(3, 3, 0, 4)


def test_frames_multiple_rule() -> None:
    assert frames_multiple(4, dual_head=True) == 16
    assert frames_multiple(2, dual_head=True) == 8
    assert frames_multiple(4, dual_head=False) == 4
    assert VideoResNetConfig(dual_head=False, stem_temporal_stride=1).frames_multiple == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 42}, "depth must be one of"),
        ({"layers": (1, 1, 1)}, "layers must be 4"),
        ({"layers": (1, 0, 1, 1)}, "layers must be 4"),
        ({"unit": "x3d"}, "unit must be one of"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"width": 0.0}, "width"),
        ({"width": float("nan")}, "width"),
        ({"in_channels": 0}, "in_channels"),
        ({"stem_temporal_stride": 0}, "stem_temporal_stride"),
        ({"block": "wide"}, "block"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VideoResNetConfig(**kwargs)  # type: ignore[arg-type]


def test_config_layers_override() -> None:
    cfg = VideoResNetConfig(layers=(1, 1, 1, 1), block="bottleneck")
    assert cfg.stage_layers == (1, 1, 1, 1) and cfg.expansion == 4
    cfg = VideoResNetConfig(depth=18)
    assert cfg.block_family == "basic" and cfg.stage_layers == (2, 2, 2, 2)
