"""Storage cost per reported epoch: what ``save_progress`` costs on each back-end.

Usage:
    python benchmarks/storage_cost.py [--quick] [--epochs N] [--transitions K]

For each back-end, opens a plan on the paper's graph, then for ``K`` transitions: ``claim``,
``N`` calls of ``save_progress`` with the progress exactly as ``Trial.report`` builds it (the
curve so far, up to ``delay + 1 = 4`` kept checkpoint references, the start reference), then
``finish``. Reports the median and 90th percentile milliseconds per ``save_progress`` (= per
reported epoch: the planner calls it once per epoch, it is also the heartbeat) and the mean
``claim + finish`` cost per transition. No checkpoint bytes are written: only the storage's
own bookkeeping is measured.

Back-ends: ``LocalStorage`` (a directory; the core's reference, as a peer), and the Optuna
adapter on ``InMemoryStorage``, SQLite, a journal file and PostgreSQL (the URL is read from
``STAGEPLAN_TEST_POSTGRES_URL``; skipped with a printed reason when unset).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from stageplan import LocalStorage, Progress, TransitionGraph, TransitionRecord


def backends(folder: str) -> list[tuple[str, Any]]:
    import optuna
    from stageplan.integrations.optuna import OptunaStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[tuple[str, Any]] = [
        ("local directory (peer)", lambda: LocalStorage(os.path.join(folder, "local"))),
        ("optuna in-memory", lambda: OptunaStorage(optuna.storages.InMemoryStorage())),
        ("optuna sqlite", lambda: OptunaStorage(f"sqlite:///{folder}/plan.db")),
        ("optuna journal file", lambda: OptunaStorage(f"journal:{folder}/plan.log")),
    ]
    url = os.environ.get("STAGEPLAN_TEST_POSTGRES_URL")
    if url:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        out.append(("optuna postgresql", lambda: OptunaStorage(url, study_name=name)))
    else:
        print("postgresql: skipped (STAGEPLAN_TEST_POSTGRES_URL is unset)")
    return out


def measure(store: Any, graph: TransitionGraph, epochs: int, transitions: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    store.open(graph.to_dict(), {"mode": "max", "rule": {"delay": 3}})
    open_s = time.perf_counter() - t0
    per_epoch: list[float] = []
    per_transition: list[float] = []
    for a, b in graph.edges[:transitions]:
        edge = (a.name, b.name)
        t0 = time.perf_counter()
        store.claim(edge, worker="bench", stale_after=600)
        overhead = time.perf_counter() - t0
        values: list[float] = []
        kept: dict[int, str] = {}
        for epoch in range(epochs + 1):
            values.append(0.5 + 0.001 * epoch)
            if epoch > 0:
                kept[epoch] = f"checkpoints/{a.name}/{b.name}/epoch-{epoch:04d}"
                kept.pop(epoch - 4, None)  # the Trial keeps the last delay + 1 = 4
            progress = Progress(values=list(values), checkpoints=dict(kept), init_checkpoint="x")
            t0 = time.perf_counter()
            store.save_progress(edge, progress, worker="bench")
            per_epoch.append(time.perf_counter() - t0)
        record = TransitionRecord(
            source=a.name,
            target=b.name,
            status="complete",
            values=values,
            knee_epoch=epochs,
            checkpoint_epoch=epochs,
            value=values[-1],
            checkpoint=kept.get(epochs),
        )
        t0 = time.perf_counter()
        store.finish(record, worker="bench")
        per_transition.append(overhead + time.perf_counter() - t0)
    t0 = time.perf_counter()
    n_records = len(store.records())
    records_s = time.perf_counter() - t0
    per_epoch.sort()
    return {
        "epoch_median_ms": 1e3 * statistics.median(per_epoch),
        "epoch_p90_ms": 1e3 * per_epoch[int(0.9 * (len(per_epoch) - 1))],
        "claim_finish_ms": 1e3 * statistics.fmean(per_transition),
        "records_ms": 1e3 * records_s,
        "open_ms": 1e3 * open_s,
        "records": n_records,
        "calls": len(per_epoch),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs and transitions")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per transition")
    parser.add_argument("--transitions", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 60)
    transitions = args.transitions or (2 if args.quick else 6)
    graph = TransitionGraph.paper(clip_lengths=[16, 32, 64], learning_rates=[0.01, 0.001, 0.0001])
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stageplan-storage-cost-") as folder:
        for name, make in backends(folder):
            store = make()
            rows[name] = measure(store, graph, epochs, transitions)
            if name == "optuna postgresql":
                import optuna

                optuna.delete_study(study_name=store.study_name, storage=store._backend())
    print(f"{transitions} transitions x {epochs + 1} reported epochs per back-end")
    print("| back-end | ms / epoch (median) | ms / epoch (p90) | claim+finish ms | records() ms |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['epoch_median_ms']:.2f} | {r['epoch_p90_ms']:.2f} | "
            f"{r['claim_finish_ms']:.1f} | {r['records_ms']:.1f} |"
        )
    out = {"epochs": epochs, "transitions": transitions, "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
