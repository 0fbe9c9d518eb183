"""Pictures of a plan: the explored transition graph (like the paper's Figure 5) and curves.

matplotlib is optional (the ``plot`` extra): without it :func:`save_pictures` prints a note and
returns no files.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from stageplan import Plan

_DX = 1.7  # horizontal spacing of the graph picture's columns

__all__ = ["chosen_edges", "plot_curves", "plot_graph", "save_pictures", "state_label"]


def chosen_edges(plan: Plan) -> set[tuple[str, str]]:
    """The ``(source, target)`` names of the plan's path."""
    out: set[tuple[str, str]] = set()
    for stage in plan.stages:
        if stage.source is not None:
            out.add((stage.source, stage.state))
    return out


def state_label(params: dict[str, Any]) -> str:
    """Short label of a state: ``clip 16 / lr 0.01`` (other axes as ``k=v``)."""
    parts = []
    for key, value in params.items():
        if key == "sampling":
            continue
        if key == "clip_length":
            parts.append(f"clip {value}")
        elif key == "learning_rate":
            parts.append(f"lr {value:g}" if isinstance(value, float) else f"lr {value}")
        else:
            parts.append(f"{key}={value}")
    return "\n".join(parts) or "start"


def _layout(graph: dict[str, Any], names: list[str]) -> dict[str, tuple[float, float]]:
    params = {s["name"]: s.get("params", {}) for s in graph["states"]}
    start = graph["start"]
    clips = sorted({p["clip_length"] for n, p in params.items() if "clip_length" in p})
    lrs = sorted({p["learning_rate"] for n, p in params.items() if "learning_rate" in p},
                 reverse=True)
    pos: dict[str, tuple[float, float]] = {}
    if clips and lrs and all(
        "clip_length" in params[n] and "learning_rate" in params[n] for n in names if n != start
    ):
        for n in names:
            if n == start:
                continue
            p = params[n]
            pos[n] = (_DX * (1 + clips.index(p["clip_length"])),
                      -float(lrs.index(p["learning_rate"])))
        pos[start] = (0.0, 0.0)
        return pos
    # any other DAG: columns by longest path from the start
    depth = {start: 0}
    edges = [(a, b) for a, b in graph["edges"]]
    for _ in names:
        for a, b in edges:
            if a in depth:
                depth[b] = max(depth.get(b, 0), depth[a] + 1)
    rows: dict[int, int] = {}
    for n in names:
        d = depth.get(n, 0)
        pos[n] = (_DX * d, -float(rows.get(d, 0)))
        rows[d] = rows.get(d, 0) + 1
    return pos


