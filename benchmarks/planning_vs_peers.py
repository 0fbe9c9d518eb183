"""Optimization planning vs hand-tuned schedules, strong defaults and an Optuna search.

The paper's protocol (Table 3 and Table 5). For every seed, on the same data split and the same
initial weights:

* **plan (extended)** (and, with ``--basic``, **plan (basic)**): ``stageplan.plan`` over the
  preset's transition graph, the knee rule stopping every transition; the model is the plan's
  final checkpoint.
* **plan, retrained**: the plan's schedule trained again from scratch (what ``video3d train
  --plan`` does: the stages in order, a fresh SGD optimiser per stage).
* **hand-tuned grid** (Table 3): clip schedules l1->l3, l2->l3, l1->l2->l3 x {3-step, cosine}
  LR x a grid of total epochs x both sampling strategies, each trained from scratch with one
  SGD optimiser; the candidate with the best internal-validation metric is the grid's pick,
  and its compute is the whole grid's. Every candidate is also scored on test for an *oracle*
  row (the best grid schedule chosen on test: not a method, the grid's upper bound).
* **strong default**: cosine LR from the first LR at the longest clip, for the plan's number
  of epochs (a practitioner's first try; equal epochs), trained with each sampling strategy and
  picked on validation (its compute counts both runs).
* **multigrid**: a multigrid-style long cycle (short-to-long clips inside each step of a 3-step
  LR schedule), the plan's epochs, each sampling, picked on validation.
* **Optuna search**: TPE with a Hyperband pruner over the grid's parameters (sampling, clip
  schedule, LR schedule, total epochs in the grid's range), the validation metric reported after
  every epoch; its budget is the training clip-frames the extended-graph planning spent for
  that seed: an epoch that would exceed it is not started (its trial ends, cut), and the
  search ends when no epoch fits any more. Its pick is the best complete trial.

Selection always uses the internal validation split (the planning metric: the mean of top-1,
top-3 and top-5 of one centre clip, over the k below the class count); only the picks are scored
on the held-out test split (the final protocol). Compute: trained epochs and clip-frames (videos
x clip length per training pass; validation passes counted apart) and wall seconds.

Results are written after every seed (``<name>.partial.json``), so a run cut short keeps the
seeds it finished.

Usage:
    python benchmarks/planning_vs_peers.py                      # events preset, 3 seeds (CPU)
    python benchmarks/planning_vs_peers.py --quick --out /tmp/q # smoke run (tiny preset)
    python benchmarks/planning_vs_peers.py --preset synthetic --totals 8 16   # earlier workload
    python benchmarks/planning_vs_peers.py --data /tmp/tuning_set --probe uniform:32:cosine:16
                                                                # a tuning probe (tuning data)
    python benchmarks/planning_vs_peers.py --preset hmdb51 --data /data/hmdb51_split1 \
        --device cuda --seeds 0 1 2 --totals 30 60 120 240      # a real dataset on a GPU
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workload as wl  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: What the CPU full mode changes in the ``synthetic`` preset, and why (printed and stored).
CPU_REDUCTIONS: dict[str, tuple[Any, str]] = {
    "test_crops": (1, "frames are resized to a 32-px short side, so the 3 crops of 32 px are "
                      "the same crop: identical scores at a third of the cost"),
}
METHODS = ("plan_extended", "plan_basic", "plan_retrained", "grid", "grid_oracle", "default",
           "multigrid", "search")
LABELS = {
    "plan_extended": "plan (extended graph)",
    "plan_basic": "plan (basic graph)",
    "plan_retrained": "plan's schedule, retrained from scratch",
    "grid": "hand-tuned grid (val-selected)",
    "grid_oracle": "hand-tuned grid, best on test (oracle)",
    "default": "strong default: cosine, longest clip, plan's epochs",
    "multigrid": "multigrid long cycle, plan's epochs",
    "search": "Optuna TPE + Hyperband (planning's budget)",
}
#: Default grid totals (epochs) per preset.
DEFAULT_TOTALS = {"events": [6, 12, 18, 24], "synthetic": [8, 16], "tiny": [2]}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ config
def build_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The run's config and the overrides applied to the preset."""
    from video3d.trainer import get_preset, load_config_file

    preset = "tiny" if args.quick and args.preset is None else (args.preset or "events")
    cfg = get_preset(preset)
    if args.config:
        cfg = load_config_file(args.config, cfg)
    overrides: dict[str, Any] = {}
    if preset == "synthetic" and not args.no_reductions:
        overrides.update({k: v for k, (v, _why) in CPU_REDUCTIONS.items()})
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    if overrides:
        cfg = cfg.replace(**overrides)
    return cfg, overrides


