from __future__ import annotations

import json
from pathlib import Path

import pytest

from stageplan import Plan, PlanFormatError, Stage

KINETICS = [
    ({"clip_length": 16, "learning_rate": 0.04}, 58),
    ({"clip_length": 32, "learning_rate": 0.04}, 108),
    ({"clip_length": 32, "learning_rate": 0.004}, 26),
    ({"clip_length": 64, "learning_rate": 0.0004}, 10),
    ({"clip_length": 64, "learning_rate": 0.00004}, 18),
]


def test_published_kinetics_plan_replays_epoch_by_epoch() -> None:
    plan = Plan.from_stages(KINETICS)
    epochs = list(plan.schedule())
    assert len(epochs) == plan.total_epochs == 220
    assert [e.epoch for e in epochs] == list(range(220))
    clip = [e.params["clip_length"] for e in epochs]
    lr = [e.params["learning_rate"] for e in epochs]
    assert clip == [16] * 58 + [32] * 134 + [64] * 28
    assert lr == [0.04] * 166 + [0.004] * 26 + [0.0004] * 10 + [0.00004] * 18
    assert epochs[58].stage == 1 and epochs[58].stage_epoch == 0
    assert plan.schedule_table() == {
        "clip_length": [16, 32, 32, 64, 64],
        "learning_rate": [0.04, 0.04, 0.004, 0.0004, 0.00004],
        "epochs": [58, 108, 26, 10, 18],
    }


def test_save_load_round_trip(tmp_path: Path) -> None:
    plan = Plan.from_stages(KINETICS)
    plan.save(tmp_path / "p" / "plan.json")
    again = Plan.load(tmp_path / "p" / "plan.json")
    assert again.to_dict() == plan.to_dict()
    assert json.loads((tmp_path / "p" / "plan.json").read_text())["format_version"] == 1


def test_zero_epoch_stage_yields_nothing() -> None:
    plan = Plan.from_stages([({"lr": 0.1}, 3), ({"lr": 0.01}, 0), ({"lr": 0.001}, 2)])
    assert [e.params["lr"] for e in plan.schedule()] == [0.1] * 3 + [0.001] * 2


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "is not JSON"),
        ('{"stages": []}', "not a stageplan plan"),
        (
            '{"format": "stageplan-plan", "format_version": 99, "stages": []}',
            "format version 99 is not supported",
        ),
        ('{"format": "stageplan-plan", "format_version": 1, "stages": []}', "at least one stage"),
        (
            '{"format": "stageplan-plan", "format_version": 1, "stages": [{"state": "a"}]}',
            "malformed stage",
        ),
    ],
)
def test_bad_plan_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(PlanFormatError, match=match):
        Plan.load(path)


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(PlanFormatError, match="cannot read plan file"):
        Plan.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("stages", "match"),
    [
        ([], "at least one stage"),
        ([("x", 3)], "params must be a mapping"),
        ([({"lr": 1},)], "expected a \\(params, epochs\\) pair"),
        ([({"lr": 1}, -1)], "epochs"),
    ],
)
def test_bad_hand_written_plans(stages, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        Plan.from_stages(stages)


def test_stage_round_trip() -> None:
    s = Stage(state="a", params={"lr": 0.1}, epochs=4, value=0.5, source="start")
    assert Stage.from_dict(s.to_dict()) == s
