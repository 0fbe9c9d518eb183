"""Stopping rules on the stages of real learning curves: epochs saved vs regret.

Every stage of every real curve in ``benchmarks/data/real_curves.json`` (the epochs between two
learning-rate drops; epoch 0 is the value just before the stage, see ``_curves.py``) is replayed
epoch by epoch under each rule:

- ``evidence``: ``KneeRule()``, the default evidence rule (exp family, delay 10, ``risk`` 0.2,
  ``tolerance`` 1, keeps the best observed epoch); ``evidence-<option>`` rows change one option;
- ``knee-<family>-d<delay>``: ``KneeRule.paper(family, delay)`` (the paper's rule) with each
  curve family at delay 10 and the exp family at delay 5/20; it keeps its knee epoch ``t*``;
- ``knee-guarded`` and the other ``knee-<options>`` rows: the paper's rule (exp, delay 10) with
  the guard options of :class:`~stageplan.knee.KneeRule` (``max_noise``, ``patience``,
  ``min_delta``, ``smooth``, ``keep``);
- ``oracle-<tolerance>``: the hindsight oracle, a reference that no rule can reach: stop at the
  first epoch whose best-so-far is within ``tolerance`` of the stage's best, keep that best;
- ``patient-p<p>``: Optuna's ``PatientPruner(None, patience=p)`` on a real in-memory study; it
  stops once none of the last ``p + 1`` values reaches the best before them, and keeps the best
  checkpoint so far. (Wrapping a ``NopPruner`` instead of ``None`` never prunes: PatientPruner
  defers to the wrapped pruner once patience runs out.);
- ``plateau-p<p>-th<threshold>``: the plateau test of ``torch.optim.lr_scheduler.
  ReduceLROnPlateau`` (``threshold_mode="rel"``, ``cooldown=0``): stop when it would lower the
  learning rate, keep the best checkpoint so far.

Every rule is bounded by the stage: one that has not stopped by its last epoch spends the whole
stage. Per stage: ``spent`` (epochs trained), ``saved = length - spent`` and ``regret`` = best
value of the stage minus the value of the kept checkpoint (perplexity: kept minus best), in
points (accuracy %) or perplexity. For the knee rules ``regret_best`` is the regret had the rule
kept the best observed checkpoint at its stop instead of ``t*``.

**Split by source repository.** The evidence rule's defaults were chosen on the stages of
``--tune-sources`` (default: ``juntang-zhuang/Adabelief-Optimizer``, CIFAR-10 and PTB); every
other source (AdaBound, ACProp, AdaMod, NAS-Bench-201, DeepOBS) is held out, and each summary
row is given per split (``tune``, ``held_out``, and ``all``). The held-out rows are the results.

Usage::

    python benchmarks/stopping_stages.py                 # all stages (NB201: every 3rd curve)
    python benchmarks/stopping_stages.py --nb201-every 1 # all 198 NB201 curves (slower)
    python benchmarks/stopping_stages.py --quick         # smoke run (a few stages and rules)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _curves  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = ("exp", "power", "multi_power", "multi_exp")
DELAYS = (5, 10, 20)
MIN_STAGE = 20  # shorter stages (a 2- and a 16-epoch PTB tail) are left out
PAPER: dict[str, Any] = {"method": "paper"}
SCHEDULE_HINT = "<the stage's schedule>"  # placeholder: replaced per stage by its schedule
GUARD: dict[str, Any] = {
    **PAPER, "max_noise": 1.0, "patience": 20, "min_delta": 0.5, "smooth": 5, "keep": "best"
}
ROBUST: dict[str, dict[str, Any]] = {
    "knee-guarded": GUARD,  # the guarded paper rule (accuracy in %)
    "knee-guarded-keepknee": {**GUARD, "keep": "knee"},
    "knee-best": {**PAPER, "keep": "best"},
    "knee-noise0.5-best": {**PAPER, "max_noise": 0.5, "keep": "best"},
}
# The evidence rule (``KneeRule()``, the default) and settings around it.
EVIDENCE: dict[str, dict[str, Any]] = {
    "evidence": {},
    "evidence-keepauto": {"keep": "auto"},
    "evidence-risk0.1": {"risk": 0.1},
    "evidence-risk0.15": {"risk": 0.15},
    "evidence-tol0.75": {"tolerance": 0.75},
    # told the stage's LR schedule: ``schedule="cosine"`` on a cosine stage, else the default
    "evidence-schedule": {"schedule": SCHEDULE_HINT},
}
ORACLE_TOLERANCES = (0.1, 0.2, 0.5, 1.0)

@dataclass(frozen=True)
class Outcome:
    rule: str
    stage: str
    source: str
    split: str
    kind: str
    unit: str
    length: int
    spent: int
    saved: int
    kept: int
    regret: float
    regret_best: float


# -- rules: each maps (values, mode, the stage's LR schedule) to (epochs spent, kept epoch) -----


Rule = Callable[[Sequence[float], str, str], tuple[int, int]]


def knee_rule(family: str, delay: int, **options: Any) -> Rule:
    """``KneeRule(family, delay, max_epochs=<stage>, **options)`` (``method`` in options).

    An option equal to ``SCHEDULE_HINT`` is given the replayed stage's LR schedule
    (``"cosine"`` on a cosine stage, else ``"constant"``).
    """
    from stageplan.knee import KneeRule

    def run(values: Sequence[float], mode: str, schedule: str) -> tuple[int, int]:
        given = {k: schedule if v == SCHEDULE_HINT else v for k, v in options.items()}
        rule = KneeRule(family, delay=delay, max_epochs=len(values) - 1, **given)
        d = rule.replay(values, mode=mode)
        assert d.stop and d.knee_epoch is not None, "max_epochs must stop the rule"
        return d.epoch, d.knee_epoch

    return run


def patient_rule(patience: int) -> Rule:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    def run(values: Sequence[float], mode: str, schedule: str) -> tuple[int, int]:
        # wrapped_pruner=None: with a NopPruner inside, PatientPruner asks it and never prunes.
        pruner = optuna.pruners.PatientPruner(None, patience=patience)
        direction = "maximize" if mode == "max" else "minimize"
        study = optuna.create_study(direction=direction, pruner=pruner)
        trial = study.ask()
        last = len(values) - 1
        for t, v in enumerate(values):
            trial.report(v, t)
            if t < last and trial.should_prune():
                return t, _curves.best_index(values[: t + 1], mode)
        return last, _curves.best_index(values, mode)

    return run


def oracle_rule(tolerance: float) -> Rule:
    """The hindsight oracle (see ``_curves.oracle_stop``): a reference, not a rule."""

    def run(values: Sequence[float], mode: str, schedule: str) -> tuple[int, int]:
        t = _curves.oracle_stop(values, mode, tolerance)
        return t, _curves.best_index(values[: t + 1], mode)

    return run


def plateau_stop(values: Sequence[float], mode: str, patience: int, threshold: float) -> int:
    """Epoch at which ``ReduceLROnPlateau`` (rel mode, no cooldown) would lower the LR, else last.

    The scheduler is stepped with ``values[0]``, ``values[1]``, ...; it acts once the number of
    epochs without an improvement (``a > best * (1 + threshold)`` for ``max``,
    ``a < best * (1 - threshold)`` for ``min``) exceeds ``patience``.
    """
    best = -math.inf if mode == "max" else math.inf
    bad = 0
    for t, v in enumerate(values):
        better = v > best * (1 + threshold) if mode == "max" else v < best * (1 - threshold)
        if better:
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            return t
    return len(values) - 1


def plateau_rule(patience: int, threshold: float) -> Rule:
    def run(values: Sequence[float], mode: str, schedule: str) -> tuple[int, int]:
        t = plateau_stop(values, mode, patience, threshold)
        return t, _curves.best_index(values[: t + 1], mode)

    return run


def rules(quick: bool) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    families = ("exp",) if quick else FAMILIES
    delays = (10,) if quick else DELAYS
    for fam in families:
        for delay in delays:
            if delay != 10 and fam != "exp":
                continue  # the delay matters, the family hardly does (earlier run)
            out[f"knee-{fam}-d{delay}"] = knee_rule(fam, delay, **PAPER)
    robust = dict(list(ROBUST.items())[:1]) if quick else ROBUST
    for name, options in robust.items():
        out[name] = knee_rule("exp", 10, **options)
    evidence = dict(list(EVIDENCE.items())[:1]) if quick else EVIDENCE
    for name, options in evidence.items():
        out[name] = knee_rule("exp", 10, **options)
    for tol in (0.2,) if quick else ORACLE_TOLERANCES:
        out[f"oracle-{tol:g}"] = oracle_rule(tol)
    for p in (10,) if quick else (5, 10, 20):
        out[f"patient-p{p}"] = patient_rule(p)
    for p in (10,) if quick else (5, 10, 20):
        for th in (1e-4,) if quick else (1e-4, 1e-3):
            out[f"plateau-p{p}-th{th:g}"] = plateau_rule(p, th)
    return out


# -- replay ------------------------------------------------------------------------------------


def _unit(stage: _curves.Stage) -> str:
    return "ppl" if "perplexity" in stage.metric else "acc"


_QUICK = False
_TUNE: tuple[str, ...] = _curves.TUNE_SOURCES
_RULES: tuple[str, ...] = ()


def selected_rules(quick: bool, patterns: Sequence[str]) -> dict[str, Rule]:
    """The rules whose names match one of the shell-style ``patterns`` (all when empty).

    Raises:
        ValueError: A pattern matches no rule (the message lists the rule names).
    """
    every = rules(quick)
    if not patterns:
        return every
    unmatched = [p for p in patterns if not any(_curves.selected(k, [p]) for k in every)]
    if unmatched:
        raise ValueError(f"--rules {unmatched} match no rule; the rules are {sorted(every)}.")
    return {k: v for k, v in every.items() if _curves.selected(k, patterns)}


def _replay(stage: _curves.Stage) -> list[Outcome]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    schedule = "cosine" if stage.kind == "cosine" else "constant"
    out = []
    for name, run in selected_rules(_QUICK, _RULES).items():
        spent, kept = run(stage.values, stage.mode, schedule)
        at_stop = _curves.best_index(stage.values[: spent + 1], stage.mode)
        out.append(
            Outcome(
                rule=name,
                stage=stage.key,
                source=stage.source_repo,
                split=_curves.split_of(stage.source_repo, _TUNE),
                kind=stage.kind,
                unit=_unit(stage),
                length=stage.length,
                spent=spent,
                saved=stage.length - spent,
                kept=kept,
                regret=_curves.regret(stage.values, kept, stage.mode),
                regret_best=_curves.regret(stage.values, at_stop, stage.mode),
            )
        )
    return out


def _init(
    quick: bool, tune: tuple[str, ...] = _curves.TUNE_SOURCES, names: tuple[str, ...] = ()
) -> None:
    global _QUICK, _TUNE, _RULES
    _QUICK = quick
    _TUNE = tune
    _RULES = names


def select_stages(quick: bool, nb201_every: int) -> list[_curves.Stage]:
    curves = _curves.load_curves()
    nb201 = [c for c in curves if c.group == "nb201_mintal"]
    keep_nb = {c.id for c in nb201[:: max(nb201_every, 1)]}
    stages = [
        s
        for c in curves
        if c.group != "nb201_mintal" or c.id in keep_nb
        for s in _curves.stages_of(c)
        if s.length >= MIN_STAGE
    ]
    if quick:
        picked: list[_curves.Stage] = []
        for kind in ("post_drop", "first", "cosine"):
            for unit in ("acc", "ppl"):
                for split in ("tune", "held_out"):
                    picked += [
                        s
                        for s in stages
                        if s.kind == kind
                        and _unit(s) == unit
                        and _curves.split_of(s.source_repo) == split
                    ][:1]
        # a smoke run: keep the long cosine stage short
        stages = [
            s if s.kind != "cosine" else _curves.Stage(**{**asdict(s), "values": s.values[:60]})
            for s in picked
        ]
    return stages


def summarize(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.rule, o.split, o.kind, o.unit), []).append(o)
        groups.setdefault((o.rule, "all", o.kind, o.unit), []).append(o)
    rows = []
    for (rule, split, kind, unit), os_ in sorted(groups.items()):
        regrets = [o.regret for o in os_]
        rows.append(
            {
                "rule": rule,
                "split": split,
                "kind": kind,
                "unit": unit,
                "stages": len(os_),
                "sources": len({o.source for o in os_}),
                "median_length": statistics.median(o.length for o in os_),
                "median_saved": statistics.median(o.saved for o in os_),
                "median_saved_fraction": statistics.median(o.saved / o.length for o in os_),
                "mean_saved": statistics.fmean(o.saved for o in os_),
                "saved_fraction": sum(o.saved for o in os_) / sum(o.length for o in os_),
                "median_regret": statistics.median(regrets),
                "mean_regret": statistics.fmean(regrets),
                "p75_regret": _quantile(regrets, 0.75),
                "max_regret": max(regrets),
                "median_regret_best": statistics.median(o.regret_best for o in os_),
                "share_regret_gt_0.2": sum(x > 0.2 for x in regrets) / len(os_),
                "share_regret_gt_1": sum(x > 1.0 for x in regrets) / len(os_),
            }
        )
    return rows


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Median saved fraction vs median regret per stage kind, held-out sources only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("post_drop", "acc", "after an LR drop (CIFAR, acc %)", 0.1, 0.55),
        ("first", "acc", "first stage, constant LR (CIFAR, acc %)", 1.0, 0.20),
        ("cosine", "acc", "cosine, one stage (NB201, acc %)", 0.5, 0.05),
        ("constant", "acc", "constant LR, one stage (DeepOBS, acc %)", None, None),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))

    def style(rule: str) -> tuple[str, str]:
        if rule.startswith("evidence"):
            return "tab:red", "*"
        if rule.startswith("oracle"):
            return "k", "x"
        if re.fullmatch(r"knee-[a-z_]+-d\d+", rule):
            return "tab:blue", "o"
        if rule.startswith("knee"):
            return "tab:purple", "D"
        return ("tab:green", "s") if rule.startswith("patient") else ("tab:gray", "^")

    for ax, (kind, unit, title, max_regret, min_saved) in zip(axes.flat, panels, strict=True):
        for r in rows:
            if r["kind"] != kind or r["unit"] != unit or r["split"] != "held_out":
                continue
            color, marker = style(r["rule"])
            x, y = r["median_saved_fraction"], r["median_regret"]
            ax.scatter(x, y, c=color, marker=marker, s=60 if color == "tab:red" else 35)
            ax.annotate(r["rule"], (x, y), fontsize=6)
        if max_regret is not None:
            ax.axhline(max_regret, color="k", lw=0.8, ls="--")
        if min_saved is not None:
            ax.axvline(min_saved, color="k", lw=0.8, ls="--")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("median share of the stage saved")
        ax.set_ylabel("median regret (symlog)")
    fig.suptitle(
        "Held-out sources, per stage. red: evidence rule (default), blue: paper's rule, "
        "purple: guarded paper rule,\ngreen: Optuna Patient, grey: plateau test, black x: "
        "hindsight oracle; dashed: the issue's targets",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few stages and rules")
    parser.add_argument("--nb201-every", type=int, default=3, help="use every n-th NB201 curve")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=None, help="summary JSON (default: results/)")
    parser.add_argument("--csv", type=Path, default=None, help="summary CSV")
    parser.add_argument("--records", type=Path, default=None, help="per-stage CSV (optional)")
    parser.add_argument("--plot", type=Path, default=None, help="Pareto PNG")
    parser.add_argument(
        "--tune-sources",
        default=",".join(_curves.TUNE_SOURCES),
        help="comma-separated source repositories counted as the tuning split",
    )
    parser.add_argument(
        "--rules",
        default="",
        help="comma-separated rule names or shell patterns to replay (default: all), "
        "e.g. 'evidence*,oracle-*'",
    )
    parser.add_argument(
        "--split",
        choices=("all", "tune", "held_out"),
        default="all",
        help="replay only the stages of this split",
    )
    args = parser.parse_args(argv)
    tune = tuple(x for x in args.tune_sources.split(",") if x)
    names = tuple(x for x in args.rules.split(",") if x)
    try:
        selected_rules(args.quick, names)
    except ValueError as exc:
        parser.error(str(exc))
    stem = "stopping_stages_quick" if args.quick else "stopping_stages"
    out = args.out or RESULTS / f"{stem}.json"
    csv_path = args.csv or out.with_suffix(".csv")
    png = args.plot or (None if args.quick else RESULTS / f"{stem}.png")

    stages = select_stages(args.quick, args.nb201_every)
    if args.split != "all":
        stages = [s for s in stages if _curves.split_of(s.source_repo, tune) == args.split]
    start = time.perf_counter()
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(
            args.workers, initializer=_init, initargs=(args.quick, tune, names)
        ) as pool:
            chunks = pool.map(_replay, stages, chunksize=1)
    else:
        _init(args.quick, tune, names)
        chunks = [_replay(s) for s in stages]
    outcomes = [o for chunk in chunks for o in chunk]
    elapsed = time.perf_counter() - start
    rows = summarize(outcomes)

    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python benchmarks/stopping_stages.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "stages": len(stages),
        "nb201_every": args.nb201_every,
        "seconds": round(elapsed, 1),
        "workers": args.workers,
        "tune_sources": list(tune),
    }
    out.write_text(json.dumps({"meta": meta, "summary": rows}, indent=1) + "\n")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if args.records is not None:
        with open(args.records, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(asdict(outcomes[0])))
            writer.writeheader()
            writer.writerows(asdict(o) for o in outcomes)
    if png is not None:
        plot(rows, png)
    _print_table(rows)
    n_rules = len(selected_rules(args.quick, names))
    print(f"{len(stages)} stages, {n_rules} rules, {elapsed:.1f} s -> {out}")
    return rows


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(
        f"{'rule':24s} {'split':8s} {'kind':9s} {'unit':4s} {'n':>4s} {'saved':>6s} "
        f"{'frac':>5s} {'regret':>7s} {'p75':>6s}"
    )
    for r in rows:
        print(
            f"{r['rule']:24s} {r['split']:8s} {r['kind']:9s} {r['unit']:4s} {r['stages']:4d} "
            f"{r['median_saved']:6.1f} {r['median_saved_fraction']:5.2f} "
            f"{r['median_regret']:7.3f} {r['p75_regret']:6.2f}"
        )


if __name__ == "__main__":
    main()
