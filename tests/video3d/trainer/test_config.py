"""Presets, overrides and config files of the video trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video3d.trainer import (
    PRESETS,
    ConfigError,
    TrainConfig,
    check_model,
    get_preset,
    graph_for,
    list_presets,
    load_config_file,
    rule_for,
)

PAPER = ["activitynet", "hmdb51", "kinetics400", "kinetics600", "ssv1", "ssv2", "ucf101"]


def test_presets_cover_the_paper_datasets() -> None:
    assert set(PAPER) | {"events", "synthetic", "tiny"} == set(list_presets())


@pytest.mark.parametrize(
    ("name", "clips", "lrs", "dropout", "flip"),
    [
        ("hmdb51", (16, 32, 64), (0.01, 0.001, 0.0001), 0.9, True),
        ("ucf101", (16, 32, 64), (0.01, 0.001, 0.0001), 0.9, True),
        ("activitynet", (16, 32, 128), (0.01, 0.001, 0.0001), 0.9, True),
        ("ssv1", (16, 32), (0.04, 0.004, 0.0004), 0.5, False),
        ("ssv2", (16, 32), (0.04, 0.004, 0.0004), 0.5, False),
        ("kinetics400", (16, 32, 128), (0.04, 0.004, 0.0004), 0.5, True),
        ("kinetics600", (16, 32, 128), (0.04, 0.004, 0.0004), 0.5, True),
    ],
)
def test_paper_presets_follow_table_2(
    name: str, clips: tuple[int, ...], lrs: tuple[float, ...], dropout: float, flip: bool
) -> None:
    cfg = get_preset(name)
    assert (cfg.clip_lengths, cfg.learning_rates, cfg.dropout, cfg.flip) == (
        clips, lrs, dropout, flip)
    assert cfg.model == "dg_p3d_resnet50" and cfg.crop_size == 224
    assert cfg.bn_frozen(64) and cfg.bn_frozen(128) and not cfg.bn_frozen(32)
    check_model(cfg, cfg.num_classes or 2)  # every clip length fits DG-P3D-50


def test_paper_graph_sizes() -> None:
    assert len(graph_for(get_preset("kinetics400")).edges) == 36  # 18 per sampling
    # 2 clips x 3 lrs per sampling: 2 from the start + 3 clip-ups + 4 lr-downs + 2 diagonals
    assert len(graph_for(get_preset("ssv2")).edges) == 2 * 11


def test_events_plans_may_start_at_every_clip_length() -> None:
    cfg = get_preset("events")
    graph = graph_for(cfg)
    starts = {(b["sampling"], b["clip_length"]) for a, b in graph.edges if a == graph.start}
    assert starts == {(s, c) for s in cfg.samplings for c in cfg.clip_lengths}
    paper = graph_for(cfg.replace(start_clip_lengths=None))
    assert {b["clip_length"] for a, b in paper.edges if a == paper.start} == {8, 16}


@pytest.mark.parametrize(
    ("clip", "expected"), [(16, (16, 4)), (32, (8, 8)), (64, (4, 16)), (128, (2, 32))]
)
def test_clip_batch_keeps_the_effective_batch(clip: int, expected: tuple[int, int]) -> None:
    cfg = TrainConfig(clip_lengths=(16, 32, 64, 128), batch_size=64, device_batch=16)
    assert cfg.clip_batch(clip) == expected
    per, steps = cfg.clip_batch(clip, world_size=2)
    assert per * steps * 2 == 64


def test_rule_for_uses_the_preset() -> None:
    rule = rule_for(get_preset("synthetic"))
    assert (rule.delay, rule.max_epochs) == (3, 8)
    assert rule.resolution == 0.0  # estimated from the values unless the config says
    assert rule_for(get_preset("events").replace(knee_resolution=1 / 72)).resolution == 1 / 72


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'kinetics'.*kinetics400"):
        get_preset("kinetics")


def test_replace_rejects_unknown_keys_naming_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'lr'.*learning_rates"):
        get_preset("tiny").replace(lr=0.1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clip_lengths": [16, 8]}, "clip_lengths must be strictly increasing"),
        ({"learning_rates": [0.01, 0.1]}, "learning_rates must be strictly decreasing"),
        ({"samplings": ["random"]}, "samplings must be"),
        ({"dropout": 1.5}, "dropout must be"),
        ({"test_crops": 2}, "test_crops must be 1 or 3"),
        ({"short_side": [16, 20]}, "short_side must be"),
        ({"clip_lengths": 16}, "must be a list"),
        ({"start_clip_lengths": 4}, "start_clip_lengths must be null or an integer from 1 to 3"),
        ({"knee_resolution": -0.1}, "knee_resolution must be a number >= 0, got -0.1"),
        ({"knee_resolution": 0.02, "knee_method": "paper"}, "knee_resolution must be 0 with"),
    ],
)
def test_bad_values_are_named(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_preset("synthetic").replace(**changes)


def test_config_files_json_and_toml(tmp_path: Path) -> None:
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"learning_rates": [0.2, 0.02], "knee_delay": 4}))
    cfg = load_config_file(js, get_preset("synthetic"))
    assert cfg.learning_rates == (0.2, 0.02) and cfg.knee_delay == 4
    toml = tmp_path / "c.toml"
    toml.write_text('clip_lengths = [8, 16]\nmodel = "g_p3d_resnet10"\nwidth = 1\n')
    cfg = load_config_file(toml, get_preset("synthetic"))
    assert cfg.clip_lengths == (8, 16) and cfg.model == "g_p3d_resnet10" and cfg.width == 1.0
    bad = tmp_path / "bad.toml"
    bad.write_text("clip_length = [8]\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown config key 'clip_length'"):
        load_config_file(bad, get_preset("synthetic"))
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.json", get_preset("synthetic"))


def test_round_trip_through_dict() -> None:
    for cfg in PRESETS.values():
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clip_lengths": [8, 12]}, "cannot take 12"),
        ({"model": "dg_p3d_resnet11"}, "unknown model"),
    ],
)
def test_check_model_rejects_what_the_model_cannot_take(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_model(get_preset("synthetic").replace(**changes), 4)
