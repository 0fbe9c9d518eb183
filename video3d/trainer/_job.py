"""The planning job: plan, picture, evaluate the plan, and compare with fixed schedules.

The comparison is the one a practitioner would make: a small hand-tuned grid of fixed
schedules with the plan's number of epochs (short clips then long ones with a 3-step LR,
long clips throughout, and the clip switch before the LR drop), of which the one with the best
internal-validation metric is the *hand-tuned* pick, and the strong single default (cosine LR
at the longest clip). Every schedule is trained from scratch with one SGD optimiser.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from video3d.trainer._config import TrainConfig
from video3d.trainer._data import DataBundle
from video3d.trainer._ddp import DistContext

if TYPE_CHECKING:
    from stageplan import KneeRule, Plan, TransitionGraph
    from video3d.trainer._trainer import VideoTrainer

__all__ = [
    "DEFAULT_BASELINE",
    "HAND_TUNED_GRID",
    "JobResult",
    "baseline_schedules",
    "graph_for",
    "hand_tuned_plan",
    "schedule_plan",
    "rule_for",
    "run_baselines",
    "run_planning",
    "test_plan_checkpoint",
]


def graph_for(config: TrainConfig) -> TransitionGraph:
    """The paper's transition graph over the preset's clip lengths, LRs and samplings."""
    from stageplan import TransitionGraph

    return TransitionGraph.paper(
        clip_lengths=list(config.clip_lengths), learning_rates=list(config.learning_rates),
        samplings=tuple(config.samplings), extended=config.extended,
        start_clip_lengths=config.start_clip_lengths,
    )


def rule_for(config: TrainConfig) -> KneeRule:
    """The knee rule of the preset: :meth:`TrainConfig.knee_rule` (method, ceiling included)."""
    return config.knee_rule()


def hand_tuned_plan(config: TrainConfig, total_epochs: int, sampling: str) -> Plan:
    """A standard hand-written schedule with ``total_epochs`` epochs.

    Short clips first, long clips after, with a 3-step learning-rate decay: the first half of
    the epochs at the shortest clip and the highest LR, then the longest clip for the second
    half, at the second LR until 75% of the epochs and at the third for the rest. The LRs are
    the preset's, continued by factors of 10 when it has fewer than three.

    Example:
        >>> from video3d.trainer import get_preset
        >>> p = hand_tuned_plan(get_preset("synthetic"), 20, "uniform")
        >>> [(s.params["clip_length"], s.params["learning_rate"], s.epochs) for s in p.stages]
        [(8, 0.02, 10), (32, 0.002, 5), (32, 0.0002, 5)]
    """
    from stageplan import Plan

    lrs = list(config.learning_rates[:3])
    while len(lrs) < 3:
        lrs.append(lrs[-1] / 10)
    total = max(int(total_epochs), 0)
    half, three_quarters = round(total * 0.5), round(total * 0.75)
    short, long_ = config.clip_lengths[0], config.clip_lengths[-1]
    rows = [(short, lrs[0], half), (long_, lrs[1], three_quarters - half),
            (long_, lrs[2], total - three_quarters)]
    return Plan.from_stages([
        ({"sampling": sampling, "clip_length": clip, "learning_rate": float(f"{lr:.6g}")}, n)
        for clip, lr, n in rows
    ])


#: The hand-tuned grid of the job (val-selected), in tie-break order.
HAND_TUNED_GRID: tuple[str, ...] = ("short_then_long", "long_only", "early_switch",
                                    "short_mid_long")
#: The strong single default: cosine LR at the longest clip.
DEFAULT_BASELINE = "cosine_long"


def _three_lrs(config: TrainConfig) -> list[float]:
    lrs = [float(r) for r in config.learning_rates[:3]]
    while len(lrs) < 3:
        lrs.append(lrs[-1] / 10)
    return [float(f"{lr:.6g}") for lr in lrs]


def baseline_schedules(
    config: TrainConfig, total_epochs: int
) -> dict[str, list[tuple[int, float]]]:
    """``(clip_length, learning_rate)`` per epoch of every baseline with ``total_epochs``.

    With ``E`` epochs and the 3-step LRs ``r1, r2, r3`` (the preset's, continued by /10), the
    step schedules use ``r1`` before ``E/2``, ``r2`` before ``3E/4`` and ``r3`` after:

    * ``short_then_long``: shortest clip for the first half, then the longest (the clip grows
      when the LR drops; :func:`hand_tuned_plan`);
    * ``long_only``: the longest clip throughout;
    * ``early_switch``: shortest clip for the first quarter, then the longest (the clip grows
      before the LR drops);
    * ``short_mid_long``: shortest, middle and longest clip for a third of the epochs each
      (left out when the preset has fewer than three clip lengths);
    * ``cosine_long`` (the default): the longest clip, ``r1 (1 + cos(pi e / E)) / 2``.

    Example:
        >>> from video3d.trainer import get_preset
        >>> s = baseline_schedules(get_preset("synthetic"), 4)
        >>> s["early_switch"]
        [(8, 0.02), (32, 0.02), (32, 0.002), (32, 0.0002)]
        >>> [lr for _, lr in s["cosine_long"]]
        [0.02, 0.0170711, 0.01, 0.00292893]
    """
    total = int(total_epochs)
    if total < 1:
        raise ValueError(f"total_epochs must be >= 1, got {total_epochs!r}")
    r1, r2, r3 = _three_lrs(config)
    clips = list(config.clip_lengths)
    short, long_ = clips[0], clips[-1]

    def at(fraction: float) -> int:  # the epoch at ``fraction`` of the total, halves rounded up
        return int(fraction * total + 0.5)

    half, three_quarters = at(0.5), at(0.75)

    def step(e: int) -> float:
        return r1 if e < half else (r2 if e < three_quarters else r3)

    out: dict[str, list[tuple[int, float]]] = {
        "short_then_long": [(short if e < half else long_, step(e)) for e in range(total)],
        "long_only": [(long_, step(e)) for e in range(total)],
        "early_switch": [(short if e < at(0.25) else long_, step(e))
                         for e in range(total)],
    }
    if len(clips) >= 3:
        mid = clips[len(clips) // 2]
        out["short_mid_long"] = [
            (short if e < at(1 / 3) else (mid if e < at(2 / 3) else long_),
             step(e)) for e in range(total)
        ]
    out[DEFAULT_BASELINE] = [
        (long_, float(f"{r1 * 0.5 * (1.0 + math.cos(math.pi * e / total)):.6g}"))
        for e in range(total)
    ]
    return out


def schedule_plan(epochs: Sequence[tuple[int, float]], sampling: str) -> Plan:
    """A per-epoch ``(clip, lr)`` schedule as a plan (runs of equal epochs are one stage)."""
    from stageplan import Plan

    stages: list[tuple[dict[str, object], int]] = []
    for clip, lr in epochs:
        params: dict[str, object] = {"sampling": sampling, "clip_length": int(clip),
                                     "learning_rate": float(lr)}
        if stages and stages[-1][0] == params:
            stages[-1] = (params, stages[-1][1] + 1)
        else:
            stages.append((params, 1))
    return Plan.from_stages(stages)


@dataclass
class JobResult:
    """What :func:`run_planning` produced.

    ``baseline`` / ``baseline_plan`` are the hand-tuned grid's val-selected pick (named
    ``baseline_name``); ``baselines`` has every fixed schedule's test accuracy (plus its
    ``val_metric``), by name.
    """

    plan: Plan
    planned: dict[str, float] | None = None
    baseline: dict[str, float] | None = None
    baseline_plan: Plan | None = None
    baseline_name: str | None = None
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_plans: dict[str, Plan] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=list)
    #: Unreadable videos left out or replaced: ``DataBundle.bad_video_report()``.
    bad_videos: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "planned_test": self.planned,
            "hand_tuned_test": self.baseline,
            "hand_tuned_pick": self.baseline_name,
            "hand_tuned_grid": [n for n in HAND_TUNED_GRID if n in self.baselines],
            "hand_tuned_schedule": None if self.baseline_plan is None
            else self.baseline_plan.schedule_table(),
        }
        for name, result in self.baselines.items():
            out[f"{name}_test"] = result
            out[f"{name}_schedule"] = self.baseline_plans[name].schedule_table()
        out.update({
            "plan_schedule": self.plan.schedule_table(),
            "total_epochs": self.plan.total_epochs,
            "seconds": self.seconds,
            "pictures": self.pictures,
            "bad_videos": self.bad_videos,
        })
        return out


def _final_state(plan: Plan) -> tuple[str, int]:
    params = plan.stages[-1].params
    return str(params.get("sampling", "consecutive")), int(params["clip_length"])  # type: ignore[arg-type]


def test_plan_checkpoint(trainer: VideoTrainer, plan: Plan, storage: Any) -> dict[str, float]:
    """Final-protocol accuracy of the plan's final checkpoint."""
    if plan.final_checkpoint is None:
        raise ValueError("the plan has no final checkpoint to evaluate")
    path = storage.checkpoints.fetch(plan.final_checkpoint)
    model = trainer.new_model()
    trainer.load_checkpoint(model, path)
    sampling, clip = _final_state(plan)
    return trainer.final_evaluate(model, sampling, clip, desc="test planned")