def grid_for(cfg: Any, args: argparse.Namespace) -> list[wl.GridSpec]:
    if getattr(args, "grid_names", None):  # finish a grid cut short: only the named schedules
        wanted = set(args.grid_names)
        specs = [sp for sp in grid_for(cfg, argparse.Namespace(**{**vars(args),
                                                                  "grid_names": None}))
                 if sp.name in wanted]
        if len(specs) != len(wanted):
            raise SystemExit(f"--grid-names: unknown schedule(s) "
                             f"{sorted(wanted - {sp.name for sp in specs})}")
        return specs
    if args.quick:
        # A 2-point grid: one schedule, both sampling strategies.
        return wl.grid_specs(cfg.clip_lengths, cfg.learning_rates, samplings=cfg.samplings,
                             totals=args.totals, clip_schedules=("l1-l3",),
                             lr_schedules=("step",))
    return wl.grid_specs(cfg.clip_lengths, cfg.learning_rates, samplings=cfg.samplings,
                         totals=args.totals)


# ------------------------------------------------------------------------------ methods
def _record(method: str, seed: int, spent: wl.Compute, seconds: float, val: float | None,
            test: dict[str, float] | None, **extra: Any) -> dict[str, Any]:
    return {"method": method, "seed": seed, **spent.to_dict(), "seconds": round(seconds, 1),
            "val_metric": val, "test_top1": None if test is None else test["top1"],
            "test_top5": None if test is None else test["top5"], **extra}


def run_plan(trainer: Any, cfg: Any, seed: int, extended: bool, workdir: Path) -> dict[str, Any]:
    from stageplan import plan, resolve_storage
    from video3d.trainer import graph_for, rule_for, test_plan_checkpoint

    method = "plan_extended" if extended else "plan_basic"
    graph = graph_for(cfg.replace(extended=extended))
    store_dir = workdir / f"{method}-seed{seed}"
    before, started = trainer.compute.copy(), time.monotonic()
    result = plan(graph, trainer, storage=str(store_dir), rule=rule_for(cfg), mode="max",
                  progress=False)
    spent, seconds = trainer.compute.minus(before), time.monotonic() - started
    test = test_plan_checkpoint(trainer, result, resolve_storage(str(store_dir)))
    return _record(method, seed, spent, seconds, result.final_value, test,
                   schedule=result.schedule_table(), plan_epochs=result.total_epochs,
                   transitions=len(result.transitions), edges=len(graph.edges),
                   curves=[_curve(r.to_dict()) for r in result.transitions])


def _curve(record: dict[str, Any]) -> dict[str, Any]:
    """What the curves figure needs of one transition record."""
    return {"source": record["source"], "target": record["target"],
            "values": record["values"], "checkpoint_epoch": record["checkpoint_epoch"],
            "reason": (record.get("decision") or {}).get("reason", record["status"])}


