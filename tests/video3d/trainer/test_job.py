"""The planning job's baselines: the hand-tuned grid, the cosine default and the val pick."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageplan import Plan
from video3d.trainer import (
    DEFAULT_BASELINE,
    HAND_TUNED_GRID,
    JobResult,
    baseline_schedules,
    get_preset,
    load_data,
    run_baselines,
    schedule_plan,
)
from video3d.trainer._trainer import VideoTrainer


@pytest.mark.parametrize("total", [1, 2, 5, 13, 25])
@pytest.mark.parametrize("preset", ["synthetic", "tiny"])
def test_every_baseline_has_exactly_the_total_and_ends_on_the_longest_clip(
    preset: str, total: int
) -> None:
    cfg = get_preset(preset)
    schedules = baseline_schedules(cfg, total)
    assert DEFAULT_BASELINE in schedules
    assert set(schedules) - {DEFAULT_BASELINE} <= set(HAND_TUNED_GRID)
    assert ("short_mid_long" in schedules) == (len(cfg.clip_lengths) >= 3)
    for name, epochs in schedules.items():
        assert len(epochs) == total, name
        assert total < 2 or epochs[-1][0] == cfg.clip_lengths[-1], name
        lrs = [lr for _, lr in epochs]
        assert lrs == sorted(lrs, reverse=True) and lrs[0] == cfg.learning_rates[0], name
        clips = [c for c, _ in epochs]
        assert clips == sorted(clips), name
    # the long-only schedules never use a shorter clip
    for name in ("long_only", DEFAULT_BASELINE):
        assert {c for c, _ in schedules[name]} == {cfg.clip_lengths[-1]}


def test_early_switch_grows_the_clip_before_the_lr_drops() -> None:
    epochs = baseline_schedules(get_preset("synthetic"), 20)["early_switch"]
    first_long = next(i for i, (c, _) in enumerate(epochs) if c == 32)
    first_drop = next(i for i, (_, lr) in enumerate(epochs) if lr < 0.02)
    assert first_long == 5 and first_drop == 10
    late = baseline_schedules(get_preset("synthetic"), 20)["short_then_long"]
    assert next(i for i, (c, _) in enumerate(late) if c == 32) == 10


def test_baseline_schedules_rejects_no_epochs() -> None:
    with pytest.raises(ValueError, match="total_epochs must be >= 1, got 0"):
        baseline_schedules(get_preset("synthetic"), 0)


def test_schedule_plan_merges_runs_of_equal_epochs() -> None:
    plan = schedule_plan([(8, 0.1), (8, 0.1), (16, 0.1), (16, 0.01)], "uniform")
    table = plan.schedule_table()
    assert table["clip_length"] == [8, 16, 16] and table["epochs"] == [2, 1, 1]
    assert plan.total_epochs == 4


def test_run_baselines_picks_the_grid_best_on_val_and_writes_every_result(
    tiny_data_dir: Path,
) -> None:
    cfg = get_preset("tiny")
    trainer = VideoTrainer(cfg, load_data(tiny_data_dir, cfg))
    plan = Plan.from_stages([({"sampling": "uniform", "clip_length": 8,
                               "learning_rate": 0.05}, 2)])
    job = JobResult(plan=plan)
    run_baselines(trainer, job)
    assert set(job.baselines) == {"short_then_long", "long_only", "early_switch",
                                  DEFAULT_BASELINE}
    grid = [n for n in HAND_TUNED_GRID if n in job.baselines]
    best = max(job.baselines[n]["val_metric"] for n in grid)
    assert job.baseline_name in grid
    assert job.baselines[job.baseline_name]["val_metric"] == best
    assert job.baseline is job.baselines[job.baseline_name]
    out = job.to_dict()
    for name in job.baselines:
        assert 0.0 <= out[f"{name}_test"]["top1"] <= 1.0
        assert sum(out[f"{name}_schedule"]["epochs"]) == 2
    assert out["hand_tuned_pick"] == job.baseline_name and "planned_test" in out