def plot_graph(plan: Plan, path: str | Path) -> None:
    """Draw every explored transition with its value and epochs; highlight the chosen path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = plan.graph
    if graph is None:
        raise ValueError("the plan carries no graph (it was not produced by planning)")
    params = {s["name"]: s.get("params", {}) for s in graph["states"]}
    start = graph["start"]
    groups: dict[str, list[str]] = {}
    for name, p in params.items():
        if name != start:
            groups.setdefault(str(p.get("sampling", "")), []).append(name)
    chosen = chosen_edges(plan)
    chosen_states = {plan.stages[0].source} | {s.state for s in plan.stages}
    records = {(r.source, r.target): r for r in plan.transitions}
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.4), squeeze=False)
    for ax, (group, names) in zip(axes[0], groups.items()):
        members = [start, *names]
        pos = _layout(graph, members)
        for a, b in graph["edges"]:
            if a not in pos or b not in pos:
                continue
            rec = records.get((a, b))
            on_path = (a, b) in chosen
            (x0, y0), (x1, y1) = pos[a], pos[b]
            span = abs(x1 - x0) + abs(y1 - y0)
            rad = -0.35 if span > 1.5 * _DX and y0 == y1 else (0.12 if x1 < x0 else 0.0)
            style = "-" if rec is not None and rec.status == "complete" else ":"
            ax.annotate(
                "", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={
                    "arrowstyle": "-|>", "lw": 2.6 if on_path else 1.0,
                    "color": "#d62728" if on_path else "#7f7f7f", "linestyle": style,
                    "shrinkA": 24, "shrinkB": 24, "connectionstyle": f"arc3,rad={rad}",
                },
            )
            if rec is None:
                text = "not run"
            elif rec.status != "complete":
                text = "failed"
            else:
                text = f"{rec.value:.3f}\nknee {rec.checkpoint_epoch} of {rec.epochs}"
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            align = "center"
            if rad:  # a quadratic arc peaks at half its control point's offset
                mx, my = mx + rad * (y1 - y0) * 0.25, my - rad * (x1 - x0) * 0.25 + 0.14
            elif y0 == y1:
                my += 0.16  # above a horizontal arrow
            elif x0 == x1:
                mx, align = mx - 0.08, "right"  # left of a vertical arrow
            ax.text(mx, my, text, fontsize=7.5, ha=align, va="center",
                    color="#d62728" if on_path else "#333333",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.85})
        for name in members:
            x, y = pos[name]
            on = name in chosen_states
            ax.text(x, y, state_label(params[name]), ha="center", va="center", fontsize=8.5,
                    fontweight="bold" if on else "normal",
                    bbox={"boxstyle": "round,pad=0.35", "fc": "#fde0dd" if on else "#eef2f7",
                          "ec": "#d62728" if on else "#4c72b0", "lw": 1.6 if on else 1.0})
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.5, max(ys) + 0.8)
        ax.set_title(f"sampling: {group}" if group else "transitions", fontsize=10)
        ax.axis("off")
    fig.suptitle(
        f"every explored transition: value (planning metric, internal val split), knee epoch of "
        f"epochs trained; red: the plan ({plan.total_epochs} epochs, value {plan.final_value:.3f})"
        if plan.final_value is not None else "explored transitions", fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(plan: Plan, path: str | Path) -> None:
    """One panel per transition: the validation curve, the fitted function and its knee."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from stageplan.knee import curve

    family = (plan.rule or {}).get("family", "exp")
    delay = int((plan.rule or {}).get("delay", 10))
    params = {s["name"]: s.get("params", {}) for s in (plan.graph or {}).get("states", [])}
    records = [r for r in plan.transitions if r.values]
    if not records:
        raise ValueError("the plan has no transition curves to draw")
    chosen = chosen_edges(plan)
    cols = min(4, len(records))
    rows = math.ceil(len(records) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(records):]:
        ax.axis("off")
    for ax, rec in zip(axes.flat, records):
        t = np.arange(len(rec.values))
        ax.plot(t, rec.values, "o", ms=3.5, color="#4c72b0", label="val metric")
        fit = (rec.decision or {}).get("params")
        if fit:
            tt = np.linspace(0, len(rec.values) - 1 + delay, 200)
            with contextlib.suppress(ValueError, TypeError):
                ax.plot(tt, curve(family, fit, tt), "-", color="#ff7f0e", lw=1.2, label="fit")
        if rec.checkpoint_epoch is not None:
            ax.axvline(rec.checkpoint_epoch, color="#2ca02c", ls="--", lw=1, label="knee")
        src = state_label(params.get(rec.source, {})).replace("\n", " ")
        dst = state_label(params.get(rec.target, {})).replace("\n", " ")
        group = params.get(rec.target, {}).get("sampling", "")
        reason = (rec.decision or {}).get("reason", rec.status)
        on_path = (rec.source, rec.target) in chosen
        ax.set_title(f"{group[:4]} {src} ->\n{dst} ({reason})", fontsize=7.5,
                     color="#d62728" if on_path else "black")
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("epoch", fontsize=7)
    axes.flat[0].legend(fontsize=6.5, loc="lower right")
    fig.suptitle(f"validation curves, {family} fit and knee (red title: on the plan)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_pictures(plan: Plan, out_dir: str | Path, *, stream: TextIO | None = None) -> list[str]:
    """Write ``graph.png`` and ``curves.png`` next to ``plan.json``; skip without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if stream is not None:
            print("note: matplotlib is not installed (pip install 'stageplan[plot]'); "
                  "pictures skipped", file=stream)
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in (("graph.png", plot_graph), ("curves.png", plot_curves)):
        try:
            fn(plan, out / name)
        except ValueError as exc:
            if stream is not None:
                print(f"note: {name} skipped: {exc}", file=stream)
            continue
        written.append(str(out / name))
    return written
