"""Smoke test of benchmarks/planning_vs_peers.py (its --quick path) and its schedule helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "planning_vs_peers.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

import _workload as wl  # noqa: E402


@pytest.mark.parametrize(
    ("clips", "schedule", "expected"),
    [
        ((8, 16, 32), "l1-l3", (8, 32)),
        ((8, 16, 32), "l2-l3", (16, 32)),
        ((8, 16, 32), "l1-l2-l3", (8, 16, 32)),
        ((4, 8), "l2-l3", (8,)),
        ((4, 8), "l1-l2-l3", (4, 8)),
    ],
)
def test_clip_sequence(clips: tuple[int, ...], schedule: str, expected: tuple[int, ...]) -> None:
    assert wl.clip_sequence(clips, schedule) == expected


def test_step_schedule_splits_clips_evenly_and_drops_lr_at_half_and_three_quarters() -> None:
    epochs = wl.schedule_epochs((8, 16, 32), (0.02, 0.002), clip_schedule="l1-l2-l3",
                                lr_schedule="step", total=12)
    assert [c for c, _ in epochs] == [8] * 4 + [16] * 4 + [32] * 4
    assert [lr for _, lr in epochs] == [0.02] * 6 + [0.002] * 3 + [0.0002] * 3


def test_cosine_schedule_starts_at_the_first_lr_and_decreases_to_near_zero() -> None:
    lrs = [lr for _, lr in wl.schedule_epochs((8, 32), (0.1,), clip_schedule="l1-l3",
                                              lr_schedule="cosine", total=10)]
    assert lrs[0] == 0.1 and all(b < a for a, b in zip(lrs, lrs[1:])) and 0 < lrs[-1] < 0.01


@pytest.mark.parametrize("total", [1, 2, 3, 7, 12, 25])
def test_multigrid_cycles_short_to_long_in_every_lr_stage(total: int) -> None:
    epochs = wl.multigrid_epochs((8, 16, 32), (0.02, 0.002), total=total)
    assert len(epochs) == total and epochs[-1][0] == 32
    lrs = [lr for _, lr in epochs]
    assert lrs == sorted(lrs, reverse=True)
    for lr in set(lrs):  # inside one LR stage the clip never shrinks, and ends longest
        clips = [c for c, r in epochs if r == lr]
        assert clips == sorted(clips) and clips[-1] == 32
    if total >= 12:
        assert [c for c, _ in epochs[:total // 2]].count(8) >= 1


def test_grid_dedupes_identical_schedules() -> None:
    full = wl.grid_specs((8, 16, 32), (0.02, 0.002), samplings=("consecutive", "uniform"),
                         totals=(6, 12))
    assert len(full) == 3 * 2 * 2 * 2
    two_clips = wl.grid_specs((4, 8), (0.05,), samplings=("consecutive",), totals=(4,))
    assert [(s.clip_schedule, s.lr_schedule) for s in two_clips] == [
        ("l1-l3", "step"), ("l1-l3", "cosine"), ("l2-l3", "step"), ("l2-l3", "cosine")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_schedule": "l3-l1", "lr_schedule": "step", "total": 4}, "clip_schedule"),
        ({"clip_schedule": "l1-l3", "lr_schedule": "poly", "total": 4}, "lr_schedule"),
        ({"clip_schedule": "l1-l3", "lr_schedule": "step", "total": 0}, "total"),
    ],
)
def test_schedule_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wl.schedule_epochs((8, 32), (0.1,), **kwargs)  # type: ignore[arg-type]


def test_planning_vs_peers_quick(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "VIDEO3D_DATA": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "claim (plan >= grid pick on test, every seed):" in proc.stdout
    result = json.loads((tmp_path / "out" / "planning_vs_peers_quick.json").read_text())
    assert (tmp_path / "out" / "planning_vs_peers_quick.png").stat().st_size > 1000
    assert result["preset"] == "tiny" and result["seeds"] == [0] and result["grid_size"] == 2
    by = {r["method"]: r for r in result["rows"]}
    assert set(by) == {"plan_extended", "plan_retrained", "grid", "grid_oracle", "default",
                       "multigrid", "search"}
    for row in by.values():
        assert row["epochs"] > 0 and row["clip_frames"] > 0
    plan = by["plan_extended"]
    assert 0.0 <= plan["test_top1"] <= 1.0 and plan["plan_epochs"] <= plan["epochs"]
    assert len(plan["curves"]) == plan["transitions"] == plan["edges"]
    assert sum(len(c["values"]) - 1 for c in plan["curves"]) == plan["epochs"]
    assert (tmp_path / "out" / "planning_vs_peers_quick_curves.png").stat().st_size > 1000
    grid = by["grid"]
    assert len(grid["candidates"]) == 2
    assert grid["clip_frames"] == sum(c["clip_frames"] for c in grid["candidates"])
    assert grid["val_metric"] == max(c["val_metric"] for c in grid["candidates"])
    search = by["search"]
    assert 1 <= len(search["trials"]) <= 3
    assert search["clip_frames"] <= search["budget_clip_frames"] == plan["clip_frames"]
    assert set(result["summary"]) >= {"plan_extended", "grid", "search", "default"}
    assert by["plan_retrained"]["epochs"] == plan["plan_epochs"]
    for method in ("default", "multigrid"):  # one run per sampling, the val pick kept
        assert by[method]["epochs"] == 2 * plan["plan_epochs"]
        assert by[method]["val_metric"] == max(t["val_metric"] for t in by[method]["tried"])
    assert [c for c, _ in by["default"]["schedule"]] == [8] * plan["plan_epochs"]
    claim = result["claim"]
    assert {"accuracy_holds_all", "compute_holds_all", "search_margin_holds",
            "default_holds"} <= set(claim)
    assert claim["mean_top1"]["plan"] == plan["test_top1"]
    assert not list((tmp_path / "out").glob("*.partial.json"))  # removed once complete

    # --merge rebuilds the same summary from the rows (seeds run by separate commands)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path / "merged"), "--merge",
         str(tmp_path / "out" / "planning_vs_peers_quick.json")],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged = json.loads((tmp_path / "merged" / "planning_vs_peers.json").read_text())
    assert merged["summary"] == result["summary"] and merged["claim"] == result["claim"]
    assert merged["grid_size"] == result["grid_size"] and merged["seeds"] == [0]


def test_grid_names_pick_schedules_of_the_grid_and_name_unknown_ones() -> None:
    import planning_vs_peers as pvp

    args = pvp.parse_args(["--quick", "--totals", "2", "--grid-names", "unif l1-l3 step 2ep"])
    cfg, _ = pvp.build_config(args)
    assert [s.name for s in pvp.grid_for(cfg, args)] == ["unif l1-l3 step 2ep"]
    args.grid_names = ["unif l1-l3 step 9ep"]
    with pytest.raises(SystemExit, match="unknown schedule"):
        pvp.grid_for(cfg, args)


def test_probe_specs_give_the_grid_schedules_or_a_constant_lr_and_name_bad_ones() -> None:
    import planning_vs_peers as pvp

    args = pvp.parse_args(["--quick"])
    cfg, _ = pvp.build_config(args)
    sampling, epochs = pvp.probe_epochs("uniform:l1-l3:step:4", cfg)
    assert sampling == "uniform"
    assert epochs == wl.schedule_epochs(cfg.clip_lengths, cfg.learning_rates,
                                        clip_schedule="l1-l3", lr_schedule="step", total=4)
    assert pvp.probe_epochs("consecutive:8:0.3:3", cfg) == ("consecutive", [(8, 0.3)] * 3)
    for bad, message in (("uniform:8:0.3", "SAMPLING:CLIPS:LR:EPOCHS"),
                         ("sparse:8:0.3:3", "sampling must be one of"),
                         ("uniform:8:fast:3", "could not convert"),
                         ("uniform:8:0.3:0", "total must be an int >= 1")):
        with pytest.raises(SystemExit, match=message):
            pvp.probe_epochs(bad, cfg)