def plot_curves(rows: list[dict[str, Any]], path: Path) -> bool:
    """Every planned transition's validation curve, one panel per seed; False if none."""
    plans = [r for r in rows if r["method"] == "plan_extended" and r.get("curves")]
    if not plans:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plans), figsize=(5.2 * len(plans), 3.8), squeeze=False)
    for ax, row in zip(axes[0], plans):
        for c in row["curves"]:
            sampling = "uniform" if "sampling=uniform" in c["target"] else "consecutive"
            ax.plot(range(len(c["values"])), c["values"], "-o", ms=2.5, lw=1,
                    color="C1" if sampling == "uniform" else "C0", alpha=0.7)
        ax.plot([], [], "-", color="C0", label="consecutive target")
        ax.plot([], [], "-", color="C1", label="uniform target")
        ax.set_title(f"seed {row['seed']}: {len(row['curves'])} transitions, plan test top-1 "
                     f"{100 * row['test_top1']:.1f}%", fontsize=9)
        ax.set_xlabel("epoch of the transition")
        ax.set_ylabel("val metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _final_state(schedule: dict[str, list[Any]]) -> tuple[str, int]:
    return str(schedule["sampling"][-1]), int(schedule["clip_length"][-1])


def run_retrained(trainer: Any, plan_row: dict[str, Any], seed: int) -> dict[str, Any]:
    """The plan's schedule from scratch, as ``video3d train --plan`` trains it."""
    from stageplan import Plan

    table = plan_row["schedule"]
    stages = [({"sampling": sm, "clip_length": int(c), "learning_rate": float(lr)}, int(n))
              for sm, c, lr, n in zip(table["sampling"], table["clip_length"],
                                      table["learning_rate"], table["epochs"])]
    sampling, clip = _final_state(table)
    before, started = trainer.compute.copy(), time.monotonic()
    model = trainer.train_schedule(Plan.from_stages(stages), name="replay")
    val = trainer.evaluate(model, sampling, clip)["metric"]
    spent, seconds = trainer.compute.minus(before), time.monotonic() - started
    test = trainer.final_evaluate(model, sampling, clip, desc="test retrained")
    return _record("plan_retrained", seed, spent, seconds, val, test)


def run_fixed(trainer: Any, method: str, seed: int, samplings: tuple[str, ...],
              epochs: list[tuple[int, float]]) -> dict[str, Any]:
    """One fixed schedule with one optimiser (the default and the multigrid cycle), trained with
    every sampling strategy; the best on the validation split is the method's model, and its
    compute counts every run."""
    before, started = trainer.compute.copy(), time.monotonic()
    clip = epochs[-1][0]
    tried: list[dict[str, Any]] = []
    best: tuple[float, str, Any] | None = None
    for sampling in samplings:
        model, _ = wl.train_epochs(trainer, sampling, epochs, key=method)
        val = trainer.evaluate(model, sampling, clip)["metric"]
        tried.append({"sampling": sampling, "val_metric": val})
        if best is None or val > best[0]:
            best = (val, sampling, model)
    assert best is not None
    val, sampling, model = best
    spent, seconds = trainer.compute.minus(before), time.monotonic() - started
    test = trainer.final_evaluate(model, sampling, clip, desc=f"test {method}")
    return _record(method, seed, spent, seconds, val, test, sampling=sampling, tried=tried,
                   schedule=[[c, lr] for c, lr in epochs])


def run_grid(trainer: Any, cfg: Any, seed: int, specs: list[wl.GridSpec],
             partial: Path | None = None) -> dict[str, Any]:
    """Every grid schedule, shortest totals first (a run cut short keeps whole totals)."""
    before, started = trainer.compute.copy(), time.monotonic()
    candidates: list[dict[str, Any]] = []
    for spec in sorted(specs, key=lambda sp: sp.total):  # stable: grid order within a total
        epochs = spec.epochs(cfg.clip_lengths, cfg.learning_rates)
        c0, t0 = trainer.compute.copy(), time.monotonic()
        model, _ = wl.train_epochs(trainer, spec.sampling, epochs, key=f"grid {spec.name}")
        clip = epochs[-1][0]
        val = trainer.evaluate(model, spec.sampling, clip)["metric"]
        spent = trainer.compute.minus(c0)
        test = trainer.final_evaluate(model, spec.sampling, clip, desc="test grid")
        candidates.append({"name": spec.name, "sampling": spec.sampling,
                           "clip_schedule": spec.clip_schedule, "lr_schedule": spec.lr_schedule,
                           "total": spec.total, "val_metric": val, "test_top1": test["top1"],
                           "test_top5": test["top5"], **spent.to_dict(),
                           "seconds": round(time.monotonic() - t0, 1)})
        log(f"    seed {seed} grid {spec.name}: val {val:.3f} test top-1 {test['top1']:.3f}")
        if partial is not None:
            partial.write_text(json.dumps({"seed": seed, "grid_candidates": candidates},
                                          indent=1) + "\n", encoding="utf-8")
    spent, seconds = trainer.compute.minus(before), time.monotonic() - started
    pick = max(candidates, key=lambda c: c["val_metric"])  # first best on ties
    oracle = max(candidates, key=lambda c: c["test_top1"])
    return {
        "grid": _record("grid", seed, spent, seconds, pick["val_metric"],
                        {"top1": pick["test_top1"], "top5": pick["test_top5"]},
                        pick=pick["name"], candidates=candidates),
        "grid_oracle": _record("grid_oracle", seed, spent, seconds, oracle["val_metric"],
                               {"top1": oracle["test_top1"], "top5": oracle["test_top5"]},
                               pick=oracle["name"]),
    }


def run_search(trainer: Any, cfg: Any, seed: int, budget: int, totals: list[int],
               max_trials: int | None, samplings: tuple[str, ...],
               clip_schedules: tuple[str, ...], lr_schedules: tuple[str, ...]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(totals),
                                              reduction_factor=3),
    )
    before, started = trainer.compute.copy(), time.monotonic()
    best: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = []

    def used() -> int:
        return int(trainer.compute.clip_frames - before.clip_frames)

    cheapest = wl.epoch_cost(trainer, min(cfg.clip_lengths))
    # Start trials while an epoch still fits; end when a trial cannot fit its first epoch.
    while budget - used() >= cheapest and (max_trials is None or len(trials) < max_trials):
        trial = study.ask()
        sampling = trial.suggest_categorical("sampling", list(samplings))
        clip_s = trial.suggest_categorical("clip_schedule", list(clip_schedules))
        lr_s = trial.suggest_categorical("lr_schedule", list(lr_schedules))
        total = trial.suggest_int("total_epochs", min(totals), max(totals))
        epochs = wl.schedule_epochs(cfg.clip_lengths, cfg.learning_rates, clip_schedule=clip_s,
                                    lr_schedule=lr_s, total=total)
        state = {"stop": "complete", "value": float("nan")}

        def before_epoch(index: int, clip: int, state: dict[str, Any] = state) -> bool:
            if used() + wl.epoch_cost(trainer, clip) > budget:
                state["stop"] = "budget"
                return False
            return True

        def after_epoch(index: int, model: Any, clip: int, trial: Any = trial,
                        state: dict[str, Any] = state, sampling: str = sampling) -> bool:
            value = trainer.evaluate(model, sampling, clip)["metric"]
            state["value"] = value
            trial.report(value, index + 1)
            if trial.should_prune():
                state["stop"] = "pruned"
                return False
            return True

        model, done = wl.train_epochs(trainer, sampling, epochs, key=f"search {trial.number}",
                                      before_epoch=before_epoch, after_epoch=after_epoch)
        complete = done == len(epochs)
        value = state["value"]
        if complete:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        trials.append({"number": trial.number, "params": dict(trial.params), "epochs": done,
                       "state": "complete" if complete else state["stop"], "value": value})
        if done == 0 and state["stop"] == "budget":
            break
        if complete and (best is None or value > best["val_metric"]):
            best = {"val_metric": value, "sampling": sampling, "clip": epochs[-1][0],
                    "params": dict(trial.params), "number": trial.number,
                    "weights": copy.deepcopy(model.state_dict())}
    spent, seconds = trainer.compute.minus(before), time.monotonic() - started
    n_complete = sum(t["state"] == "complete" for t in trials)
    log(f"    seed {seed} search: {len(trials)} trials ({n_complete} complete), "
        f"{spent.clip_frames}/{budget} clip-frames")
    test = None
    if best is not None:
        model = trainer.new_model()
        model.load_state_dict(best["weights"])
        test = trainer.final_evaluate(model, best["sampling"], best["clip"], desc="test search")
    return _record("search", seed, spent, seconds, None if best is None else best["val_metric"],
                   test, budget_clip_frames=budget, trials=trials, complete_trials=n_complete,
                   pick=None if best is None else best["params"])


