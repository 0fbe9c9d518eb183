"""Optuna pruners vs the knee rule on studies of real learning curves.

A *study* is a group of real curves on the same task and budget (``_curves.studies``): the
NAS-Bench-201 curves (cosine, 200 epochs), the CIFAR-10 optimizer runs per architecture
(200 epochs, LR drop at 151), the CIFAR-100 AdaMod runs per architecture (300 epochs, drops at
151 and 226) and the PTB LSTM runs per depth (perplexity, drops at 101 and 146). Each curve is
replayed as one trial of a real in-memory Optuna study, in a random order per seed: the trial
reports ``values[i]`` at step ``i`` and asks ``should_prune()`` after every report.

Pruners: none (``NopPruner``), ``MedianPruner()``, ``PercentilePruner(25.0)``,
``SuccessiveHalvingPruner()``, ``HyperbandPruner(min_resource=1, max_resource=<epochs>)``,
``ThresholdPruner`` (see below), ``PatientPruner(None, patience=p)``, and
:class:`stageplan.integrations.optuna.KneePruner`: ``knee`` (the default evidence rule,
``KneePruner()``),
``knee_max_epochs`` (the same told the trial's step budget), ``knee_schedule`` (the same
also told the trials' LR schedule: ``schedule="cosine"`` on the NB201 study, else as
``knee_max_epochs``), ``knee_paper`` (the paper's rule,
the pruner's default before the evidence rule) and ``knee_guarded`` (the guarded paper rule).

**Split by source repository**: the ``study_split`` column is ``tune`` for studies whose
curves come from the evidence rule's tuning source (``_curves.TUNE_SOURCES``: the
Adabelief-Optimizer CIFAR-10 and PTB runs) and ``held_out`` for the rest; a ``cifar10-<arch>``
study mixes Adabelief-Optimizer curves with held-out AdaBound/ACProp ones (``mixed``).

*Kept model* of a trial, by pruner:

- Optuna's pruners have no notion of a checkpoint; we grant them the best checkpoint so far
  (the best value the trial reported before it stopped or completed), which needs a
  save-the-best callback. This is the optimistic reading.
- ``KneePruner``: the checkpoint its rule keeps, :func:`stageplan.integrations.optuna.knee_value`
  (the value at the knee epoch; the best value so far while the rule cannot fit).

The study keeps the best kept model over its trials; ``regret`` = the study's true best (the best
value of any curve at any epoch) minus that, in points (accuracy %) or perplexity.
``ThresholdPruner`` is given a threshold in hindsight: the 25th percentile (the 75th for
perplexity) of the study's values at step 20, with ``n_warmup_steps=20``.

The KneePruner is stateless and refits every trial from scratch at every step. As its decision
depends only on the curve prefix, the replay memoises it per (curve, step) across seeds; the
decisions are those of ``KneePruner.decide``.

Usage::

    python benchmarks/stopping_studies.py                 # all 198 NB201 curves, 5 seeds
    python benchmarks/stopping_studies.py --quick         # smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _curves  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# the guarded paper rule of stopping_stages.py (accuracy in %; perplexity uses the same numbers)
ROBUST = {"max_noise": 1.0, "patience": 20, "min_delta": 0.5, "smooth": 5, "keep": "best"}


def _knee_pruner_class() -> type:
    from stageplan.integrations.optuna import KneePruner

    class ReplayKneePruner(KneePruner):  # type: ignore[misc]
        """``KneePruner(rule=rule)``, memoising ``decide`` per (curve, step)."""

        def __init__(self, rule: Any, cache: dict[Any, Any]) -> None:
            super().__init__(rule=rule)
            self._cache = cache

        def decide(self, study: Any, trial: Any) -> Any:
            key = (trial.user_attrs["curve"], len(trial.intermediate_values), repr(self._rule))
            if key not in self._cache:
                self._cache[key] = super().decide(study, trial)
            return self._cache[key]

    return ReplayKneePruner


def pruners(
    curves: Sequence[_curves.Curve], quick: bool, cache: dict[Any, Any]
) -> dict[str, Callable[[], Any]]:
    import optuna
    from optuna import pruners as P

    from stageplan.knee import KneeRule

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    mode = curves[0].mode
    n_epochs = max(len(c.values) for c in curves)
    at20 = sorted(c.values[min(20, len(c.values) - 1)] for c in curves)
    q = at20[len(at20) // 4] if mode == "max" else at20[(3 * len(at20)) // 4]
    threshold = {"lower": q} if mode == "max" else {"upper": q}
    knee = _knee_pruner_class()
    schedule = "cosine" if all(c.cosine for c in curves) else "constant"
    out: dict[str, Callable[[], Any]] = {
        "none": P.NopPruner,
        "median": P.MedianPruner,
        "percentile25": lambda: P.PercentilePruner(25.0),
        "successive_halving": P.SuccessiveHalvingPruner,
        "hyperband": lambda: P.HyperbandPruner(min_resource=1, max_resource=n_epochs),
        "threshold_hindsight": lambda: P.ThresholdPruner(**threshold, n_warmup_steps=20),
        "patient10": lambda: P.PatientPruner(None, patience=10),
        "patient20": lambda: P.PatientPruner(None, patience=20),
        "knee": lambda: knee(KneeRule(), cache),
        "knee_max_epochs": lambda: knee(KneeRule(max_epochs=n_epochs - 1), cache),
        "knee_schedule": lambda: knee(
            KneeRule(max_epochs=n_epochs - 1, schedule=schedule), cache
        ),
        "knee_paper": lambda: knee(KneeRule.paper("exp", delay=10), cache),
        "knee_guarded": lambda: knee(KneeRule.paper("exp", delay=10, **ROBUST), cache),
    }
    if quick:
        keep = ("none", "median", "hyperband", "patient10", "knee", "knee_paper", "knee_guarded")
        out = {k: v for k, v in out.items() if k in keep}
    return out


def replay(
    curves: Sequence[_curves.Curve], make_pruner: Callable[[], Any], seed: int, knee: bool
) -> dict[str, Any]:
    """Replay ``curves`` as trials of one study in a seeded random order."""
    import optuna
    from optuna.trial import TrialState
    from stageplan.integrations.optuna import knee_value

    mode = curves[0].mode
    sign = 1.0 if mode == "max" else -1.0
    order = list(curves)
    random.Random(seed).shuffle(order)
    pruner = make_pruner()
    study = optuna.create_study(
        direction="maximize" if mode == "max" else "minimize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    spent = 0
    kept_values: list[float] = []
    completed = 0
    for c in order:
        trial = study.ask()
        trial.set_user_attr("curve", c.id)
        last = len(c.values) - 1
        pruned = False
        for step, v in enumerate(c.values):
            trial.report(v, step)
            spent += 1
            if step < last and trial.should_prune():
                pruned = True
                break
        if knee:
            value = knee_value(study, trial, pruner=pruner)
            assert value is not None
        else:
            seen = c.values[: step + 1]
            value = seen[_curves.best_index(seen, mode)]
        kept_values.append(value)
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            completed += 1
            study.tell(trial, value)
    true_best = max(sign * v for c in curves for v in c.values)
    best_kept = max(sign * v for v in kept_values)
    return {
        "epochs": spent,
        "full_epochs": sum(len(c.values) for c in curves),
        "completed": completed,
        "regret": true_best - best_kept,
    }


def run_study(
    job: tuple[str, list[_curves.Curve], int, bool, tuple[str, ...]],
) -> list[dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, curves, seeds, quick, names = job
    cache: dict[Any, Any] = {}
    rows = []
    for pname, make in pruners(curves, quick, cache).items():
        if not _curves.selected(pname, names):
            continue
        start = time.perf_counter()
        for seed in range(seeds):
            r = replay(curves, make, seed, knee=pname.startswith("knee"))
            splits = sorted({_curves.split_of(c.source_repo) for c in curves})
            rows.append(
                {
                    "study": name,
                    "pruner": pname,
                    "seed": seed,
                    "trials": len(curves),
                    "splits": splits,
                    **r,
                }
            )
        rows[-1]["seconds_all_seeds"] = round(time.perf_counter() - start, 2)
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["study"], r["pruner"]), []).append(r)
    out = []
    for (study, pruner), rs in groups.items():
        full = rs[0]["full_epochs"]
        splits = set(rs[0]["splits"])
        epochs = statistics.fmean(r["epochs"] for r in rs)
        out.append(
            {
                "study": study,
                "study_split": splits.pop() if len(splits) == 1 else "mixed",
                "pruner": pruner,
                "trials": rs[0]["trials"],
                "seeds": len(rs),
                "mean_epochs": round(epochs, 1),
                "full_epochs": full,
                "saved_fraction": round(1 - epochs / full, 4),
                "mean_regret": round(statistics.fmean(r["regret"] for r in rs), 4),
                "max_regret": round(max(r["regret"] for r in rs), 4),
                "mean_completed": round(statistics.fmean(r["completed"] for r in rs), 1),
            }
        )
    return out


def select(quick: bool, nb201_every: int) -> dict[str, list[_curves.Curve]]:
    groups = _curves.studies(_curves.load_curves())
    groups["nb201"] = groups["nb201"][:: max(nb201_every, 1)]
    if quick:
        picked = {
            "nb201": groups["nb201"][:6],
            "cifar10-resnet": groups["cifar10-resnet"][:5],
            "ptb-2layer": groups["ptb-2layer"][:3],
        }
        # short curves keep the smoke run fast (PTB keeps its first LR drop, at 101)
        return {
            k: [_truncate(c, 60 if k != "ptb-2layer" else 120) for c in v]
            for k, v in picked.items()
        }
    return groups


def _truncate(c: _curves.Curve, n: int) -> _curves.Curve:
    from dataclasses import replace

    drops = tuple(d for d in c.lr_drop_epochs if d <= n)
    return replace(c, values=c.values[:n], lr_drop_epochs=drops)


def plot(summary: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = sorted({r["study"] for r in summary})
    cols = 3
    nrows = math.ceil(len(studies) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.6 * nrows), squeeze=False)
    for ax, study in zip(axes.flat, studies, strict=False):
        for r in summary:
            if r["study"] != study:
                continue
            color = "tab:red" if r["pruner"].startswith("knee") else "tab:blue"
            ax.scatter(100 * r["saved_fraction"], r["mean_regret"], c=color, s=30)
            ax.annotate(r["pruner"], (100 * r["saved_fraction"], r["mean_regret"]), fontsize=6)
        unit = "ppl" if study.startswith("ptb") else "points"
        ax.set_title(study, fontsize=9)
        ax.set_xlabel("% of study epochs saved")
        ax.set_ylabel(f"regret of best kept model ({unit})")
    for ax in list(axes.flat)[len(studies):]:
        ax.axis("off")
    fig.suptitle("Pruners on studies of real curves (mean over seeds; red: knee rule)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--nb201-every", type=int, default=1, help="use every n-th NB201 curve")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=None, help="summary JSON (default: results/)")
    parser.add_argument("--plot", type=Path, default=None, help="Pareto PNG")
    parser.add_argument(
        "--pruners", default="", help="comma-separated pruner names or shell patterns (all)"
    )
    parser.add_argument(
        "--studies", default="", help="comma-separated study names or shell patterns (all)"
    )
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    names = tuple(x for x in args.pruners.split(",") if x)
    study_names = tuple(x for x in args.studies.split(",") if x)
    stem = "stopping_studies_quick" if args.quick else "stopping_studies"
    out = args.out or RESULTS / f"{stem}.json"
    png = args.plot or (None if args.quick else RESULTS / f"{stem}.png")

    groups = select(args.quick, args.nb201_every)
    if study_names:
        groups = {k: v for k, v in groups.items() if _curves.selected(k, study_names)}
        if not groups:
            parser.error(f"--studies {list(study_names)} match no study")
    jobs = sorted(
        ((name, cs, seeds, args.quick, names) for name, cs in groups.items()),
        key=lambda j: -sum(len(c.values) for c in j[1]),
    )
    start = time.perf_counter()
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            chunks = pool.map(run_study, jobs, chunksize=1)
    else:
        chunks = [run_study(j) for j in jobs]
    rows = [r for chunk in chunks for r in chunk]
    elapsed = time.perf_counter() - start
    summary = summarize(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/stopping_studies.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "seeds": seeds,
        "nb201_every": args.nb201_every,
        "seconds": round(elapsed, 1),
        "workers": args.workers,
        "guarded_knee": ROBUST,
        "tune_sources": list(_curves.TUNE_SOURCES),
    }
    out.write_text(json.dumps({"meta": meta, "summary": summary, "runs": rows}, indent=1) + "\n")
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    if png is not None:
        plot(summary, png)
    print(
        f"{'study':18s} {'split':8s} {'pruner':20s} {'saved%':>7s} {'regret':>7s} "
        f"{'complete':>8s}"
    )
    for r in summary:
        print(
            f"{r['study']:18s} {r['study_split']:8s} {r['pruner']:20s} "
            f"{100 * r['saved_fraction']:7.1f} "
            f"{r['mean_regret']:7.2f} {r['mean_completed']:8.1f}"
        )
    print(f"{len(groups)} studies, {seeds} seeds, {elapsed:.1f} s -> {out}")
    return summary


if __name__ == "__main__":
    main()