def run_planning(
    config: TrainConfig,
    data: DataBundle,
    *,
    out: str | Path,
    storage: str | None = None,
    checkpoints: str | None = None,
    workers: int = 1,
    stream: TextIO | None = None,
    dist: DistContext | None = None,
    device: str | None = None,
    baseline: bool = True,
    pictures: bool = True,
    run_info: dict[str, Any] | None = None,
) -> JobResult | None:
    """Plan ``config``'s graph on ``data``; write ``plan.json``, pictures and ``results.json``.

    ``checkpoints`` names where a database or journal ``storage`` keeps checkpoints (a
    directory every machine reaches, ``s3://bucket``...). Returns ``None`` on follower ranks
    of a distributed run (they only help planning).
    """
    from stageplan import plan as run_plan
    from stageplan import resolve_storage
    from video3d.trainer._trainer import VideoTrainer

    dist = dist or DistContext()
    out_dir = Path(out)
    trainer = VideoTrainer(config, data, stream=stream, dist=dist, device=device)
    if not dist.is_main:
        trainer.follow()
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    store = resolve_storage(storage if storage else str(out_dir / "storage"),
                            checkpoints=checkpoints)
    info = {"config": config.to_dict(), **data.description, "storage": storage
            or str(out_dir / "storage"), **(run_info or {})}
    (out_dir / "run.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    try:
        result = run_plan(
            graph_for(config), trainer, storage=store, rule=rule_for(config), workers=workers,
            mode="max", progress=stream if stream is not None else False,
        )
    finally:
        trainer.finish()
    seconds["planning"] = time.monotonic() - started
    result.save(out_dir / "plan.json")
    job = JobResult(plan=result, seconds=seconds)
    if pictures:
        from video3d.trainer._plots import save_pictures

        job.pictures = save_pictures(result, out_dir, stream=stream)
    local = VideoTrainer(config, data, stream=stream, device=device)  # rank 0 alone from here
    if data.test:
        started = time.monotonic()
        job.planned = test_plan_checkpoint(local, result, store)
        seconds["test_planned"] = time.monotonic() - started
        if baseline and result.total_epochs > 0:
            started = time.monotonic()
            run_baselines(local, job, stream=stream)
            seconds["baselines"] = time.monotonic() - started
    job.bad_videos = data.bad_video_report()  # after every use of the videos
    (out_dir / "results.json").write_text(json.dumps(job.to_dict(), indent=1) + "\n",
                                          encoding="utf-8")
    return job


def run_baselines(trainer: VideoTrainer, job: JobResult, *, stream: TextIO | None = None) -> None:
    """Train every baseline with the plan's epochs and sampling; pick the grid's best on val.

    Fills ``job.baselines`` (test top-1/top-5 and ``val_metric``), ``job.baseline_plans`` and
    the val-selected pick (``job.baseline``, ``job.baseline_plan``, ``job.baseline_name``;
    ties go to the grid's order).
    """
    sampling, _ = _final_state(job.plan)
    schedules = baseline_schedules(trainer.config, job.plan.total_epochs)
    vals: dict[str, float] = {}
    for name, epochs in schedules.items():
        model, _ = trainer.train_epochs(sampling, epochs, key=f"baseline {name}")
        clip = epochs[-1][0]
        vals[name] = trainer.evaluate(model, sampling, clip)["metric"]
        test = trainer.final_evaluate(model, sampling, clip, desc=f"test {name}")
        job.baselines[name] = {**test, "val_metric": vals[name]}
        job.baseline_plans[name] = schedule_plan(epochs, sampling)
    grid = [n for n in HAND_TUNED_GRID if n in vals]
    pick = max(grid, key=lambda n: (vals[n], -grid.index(n)))
    job.baseline_name = pick
    job.baseline = job.baselines[pick]
    job.baseline_plan = job.baseline_plans[pick]
    if stream is not None:
        print(f"baselines ({job.plan.total_epochs} epochs, {sampling}; hand-tuned pick by "
              f"val: {pick}):", file=stream)
        for name, res in job.baselines.items():
            print(f"  {name:16s} val {vals[name]:.3f}  test top-1 {100 * res['top1']:.1f}%",
                  file=stream)
