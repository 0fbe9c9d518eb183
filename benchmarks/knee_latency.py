"""Decision latency of the knee rule: warm-started tracker vs a cold fit, per epoch.

For each rule (``evidence``: the default ``KneeRule(family)``; ``evidence-cosine``: the same
with ``schedule="cosine"`` over the run; ``paper``: ``KneeRule.paper(family)``), curve family
and run length n (50, 150, 300 epochs) a seeded noisy curve of that family (noise std 1 point
on a ~60-point rise, peak near epoch 170) is fed through
``rule.tracker()`` one epoch at a time. The figures are the wall time of the decisions at the
last ``--window`` epochs up to n (median and max), for the tracker (warm start from the previous
epoch's fit) and for ``rule.decide`` without ``init`` (cold start, every data-driven start tried)
on the same prefixes; ``ratio`` is cold median / warm median. ``warm cpu`` is the median
process CPU time of the warm decisions (less sensitive to a loaded machine than wall time).
Every decision is timed even after the rule would have stopped: a planner asks once per epoch,
and the fit is the same work.

Usage:
    python benchmarks/knee_latency.py [--quick] [--json OUT] [--window K]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from stageplan.knee import FAMILIES, KneeRule, curve

TRUTH: dict[str, tuple[float, ...]] = {
    "exp": (80.0, -60.0, -0.08, 0.12, -0.00035),
    "power": (85.0, -65.0, -0.6, 0.12, -0.00035),
    "multi_exp": (80.0, -40.0, -0.3, -20.0, -0.03, 0.12, -0.00035),
    "multi_power": (85.0, -40.0, -1.2, -25.0, -0.4, 0.12, -0.00035),
}
TARGET_MS = 2.0  # median warm decision of the default rule at 300 epochs, family "exp"
RULES = ("evidence", "evidence-cosine", "paper")


def make_rule(method: str, family: str, n: int) -> KneeRule:
    """``evidence``: ``KneeRule(family)``; ``evidence-cosine``: the same told that the LR
    anneals to 0 at ``n`` (``schedule="cosine"``, the quadratic-in-LR evidence); ``paper``:
    ``KneeRule.paper(family)``."""
    if method == "evidence":
        return KneeRule(family)
    if method == "evidence-cosine":
        return KneeRule(family, max_epochs=n, schedule="cosine")
    return KneeRule.paper(family)


def measure(
    family: str, n: int, window: int, seed: int = 0, method: str = "evidence"
) -> dict[str, Any]:
    """Time the decisions at epochs ``n - window + 1 .. n`` (warm tracker and cold decide)."""
    rng = np.random.default_rng(seed)
    values = curve(family, TRUTH[family], np.arange(n + 1, dtype=np.float64))
    values = values + rng.standard_normal(n + 1)
    rule = make_rule(method, family, n)
    tracker = rule.tracker()
    first = max(n - window + 1, rule.delay)
    warm: list[float] = []
    warm_cpu: list[float] = []
    for t in range(n + 1):
        start, cpu = time.perf_counter(), time.process_time()
        decision = tracker.update(float(values[t]))
        elapsed = time.perf_counter() - start
        if t >= first:
            warm.append(elapsed)
            warm_cpu.append(time.process_time() - cpu)
    cold: list[float] = []
    for t in range(first, n + 1):
        start = time.perf_counter()
        rule.decide(values[: t + 1])
        cold.append(time.perf_counter() - start)
    warm_median = statistics.median(warm) * 1e3
    cold_median = statistics.median(cold) * 1e3
    return {
        "rule": method,
        "family": family,
        "epochs": n,
        "decisions_timed": len(warm),
        "warm_median_ms": warm_median,
        "warm_cpu_median_ms": statistics.median(warm_cpu) * 1e3,
        "warm_max_ms": max(warm) * 1e3,
        "cold_median_ms": cold_median,
        "cold_max_ms": max(cold) * 1e3,
        "cold_over_warm": cold_median / warm_median,
        "last_reason": decision.reason,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 epochs, window 3")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    parser.add_argument("--window", type=int, default=20, help="epochs timed per run length")
    args = parser.parse_args(argv)
    lengths = (50,) if args.quick else (50, 150, 300)
    window = 3 if args.quick else args.window
    # import scipy.optimize and warm caches outside the timed region
    KneeRule().decide(curve("exp", TRUTH["exp"], np.arange(12.0)))

    # the rules take turns on each family and length, so both see the same machine load
    rows = [
        measure(f, n, window, method=m) for f in sorted(FAMILIES) for n in lengths for m in RULES
    ]
    header = (
        f"{'rule':<15} {'family':<12} {'epochs':>6} {'warm med ms':>11} {'warm cpu ms':>11} "
        f"{'warm max ms':>11} {'cold med ms':>11} {'cold max ms':>11} {'cold/warm':>9}"
    )
    print(header, flush=True)
    for r in rows:
        print(
            f"{r['rule']:<15} {r['family']:<12} {r['epochs']:>6} {r['warm_median_ms']:>11.2f} "
            f"{r['warm_cpu_median_ms']:>11.2f} {r['warm_max_ms']:>11.2f} "
            f"{r['cold_median_ms']:>11.2f} {r['cold_max_ms']:>11.2f} "
            f"{r['cold_over_warm']:>9.1f}"
        )
    target = [
        r
        for r in rows
        if r["rule"] == "evidence" and r["family"] == "exp" and r["epochs"] == max(lengths)
    ]
    met = all(r["warm_median_ms"] <= TARGET_MS for r in target)
    print(
        f"target: default rule, exp, median warm decision at {max(lengths)} epochs "
        f"<= {TARGET_MS} ms: "
        f"{'met' if met else 'MISSED'}"
    )
    if args.json is not None:
        payload = {
            "benchmark": "knee_latency",
            "quick": args.quick,
            "window": window,
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
