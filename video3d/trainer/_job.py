"""The planning job: plan, picture, evaluate the plan, and compare with a hand-tuned schedule."""

from __future__ import annotations

import json
import time
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
    "JobResult",
    "graph_for",
    "hand_tuned_plan",
    "rule_for",
    "run_planning",
    "test_plan_checkpoint",
]


def graph_for(config: TrainConfig) -> TransitionGraph:
    """The paper's transition graph over the preset's clip lengths, LRs and samplings."""
    from stageplan import TransitionGraph

    return TransitionGraph.paper(
        clip_lengths=list(config.clip_lengths), learning_rates=list(config.learning_rates),
        samplings=tuple(config.samplings), extended=config.extended,
    )


def rule_for(config: TrainConfig) -> KneeRule:
    """The knee rule of the preset (delay, family, epoch cap)."""
    from stageplan import KneeRule

    return KneeRule(config.knee_family, delay=config.knee_delay, max_epochs=config.max_epochs)


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


@dataclass
class JobResult:
    """What :func:`run_planning` produced."""

    plan: Plan
    planned: dict[str, float] | None = None
    baseline: dict[str, float] | None = None
    baseline_plan: Plan | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    pictures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned_test": self.planned,
            "hand_tuned_test": self.baseline,
            "hand_tuned_schedule": None if self.baseline_plan is None
            else self.baseline_plan.schedule_table(),
            "plan_schedule": self.plan.schedule_table(),
            "total_epochs": self.plan.total_epochs,
            "seconds": self.seconds,
            "pictures": self.pictures,
        }


def _final_state(plan: Plan) -> tuple[str, int]:
    params = plan.stages[-1].params
    return str(params.get("sampling", "consecutive")), int(params["clip_length"])  # type: ignore[arg-type]


def test_plan_checkpoint(trainer: VideoTrainer, plan: Plan, storage: Any) -> dict[str, float]:
    """Final-protocol accuracy of the plan's final checkpoint."""
    if plan.final_checkpoint is None:
        raise ValueError("the plan has no final checkpoint to evaluate")
    path = storage.fetch_checkpoint(plan.final_checkpoint)
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
    workers: int = 1,
    stream: TextIO | None = None,
    dist: DistContext | None = None,
    device: str | None = None,
    baseline: bool = True,
    pictures: bool = True,
    run_info: dict[str, Any] | None = None,
) -> JobResult | None:
    """Plan ``config``'s graph on ``data``; write ``plan.json``, pictures and ``results.json``.

    Returns ``None`` on follower ranks of a distributed run (they only help planning).
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
    store = resolve_storage(storage if storage else str(out_dir / "storage"))
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
            sampling, _ = _final_state(result)
            job.baseline_plan = hand_tuned_plan(config, result.total_epochs, sampling)
            model = local.train_schedule(job.baseline_plan, name="hand-tuned")
            last = job.baseline_plan.stages[-1].params
            job.baseline = local.final_evaluate(
                model, sampling, int(last["clip_length"]),  # type: ignore[arg-type]
                desc="test hand-tuned",
            )
            seconds["hand_tuned"] = time.monotonic() - started
    (out_dir / "results.json").write_text(json.dumps(job.to_dict(), indent=1) + "\n",
                                          encoding="utf-8")
    return job
