"""Parallel planning speed-up: 1, 2 and 4 workers on the paper's extended graph.

Usage:
    python benchmarks/parallel_speedup.py [--quick] [--sleep S] [--storage journal|local]

Plans ``TransitionGraph.paper(clip_lengths=[16, 32, 64], learning_rates=[0.01, 0.001,
0.0001])`` (36 transitions) with a deterministic synthetic trainer that sleeps ``--sleep``
seconds per trained epoch, once per worker count, each on a fresh storage (an Optuna journal
file by default). Reports wall time, speed-up over one worker, and two bounds computed from the
epochs each transition actually ran (sleep time only):

* critical path: the longest chain of transitions (a transition starts once every incoming
  transition of its source has finished), the wall time with unlimited workers;
* bound(N) = work / max(critical path, work / N): the best speed-up N workers can reach.

The knee rule's curve fits cost real CPU on top of the sleeps; on a 2-core machine 4 workers
share 2 cores for that part, while the sleeps overlap freely, so a sleeping trainer still
shows the parallel structure of the graph. ``--quick`` uses a 2x2 one-sampling graph (7
transitions) and 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stageplan import KneeRule, LocalStorage, TransitionGraph, Trial, plan


def curve_value(params: dict[str, Any], start: float, epoch: int) -> float:
    """Deterministic curve: rises from ``start`` towards a state-dependent top, then decays."""
    top = start + 0.02 * math.log2(params["clip_length"]) + 0.5 * params["learning_rate"]
    speed = 1.5 + 20 * params["learning_rate"]
    return top - (top - start) * math.exp(-epoch / speed) - 0.002 * max(0, epoch - 4) ** 1.5


def make_trainer(sleep: float) -> Any:
    def run_transition(trial: Trial) -> None:
        start = 0.0
        if trial.init_checkpoint is not None:
            start = float(Path(trial.init_checkpoint).read_text())
        for epoch in trial.epochs():
            if epoch > 0:
                time.sleep(sleep)
            value = curve_value(trial.params, start, epoch)
            trial.report(value, save=lambda path, v=value: Path(path).write_text(repr(v)))

    return run_transition


def critical_path(
    graph: TransitionGraph, epochs: dict[tuple[str, str], int], sleep: float
) -> float:
    """Longest chain of transition durations under the planner's start rule.

    A transition out of state S starts once every incoming transition of S has finished; it
    lasts ``epochs * sleep``. Returns the time the last transition finishes with unlimited
    workers.
    """
    order = {s.name: i for i, s in enumerate(graph.topological_order())}
    finish: dict[tuple[str, str], float] = {}
    ready: dict[str, float] = {}
    for a, b in sorted(graph.edges, key=lambda e: order[e[0].name]):
        if a.name not in ready:
            incoming = [(p.name, a.name) for p in graph.predecessors(a)]
            ready[a.name] = max((finish[e] for e in incoming), default=0.0)
        finish[(a.name, b.name)] = ready[a.name] + epochs.get((a.name, b.name), 0) * sleep
    return max(finish.values(), default=0.0)


def run(graph: TransitionGraph, workers: int, sleep: float, storage: str, rule: KneeRule) -> Any:
    folder = tempfile.mkdtemp(prefix="stageplan-speedup-")
    try:
        if storage == "journal":
            from stageplan.integrations.optuna import OptunaStorage

            store: Any = OptunaStorage(f"journal:{os.path.join(folder, 'plan.log')}")
        else:
            store = LocalStorage(folder)
        t0 = time.perf_counter()
        result = plan(
            graph,
            make_trainer(sleep),
            storage=store,
            rule=rule,
            workers=workers,
            poll_interval=0.02,
            progress=False,
        )
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return wall, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graph, 1 and 2 workers")
    parser.add_argument("--sleep", type=float, default=None, help="seconds per trained epoch")
    parser.add_argument("--storage", choices=("journal", "local"), default="journal")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.quick:
        graph = TransitionGraph.paper(
            clip_lengths=[16, 32], learning_rates=[0.01, 0.001], samplings=("consecutive",)
        )
        counts, sleep = [1, 2], args.sleep if args.sleep is not None else 0.01
    else:
        graph = TransitionGraph.paper(
            clip_lengths=[16, 32, 64], learning_rates=[0.01, 0.001, 0.0001]
        )
        counts, sleep = [1, 2, 4], args.sleep if args.sleep is not None else 0.1
    rule = KneeRule(delay=3, max_epochs=15)
    rows: list[dict[str, Any]] = []
    base = None
    reference = None
    for n in counts:
        wall, result = run(graph, n, sleep, args.storage, rule)
        epochs = {r.edge: r.epochs for r in result.transitions}
        stages = [(s.state, s.epochs) for s in result.stages]
        if reference is None:
            reference = stages
        assert stages == reference, "the plan changed with the number of workers"
        work = sum(epochs.values()) * sleep
        crit = critical_path(graph, epochs, sleep)
        base = base or wall
        rows.append(
            {
                "workers": n,
                "wall_s": round(wall, 3),
                "speedup": round(base / wall, 2),
                "sleep_work_s": round(work, 3),
                "critical_path_s": round(crit, 3),
                "bound": round(work / max(crit, work / n), 2),
                "transitions": len(epochs),
                "epochs": sum(epochs.values()),
            }
        )
    print(
        f"graph: {len(graph.edges)} transitions, sleep {sleep}s/epoch, storage {args.storage}, "
        f"cpus {os.cpu_count()}, same plan for every worker count: yes"
    )
    print("| workers | wall s | speed-up | bound | sleep work s | critical path s | epochs |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['wall_s']:.2f} | {r['speedup']:.2f} | {r['bound']:.2f} | "
            f"{r['sleep_work_s']:.2f} | {r['critical_path_s']:.2f} | {r['epochs']} |"
        )
    out = {"sleep": sleep, "storage": args.storage, "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
