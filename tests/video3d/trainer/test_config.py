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


def test_knee_options_reach_the_rule_of_either_method() -> None:
    from stageplan import KneeRule

    cfg = get_preset("synthetic")
    # without options: the rule as before (the fields alone)
    assert rule_for(cfg).to_dict() == KneeRule("exp", 3, max_epochs=8, ceiling=1.0).to_dict()
    evidence = {"risk": 0.1, "tolerance": 2.0, "keep": "auto", "schedule": "cosine",
                "patience": 3, "min_delta": 0.01, "smooth": 2, "max_noise": 0.5,
                "min_epochs": 4, "horizon": 500}
    rule = rule_for(cfg.replace(knee_options=evidence))
    assert rule.to_dict() == KneeRule("exp", 3, max_epochs=8, ceiling=1.0, **evidence).to_dict()
    assert (rule.risk, rule.schedule, rule.keep, rule.min_epochs) == (0.1, "cosine", "auto", 4)
    guards = {"keep": "best", "patience": 20, "min_delta": 0.5, "smooth": 5, "max_noise": 1.0}
    paper = cfg.replace(knee_method="paper", knee_options=guards)
    assert rule_for(paper).to_dict() == KneeRule.paper("exp", 3, max_epochs=8, **guards).to_dict()
    assert rule_for(cfg.replace(knee_method="paper")).to_dict() == \
        KneeRule.paper("exp", 3, max_epochs=8).to_dict()


def test_knee_options_cover_every_rule_option() -> None:
    """Every KneeRule keyword is a knee_* field, max_epochs, or a knee_options key."""
    import inspect

    from stageplan import KneeRule

    fields = {"family", "delay", "method", "ceiling", "resolution", "max_epochs"}
    for key in inspect.signature(KneeRule).parameters:
        if key not in fields:  # accepted (the value is the rule's default)
            default = inspect.signature(KneeRule).parameters[key].default
            value = {"min_epochs": 2, "patience": 2}.get(key, default)
            assert rule_for(get_preset("tiny").replace(knee_options={key: value}))


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
        ({"knee_options": [0.1]}, r"knee_options must be a table of KneeRule .*got \[0.1\]"),
        ({"knee_options": {"delay": 4}}, "must not set 'delay'.*set the config field knee_delay"),
        ({"knee_options": {"max_epochs": 4}}, "set the config field max_epochs instead"),
        ({"knee_options": {"ceiling": None}}, "set the config field knee_ceiling instead"),
        ({"knee_options": {"risc": 0.1}}, "unknown key 'risc'.*valid keys:.*risk"),
        ({"knee_options": {"risk": 1.5}}, r"knee_options must .*got \{'risk': 1.5\}: risk must"),
        ({"knee_options": {"schedule": "linear"}}, "schedule must be one of"),
        ({"knee_options": {"min_delta": 0.5}}, "min_delta and smooth refine the patience guard"),
        ({"knee_options": {"risk": 0.1}, "knee_method": "paper", "knee_resolution": 0.0},
         "knee_method='paper'.*belong to method='evidence'"),
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
    cfg = get_preset("events").replace(knee_options={"risk": 0.1, "keep": "auto"})
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.knee_rule().to_dict() == cfg.knee_rule().to_dict()


def test_config_files_set_knee_options(tmp_path: Path) -> None:
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"knee_options": {"patience": 4, "min_delta": 0.02}}))
    rule = load_config_file(js, get_preset("synthetic")).knee_rule()
    assert (rule.patience, rule.min_delta) == (4, 0.02)
    toml = tmp_path / "c.toml"
    toml.write_text('knee_method = "paper"\n[knee_options]\nkeep = "best"\nmax_noise = 1\n')
    rule = load_config_file(toml, get_preset("synthetic")).knee_rule()
    assert (rule.method, rule.keep, rule.max_noise) == ("paper", "best", 1.0)
    bad = tmp_path / "bad.toml"
    bad.write_text("[knee_options]\nsmooth = 0\npatience = 2\n")
    with pytest.raises(ConfigError, match=r"bad.toml: knee_options .*smooth must be >= 1, got 0"):
        load_config_file(bad, get_preset("synthetic"))


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
