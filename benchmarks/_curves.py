"""Real learning curves for the stopping-rule benchmarks: loading, stages and studies.

The curves live in ``benchmarks/data/real_curves.json`` (a copy of the 275 public curves, with
their provenance fields ``source_repo``, ``source_path``, ``commit`` and ``license``; the
per-epoch training values were dropped). ``values[0]`` is the first trained epoch unless
``first_epoch_label`` is 0 (then it is the model before training).

A *stage* is the run of epochs between two learning-rate drops. Its epoch 0 is the value just
before the stage (the last epoch at the old learning rate). The first stage of a curve has no
logged pre-training value (except where ``first_epoch_label`` is 0), so its epoch 0 is the first
logged value and it has one trained epoch fewer than the run.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "real_curves.json"
PROVENANCE = ("source_repo", "source_path", "commit", "license")


@dataclass(frozen=True)
class Curve:
    """One real curve and its provenance."""

    id: str
    task: str
    metric: str
    mode: str
    schedule: str
    values: tuple[float, ...]
    lr_drop_epochs: tuple[int, ...]
    source_repo: str
    license: str

    @property
    def group(self) -> str:
        """Source group: the id's first component (``LSTM`` runs get their own group)."""
        head = self.id.split("/")[0]
        return f"{head}/LSTM" if "/LSTM/" in self.id else head

    @property
    def cosine(self) -> bool:
        return "cosine" in self.schedule.lower()

    @property
    def scale(self) -> float:
        """Factor to points: accuracy fractions become percentages, the rest stay as they are."""
        return 100.0 if "fraction" in self.metric else 1.0


@dataclass(frozen=True)
class Stage:
    """One stage of a curve: ``values[0]`` is the value before the stage."""

    curve_id: str
    index: int
    kind: str  # "first", "post_drop", "cosine" or "constant"
    mode: str
    metric: str
    values: tuple[float, ...]
    source_repo: str = ""

    @property
    def length(self) -> int:
        """Trained epochs in the stage (``len(values) - 1``)."""
        return len(self.values) - 1

    @property
    def key(self) -> str:
        return f"{self.curve_id}#{self.index}"


def load_curves(path: Path | str = DATA) -> list[Curve]:
    """Load the curves; every entry must carry its provenance fields."""
    with open(path, encoding="utf-8") as fh:
        raw: list[dict[str, Any]] = json.load(fh)
    curves = []
    for entry in raw:
        missing = [k for k in PROVENANCE if not entry.get(k)]
        if missing:
            raise ValueError(f"curve {entry.get('id')!r} misses provenance fields {missing}.")
        values = entry["values"]
        if entry.get("first_epoch_label", 1) not in (0, 1):
            raise ValueError(f"curve {entry['id']!r}: unexpected first_epoch_label.")
        curves.append(
            Curve(
                id=entry["id"],
                task=entry["task"],
                metric=entry["metric"],
                mode=entry["mode"],
                schedule=entry["schedule"],
                values=tuple(float(v) for v in values),
                lr_drop_epochs=tuple(entry.get("lr_drop_epochs") or ()),
                source_repo=entry["source_repo"],
                license=entry["license"],
            )
        )
    return curves


def stages_of(curve: Curve) -> list[Stage]:
    """Split a curve at its learning-rate drops (1-based indices of the first new-LR epoch)."""
    v = tuple(x * curve.scale for x in curve.values)
    # 0-based index into values of each stage's first trained epoch.
    starts = [d - 1 for d in curve.lr_drop_epochs if 1 < d <= len(v)]
    bounds = [0, *starts, len(v)]
    stages = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        # epoch 0 = the value just before the stage (for stage 0: the first logged value).
        vals = v[lo:hi] if i == 0 else v[lo - 1 : hi]
        if i > 0:
            kind = "post_drop"
        elif curve.cosine:
            kind = "cosine"
        elif not curve.lr_drop_epochs:
            kind = "constant"
        else:
            kind = "first"
        stages.append(
            Stage(curve.id, i, kind, curve.mode, curve.metric, tuple(vals), curve.source_repo)
        )
    return stages


def best_index(values: Sequence[float], mode: str) -> int:
    """Index of the best finite value (earliest on ties)."""
    sign = 1.0 if mode == "max" else -1.0
    best, at = -math.inf, 0
    for i, x in enumerate(values):
        if math.isfinite(x) and sign * x > best:
            best, at = sign * x, i
    return at


def regret(values: Sequence[float], kept: int, mode: str) -> float:
    """Best value of ``values`` minus the kept one, in the metric's units (>= 0)."""
    best = values[best_index(values, mode)]
    return float(best - values[kept]) if mode == "max" else float(values[kept] - best)


def oracle_stop(values: Sequence[float], mode: str, tolerance: float) -> int:
    """Hindsight oracle: the first epoch whose best-so-far is within ``tolerance`` of the best.

    It keeps the best checkpoint so far, so its regret is at most ``tolerance``.
    """
    sign = 1.0 if mode == "max" else -1.0
    top = sign * values[best_index(values, mode)]
    running = -math.inf
    for t, x in enumerate(values):
        if math.isfinite(x):
            running = max(running, sign * x)
        if running >= top - tolerance:
            return t
    return len(values) - 1


TUNE_SOURCES = ("juntang-zhuang/Adabelief-Optimizer",)
"""The source repository the evidence rule's defaults were tuned on; every other is held out."""


def selected(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches one of the shell-style ``patterns`` (every name when empty):
    the ``--rules`` / ``--pruners`` / ``--studies`` filters of the stopping benchmarks.

    Example:
        >>> selected("oracle-0.2", ["evidence*", "oracle-*"]), selected("knee", [])
        (True, True)
    """
    return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def split_of(source_repo: str, tune: Sequence[str] = TUNE_SOURCES) -> str:
    """``"tune"`` for a tuning source, ``"held_out"`` for the rest."""
    return "tune" if source_repo in tune else "held_out"


def studies(curves: Iterable[Curve]) -> dict[str, list[Curve]]:
    """Groups of curves on the same task and budget (see ``benchmarks/RESULTS.md``).

    - ``nb201``: the NAS-Bench-201 cifar10-valid curves (200 epochs, cosine);
    - ``cifar10-<arch>``: the CIFAR-10 optimizer runs (200 epochs, drop at 151) per architecture;
    - ``cifar100-<arch>``: the AdaMod CIFAR-100 runs (300 epochs) per architecture;
    - ``ptb-<n>layer``: the PTB LSTM runs per depth.
    """
    out: dict[str, list[Curve]] = {}
    for c in curves:
        g = c.group
        name: str | None = None
        if g == "nb201_mintal":
            name = "nb201"
        elif g == "Adabelief-Optimizer/LSTM":
            depth = c.id.split("nlayers")[1][0]
            name = f"ptb-{depth}layer"
        elif g in ("Adabelief-Optimizer", "AdaBound", "ACProp-Optimizer"):
            name = f"cifar10-{c.id.split('/')[1].split('-')[0]}"
        elif g == "AdaMod":
            name = f"cifar100-{c.id.split('/')[1].split('-')[0]}"
        if name is not None:
            out.setdefault(name, []).append(c)
    return out
