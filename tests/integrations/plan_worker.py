"""A planning worker for the multi-process tests: ``python plan_worker.py CONFIG.json``.

It runs ``stageplan.plan`` against an Optuna storage with a deterministic synthetic trainer
that sleeps a little per epoch, writes a checkpoint every epoch, checks the checkpoint it
resumes from, and appends one line per epoch to a log ("edge epoch pid time").
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

from stageplan.integrations.optuna import OptunaStorage

from stageplan import KneeRule, TransitionGraph, Trial, plan


def graph() -> TransitionGraph:
    return TransitionGraph.paper(
        clip_lengths=[16, 32], learning_rates=[0.1, 0.01], samplings=("consecutive",)
    )


def curve(params: dict[str, Any], start: float, epoch: int) -> float:
    """A rising curve with a peak near epoch 3; its height depends on the target state."""
    bonus = 0.05 if params["learning_rate"] < 0.05 else 0.0
    top = start + 0.1 * params["clip_length"] / 16 + bonus
    return top - (top - start) * math.exp(-epoch / 1.2) - 0.01 * max(0, epoch - 3) ** 1.5


def make_fn(log_path: str | None, sleep: float):
    def fn(trial: Trial) -> None:
        label = f"{trial.source.name}->{trial.target.name}"
        start = 0.0
        if trial.init_checkpoint is not None:
            with open(trial.init_checkpoint) as fh:
                saved = json.load(fh)
            if trial.resumed:
                assert (saved["edge"], saved["epoch"]) == (label, trial.epoch), saved
                start = saved["start"]
            else:
                start = saved["value"]
        for epoch in trial.epochs():
            if epoch > 0:
                time.sleep(sleep)
            value = curve(trial.params, start, epoch)
            if log_path is not None:
                with open(log_path, "a") as fh:
                    fh.write(f"{label} {epoch} {os.getpid()} {time.time():.4f}\n")

            def save(path: str, epoch: int = epoch, value: float = value) -> None:
                with open(path, "w") as fh:
                    json.dump({"edge": label, "epoch": epoch, "value": value, "start": start}, fh)

            trial.report(value, save=save)

    return fn


RULE = KneeRule(delay=3, max_epochs=6)


def run_transition(trial: Trial) -> None:
    """The trainer as ``stageplan plan --fn plan_worker:run_transition`` loads it.

    Configured through the environment: ``PLAN_WORKER_LOG`` (the epoch log) and
    ``PLAN_WORKER_SLEEP`` (seconds per epoch).
    """
    fn = make_fn(os.environ.get("PLAN_WORKER_LOG"), float(os.environ.get("PLAN_WORKER_SLEEP", 0)))
    fn(trial)


def main(config_path: str) -> None:
    with open(config_path) as fh:
        cfg = json.load(fh)
    store = OptunaStorage(cfg["url"], study_name=cfg["study"], **cfg.get("storage_kwargs", {}))
    if not cfg.get("check_pids", True):
        store._check_local_pids = False  # take over by heartbeat age alone
    if "start_at" in cfg:  # a fleet started at one instant (e.g. on a new database)
        time.sleep(max(0.0, cfg["start_at"] - time.time()))
    plan(
        graph(),
        make_fn(cfg.get("log"), cfg.get("sleep", 0.05)),
        storage=store,
        rule=RULE,
        stale_after=cfg.get("stale_after", 600.0),
        poll_interval=0.05,
        progress=False,
    )


if __name__ == "__main__":
    main(sys.argv[1])