def run_seed(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every method for one seed (a top-level function: it runs in worker processes too)."""
    from video3d.trainer import DEFAULT_BASELINE, TrainConfig, baseline_schedules, load_data

    seed = int(job["seed"])
    skip = set(job.get("skip", ()))
    cfg = TrainConfig.from_dict(job["config"]).replace(seed=seed)
    data = load_data(job["data"], cfg, stream=sys.stderr)
    trainer = wl.make_counting_trainer(cfg, data, device=job["device"])
    specs = [wl.GridSpec(**s) for s in job["grid"]]
    rows: list[dict[str, Any]] = []

    partial = Path(job["partial"]) if job.get("partial") else None

    def done(row: dict[str, Any]) -> None:
        top1 = row["test_top1"]
        log(f"  seed {seed} {row['method']}: {row['epochs']} epochs, "
            f"{row['clip_frames'] / 1e3:.0f}k clip-frames, test top-1 "
            f"{'n/a' if top1 is None else f'{100 * top1:.1f}%'} ({row['seconds']:.0f} s)")
        rows.append(row)
        if partial is not None:  # every finished method survives a run cut short
            partial.write_text(json.dumps({"seed": seed, "rows": rows}, indent=1) + "\n",
                               encoding="utf-8")

    if "plan_extended" in skip:  # grid and/or search alone (merged with the plan's run later)
        if "search" not in skip:
            done(run_search(trainer, cfg, seed, int(job["search_budget"]), job["totals"],
                            job["max_trials"], tuple(cfg.samplings),
                            tuple(job["clip_schedules"]), tuple(job["lr_schedules"])))
        if "grid" not in skip:
            grid = run_grid(trainer, cfg, seed, specs,
                            partial and partial.with_suffix(".grid.json"))
            done(grid["grid"])
            done(grid["grid_oracle"])
        return rows
    reused = [r for r in job.get("plan_rows", []) if int(r["seed"]) == seed]
    if reused:  # the plan of an earlier run of this seed (--plan-from): not planned again
        rows.append(reused[0])
    else:
        with tempfile.TemporaryDirectory(prefix="planning_vs_peers-") as tmp:
            for extended in (True, False):
                if not extended and "plan_basic" in skip:
                    continue
                done(run_plan(trainer, cfg, seed, extended, Path(tmp)))
    plan_row = rows[0]
    epochs_total = int(plan_row["plan_epochs"])
    samplings = tuple(cfg.samplings)
    if "plan_retrained" not in skip:
        done(run_retrained(trainer, plan_row, seed))
    if "default" not in skip:
        done(run_fixed(trainer, "default", seed, samplings,
                       baseline_schedules(cfg, epochs_total)[DEFAULT_BASELINE]))
    if "multigrid" not in skip:
        done(run_fixed(trainer, "multigrid", seed, samplings,
                       wl.multigrid_epochs(cfg.clip_lengths, cfg.learning_rates,
                                           total=epochs_total)))
    if "search" not in skip:
        budget = int(plan_row["clip_frames"])
        done(run_search(trainer, cfg, seed, budget, job["totals"], job["max_trials"],
                        tuple(cfg.samplings), tuple(job["clip_schedules"]),
                        tuple(job["lr_schedules"])))
    if "grid" not in skip:
        grid = run_grid(trainer, cfg, seed, specs, partial and partial.with_suffix(".grid.json"))
        done(grid["grid"])
        done(grid["grid_oracle"])
    return rows


# ------------------------------------------------------------------------------ summary
def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        entry: dict[str, Any] = {"runs": len(mine)}
        for key in ("test_top1", "test_top5", "val_metric", "epochs", "clip_frames",
                    "eval_clip_frames", "seconds"):
            vals = [float(r[key]) for r in mine if r[key] is not None]
            entry[key] = _mean_std(vals)
        out[method] = entry
    return out


def claim_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, per seed and on the mean over seeds.

    * plan (extended) >= the val-selected grid pick on test, at <= 1/7 of the grid's training
      clip-frames (``accuracy_holds``, ``compute_holds``; ``*_all``: every seed);
    * plan >= the compute-matched search + 1 point (``search_margin_holds`` on the mean);
    * plan >= the strong default at equal epochs (``default_holds`` on the mean).
    """
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        by = {r["method"]: r for r in rows if r["seed"] == seed}
        plan = by.get("plan_extended")
        if plan is None:
            continue
        entry: dict[str, Any] = {"seed": seed, "plan_top1": plan["test_top1"]}
        for method in ("plan_retrained", "default", "multigrid", "search", "grid_oracle"):
            if method in by:
                entry[f"{method}_top1"] = by[method]["test_top1"]
        if "grid" in by:
            grid = by["grid"]
            ratio = plan["clip_frames"] / max(grid["clip_frames"], 1)
            entry.update({
                "grid_top1": grid["test_top1"], "oracle_top1": by["grid_oracle"]["test_top1"],
                "accuracy_holds": plan["test_top1"] >= grid["test_top1"],
                "accuracy_holds_vs_oracle": plan["test_top1"] >= by["grid_oracle"]["test_top1"],
                "compute_ratio": ratio, "compute_holds": ratio <= 1 / 7,
            })
        per_seed.append(entry)

    def mean_of(key: str) -> float | None:
        vals = [p[key] for p in per_seed if p.get(key) is not None]
        return statistics.fmean(vals) if vals and len(vals) == len(per_seed) else None

    means = {k: mean_of(f"{k}_top1") for k in ("plan", "grid", "oracle", "plan_retrained",
                                               "default", "multigrid", "search")}
    plan_mean = means["plan"]

    def holds(other: str, margin: float = 0.0) -> bool | None:
        if plan_mean is None or means[other] is None:
            return None
        return plan_mean >= means[other] + margin  # type: ignore[operator]

    with_grid = [p for p in per_seed if "accuracy_holds" in p]
    return {
        "per_seed": per_seed,
        "accuracy_holds_all": all(p["accuracy_holds"] for p in with_grid) if with_grid
        else None,
        "compute_holds_all": all(p["compute_holds"] for p in with_grid) if with_grid else None,
        "mean_top1": means,
        "accuracy_holds_on_mean": holds("grid"),
        "search_margin_holds": holds("search", 0.01),
        "default_holds": holds("default"),
        "multigrid_holds": holds("multigrid"),
    }


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| method | runs | test top-1 % | test top-5 % | val metric | epochs | "
             "train clip-frames (k) | val clip-frames (k) | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def pm(pair: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
        m, s = pair
        if math.isnan(m):
            return "n/a"
        return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"

    for method, e in summary.items():
        lines.append(
            f"| {LABELS[method]} | {e['runs']} | {pm(e['test_top1'], 100)} | "
            f"{pm(e['test_top5'], 100)} | {pm(e['val_metric'], 1, 3)} | {pm(e['epochs'])} | "
            f"{pm(e['clip_frames'], 1e-3, 0)} | {pm(e['eval_clip_frames'], 1e-3, 0)} | "
            f"{pm(e['seconds'], 1, 0)} |"
        )
    return "\n".join(lines)


def per_seed_table(rows: list[dict[str, Any]]) -> str:
    """Test top-1 (%) and training clip-frames (k) of every method on every seed."""
    seeds = sorted({r["seed"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = ["| method | " + " | ".join(f"seed {s}: top-1 % (k clip-frames)" for s in seeds)
             + " |", "|---|" + "---:|" * len(seeds)]
    for method in methods:
        cells = []
        for seed in seeds:
            row = next((r for r in rows if r["method"] == method and r["seed"] == seed), None)
            if row is None or row["test_top1"] is None:
                cells.append("n/a")
            else:
                cells.append(f"{100 * row['test_top1']:.1f} ({row['clip_frames'] / 1e3:.0f})")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 4.8))
    first = True
    for r in rows:
        if r["method"] != "grid":
            continue
        for c in r["candidates"]:
            ax.scatter(c["clip_frames"] / 1e6, 100 * c["test_top1"], s=10, color="0.75",
                       label="one grid schedule" if first else None, zorder=1)
            first = False
    styles = {"plan_extended": ("o", "C0"), "plan_basic": ("s", "C2"),
              "plan_retrained": ("P", "C9"), "grid": ("D", "C3"), "grid_oracle": ("d", "C6"),
              "default": ("v", "C4"), "multigrid": ("X", "C5"), "search": ("^", "C1")}
    for method, (marker, colour) in styles.items():
        mine = [r for r in rows if r["method"] == method and r["test_top1"] is not None]
        if not mine:
            continue
        ax.scatter([r["clip_frames"] / 1e6 for r in mine], [100 * r["test_top1"] for r in mine],
                   marker=marker, color=colour, s=45, label=LABELS[method], zorder=3,
                   edgecolors="black", linewidths=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (million clip-frames; grid: the whole grid)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ tuning probes
def probe_epochs(spec: str, cfg: Any) -> tuple[str, list[tuple[int, float]]]:
    """``SAMPLING:CLIPS:LR:EPOCHS`` -> (sampling, per-epoch (clip, lr)).

    ``CLIPS``: a grid clip schedule (``l1-l3``, ``l2-l3``, ``l1-l2-l3``) or one clip length;
    ``LR``: ``step`` or ``cosine`` (the grid's schedules from the preset's LRs) or a number
    (constant). E.g. ``uniform:32:cosine:6``, ``consecutive:l2-l3:0.05:4``.
    """
    parts = spec.split(":")
    if len(parts) != 4:
        raise SystemExit(f"--probe expects SAMPLING:CLIPS:LR:EPOCHS, got {spec!r}")
    sampling, clips, lr, total_s = parts
    if sampling not in cfg.samplings:
        raise SystemExit(f"--probe {spec!r}: sampling must be one of {list(cfg.samplings)}")
    try:
        total = int(total_s)
        lengths = cfg.clip_lengths if clips in wl.CLIP_SCHEDULES else (int(clips),)
        schedule = clips if clips in wl.CLIP_SCHEDULES else "l1-l3"
        if lr in wl.LR_SCHEDULES:
            epochs = wl.schedule_epochs(lengths, cfg.learning_rates, clip_schedule=schedule,
                                        lr_schedule=lr, total=total)
        else:
            epochs = [(c, float(lr)) for c, _ in wl.schedule_epochs(
                lengths, cfg.learning_rates, clip_schedule=schedule, lr_schedule="step",
                total=total)]
    except ValueError as exc:
        raise SystemExit(f"--probe {spec!r}: {exc}") from None
    return sampling, epochs


def run_probes(args: argparse.Namespace, argv: list[str] | None, cfg: Any,
               overrides: dict[str, Any]) -> int:
    """Tuning probes: fixed schedules with the validation metric after every epoch and the
    test split's top-1 at the end (for tuning data only, never the benchmark's)."""
    from video3d.trainer import load_data

    jobs = [probe_epochs(spec, cfg) for spec in args.probe]
    data = load_data(args.data, cfg, stream=sys.stderr)
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or "planning_vs_peers_probe"
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        trainer = wl.make_counting_trainer(cfg.replace(seed=seed), data, device=args.device)
        for spec, (sampling, epochs) in zip(args.probe, jobs):
            curve: list[dict[str, float]] = []
            started = time.monotonic()

            def after_epoch(index: int, model: Any, clip: int, sampling: str = sampling,
                            curve: list[dict[str, float]] = curve,
                            trainer: Any = trainer) -> bool:
                ev = trainer.evaluate(model, sampling, clip)
                curve.append({"metric": round(ev["metric"], 4), "top1": round(ev["top1"], 4)})
                return True

            model, _ = wl.train_epochs(trainer, sampling, epochs, key=f"probe {spec}",
                                       after_epoch=after_epoch)
            train_s = time.monotonic() - started
            test = trainer.final_evaluate(model, sampling, epochs[-1][0], desc="probe test")
            row = {"spec": spec, "seed": seed, "epochs": epochs, "val": curve,
                   "test_top1": test["top1"], "train_seconds": round(train_s, 1),
                   "seconds": round(time.monotonic() - started, 1), "load": _load()}
            rows.append(row)
            vals = " ".join(f"{c['top1']:.2f}" for c in curve)
            log(f"probe {spec} seed {seed}: val top-1 {vals}; test top-1 "
                f"{100 * test['top1']:.1f}% ({row['train_seconds']:.0f} s train, "
                f"{row['seconds']:.0f} s total, load {row['load']})")
            result = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                                  else sys.argv[1:])]),
                      "data": data.root, "overrides": overrides, "config": cfg.to_dict(),
                      "num_train": len(data.train), "num_val": len(data.val),
                      "num_test": len(data.test), "rows": rows}
            (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n",
                                              encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny preset, 1 seed, a 2-point grid, a 3-trial search")
    p.add_argument("--preset", help="video3d preset (default: events; tiny with --quick)")
    p.add_argument("--data", help="index directory (default: the preset's generated dataset)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--config", help="JSON/TOML file of preset overrides")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one preset value (JSON value), repeatable")
    p.add_argument("--no-reductions", action="store_true",
                   help="do not apply the CPU reductions to the synthetic preset")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; 0 with --quick)")
    p.add_argument("--totals", type=int, nargs="+",
                   help="total epochs of the hand-tuned grid (default: events 8 16 24 32, "
                   "synthetic 8 16, tiny 2)")
    p.add_argument("--max-trials", type=int, help="cap on search trials (default: budget only; "
                   "3 with --quick)")
    p.add_argument("--basic", action="store_true", help="also plan the basic graph")
    p.add_argument("--grid-names", nargs="+", metavar="NAME",
                   help="run only these grid schedules (names as logged, e.g. 'unif l2-l3 "
                   "cosine 8ep'): finishes a grid cut short")
    p.add_argument("--plan-from", metavar="JSON",
                   help="reuse the plan_extended rows (schedule, epochs, budget) of an earlier "
                   "result or partial file for its seeds instead of planning again")
    p.add_argument("--search-budget", type=int, metavar="CLIP_FRAMES",
                   help="with --skip plan_extended: the search's budget (the plan's training "
                   "clip-frames of that seed, from its run)")
    p.add_argument("--skip", nargs="+", default=[], choices=[m for m in METHODS
                                                             if m not in ("plan_basic",
                                                                          "grid_oracle")],
                   help="methods left out (a reduced run; the result JSON names them); "
                   "skipping plan_extended runs the grid alone (merge it with --merge)")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="do not run: merge the rows of these result files (complete, "
                   "<name>.partial.json or <name>.seedN.partial.json) into one result, "
                   "e.g. seeds run in separate commands")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--out", help=f"results folder (default {RESULTS})")
    p.add_argument("--name", help="file prefix (default planning_vs_peers[_quick])")
    p.add_argument("--probe", nargs="+", metavar="SAMPLING:CLIPS:LR:EPOCHS",
                   help="tuning probes instead of the comparison: fixed schedules with the "
                        "validation metric after every epoch and test top-1 at the end "
                        "(use tuning data, e.g. --data of a set generated with another seed)")
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.max_trials is None and args.quick:
        args.max_trials = 3
    if not args.basic:
        args.skip = [*args.skip, "plan_basic"]
    needs_plan = {"plan_retrained", "default", "multigrid"} - set(args.skip)
    if "plan_extended" in args.skip:
        if needs_plan or args.basic:
            p.error("--skip plan_extended runs the grid and/or the search alone: also skip "
                    f"{sorted(needs_plan)}")
        if "search" not in args.skip and args.search_budget is None:
            p.error("a search without the plan needs --search-budget (the plan's training "
                    "clip-frames for that seed)")
    return args


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace, argv: list[str] | None,
                  cfg: Any, overrides: dict[str, Any], specs: list[wl.GridSpec], wall: float,
                  out: Path, name: str) -> dict[str, Any]:
    summary = summarise(rows)
    claim = claim_check(rows)
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                        else sys.argv[1:])]),
        "preset": cfg.name, "device": args.device, "data": args.data, "seeds": args.seeds,
        "seeds_done": sorted({r["seed"] for r in rows}), "skipped": sorted(set(args.skip)),
        "overrides": overrides,
        "reductions": {k: why for k, (_v, why) in CPU_REDUCTIONS.items() if k in overrides},
        "config": cfg.to_dict(), "totals": args.totals, "grid_size": len(specs),
        "wall_seconds": round(wall, 1), "load_average_at_end": _load(),
        "summary": summary, "claim": claim, "rows": rows,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def _plan_rows(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [r for r in data.get("rows", []) if r["method"] == "plan_extended"]


def _load() -> list[float] | None:
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def merge(args: argparse.Namespace, argv: list[str] | None, cfg: Any,
          overrides: dict[str, Any]) -> int:
    """Combine the rows of earlier runs (one row per method and seed; later files win)."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    commands, wall = [], 0.0
    candidates: dict[int, list[dict[str, Any]]] = {}
    curves: dict[int, list[dict[str, Any]]] = {}
    for path in args.merge:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for row in data.get("rows", []):
            rows[(row["method"], int(row["seed"]))] = row
        if "grid_candidates" in data:  # a grid cut short (<name>.seedN.partial.grid.json)
            candidates.setdefault(int(data["seed"]), []).extend(data["grid_candidates"])
        if "curves" in data:  # transition records copied from a plan's storage during a run
            curves[int(data["seed"])] = [_curve(r) for r in data["curves"]]
        commands.append(data.get("command", path))
        wall = max(wall, float(data.get("wall_seconds", 0.0)))
    for seed, done in candidates.items():
        if ("grid", seed) in rows:
            continue
        pick = max(done, key=lambda c: c["val_metric"])  # first best on ties
        oracle = max(done, key=lambda c: c["test_top1"])
        spent = wl.Compute(sum(c["epochs"] for c in done), sum(c["clip_frames"] for c in done),
                           sum(c["eval_clip_frames"] for c in done))
        seconds = sum(float(c.get("seconds", 0.0)) for c in done)
        note = {"partial_grid": True, "schedules_done": len(done)}
        rows[("grid", seed)] = _record(
            "grid", seed, spent, seconds, pick["val_metric"],
            {"top1": pick["test_top1"], "top5": pick["test_top5"]}, pick=pick["name"],
            candidates=done, **note)
        rows[("grid_oracle", seed)] = _record(
            "grid_oracle", seed, spent, seconds, oracle["val_metric"],
            {"top1": oracle["test_top1"], "top5": oracle["test_top5"]}, pick=oracle["name"],
            **note)
    for seed, found in curves.items():
        if ("plan_extended", seed) in rows and not rows[("plan_extended", seed)].get("curves"):
            rows[("plan_extended", seed)]["curves"] = found
    merged = sorted(rows.values(), key=lambda r: (r["seed"], METHODS.index(r["method"])))
    args.seeds = sorted({int(r["seed"]) for r in merged})
    done = {r["method"] for r in merged}
    args.skip = [m for m in METHODS if m not in done]
    specs = grid_for(cfg, args)
    name = args.name or "planning_vs_peers"
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    result = write_results(merged, args, argv, cfg, overrides, specs, wall, out, name)
    result["merged_from"] = commands
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(merged, out / f"{name}.png",
         f"{cfg.name} ({args.device}), seeds {args.seeds}: test top-1 vs training compute")
    plot_curves(merged, out / f"{name}_curves.png")
    table = markdown_table(result["summary"]) + "\n\n" + per_seed_table(merged)
    (out / f"{name}.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(json.dumps(result["claim"], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg, overrides = build_config(args)
    if args.totals is None:
        if cfg.name not in DEFAULT_TOTALS:
            raise SystemExit(f"--totals is required for preset {cfg.name!r} (the grid's total "
                             "epochs, e.g. 30 60 120)")
        args.totals = DEFAULT_TOTALS[cfg.name]
    if args.merge:
        return merge(args, argv, cfg, overrides)
    if args.probe:
        return run_probes(args, argv, cfg, overrides)
    from video3d.trainer import load_data

    load_data(args.data, cfg, stream=sys.stderr)  # fail early; generates a synthetic set once
    specs = grid_for(cfg, args)
    clip_schedules = ("l1-l3",) if args.quick else tuple(wl.CLIP_SCHEDULES)
    lr_schedules = ("step",) if args.quick else wl.LR_SCHEDULES
    log(f"preset {cfg.name} on {args.device}: seeds {args.seeds}, grid of {len(specs)} "
        f"schedules (totals {args.totals}), overrides {overrides}, skipped {args.skip}")
    jobs = [{"seed": s, "config": cfg.to_dict(), "data": args.data, "device": args.device,
             "grid": [vars(sp) for sp in specs], "totals": list(args.totals),
             "max_trials": args.max_trials, "clip_schedules": clip_schedules,
             "lr_schedules": lr_schedules, "skip": list(args.skip),
             "search_budget": args.search_budget,
             "plan_rows": _plan_rows(args.plan_from)} for s in args.seeds]
    name = args.name or ("planning_vs_peers_quick" if args.quick else "planning_vs_peers")
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        job["partial"] = str(out / f"{name}.seed{job['seed']}.partial.json")
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    if args.jobs > 1 and len(jobs) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for part in pool.map(run_seed, jobs):
                rows += part
                write_results(rows, args, argv, cfg, overrides, specs,
                              time.monotonic() - started, out, f"{name}.partial")
    else:
        for job in jobs:
            rows += run_seed(job)
            write_results(rows, args, argv, cfg, overrides, specs, time.monotonic() - started,
                          out, f"{name}.partial")
    wall = time.monotonic() - started
    result = write_results(rows, args, argv, cfg, overrides, specs, wall, out, name)
    (out / f"{name}.partial.json").unlink(missing_ok=True)
    for job in jobs:
        Path(job["partial"]).unlink(missing_ok=True)
        Path(job["partial"]).with_suffix(".grid.json").unlink(missing_ok=True)
    summary, claim = result["summary"], result["claim"]
    plot(rows, out / f"{name}.png",
         f"{cfg.name} ({args.device}), seeds {args.seeds}: test top-1 vs training compute")
    plot_curves(rows, out / f"{name}_curves.png")
    table = markdown_table(summary) + "\n\n" + per_seed_table(rows)
    (out / f"{name}.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    for p in claim["per_seed"]:
        line = f"seed {p['seed']}: plan {_pct(p['plan_top1'])}"
        for key in ("plan_retrained", "default", "multigrid", "search"):
            if f"{key}_top1" in p:
                line += f", {key} {_pct(p[f'{key}_top1'])}"
        if "grid_top1" in p:
            line += (f", grid pick {_pct(p['grid_top1'])} (oracle {_pct(p['oracle_top1'])}); "
                     f"plan compute = {p['compute_ratio']:.3f} of the grid's")
        print(line)

    def word(flag: bool | None) -> str:
        return "not run" if flag is None else ("holds" if flag else "does not hold")

    print(f"claim (plan >= grid pick on test, every seed): {word(claim['accuracy_holds_all'])}; "
          f"on the mean: {word(claim['accuracy_holds_on_mean'])}; compute <= 1/7 of the grid, "
          f"every seed: {word(claim['compute_holds_all'])}")
    print(f"plan >= search + 1 point (mean): {word(claim['search_margin_holds'])}; plan >= "
          f"strong default (mean): {word(claim['default_holds'])}; plan >= multigrid (mean): "
          f"{word(claim['multigrid_holds'])}")
    print(f"wall time {wall:.0f} s; results in {out / name}.json/.png/.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
