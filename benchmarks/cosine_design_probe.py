"""How the cosine evidence of ``KneeRule(schedule="cosine")`` was chosen: a design probe.

Replays variants of the evidence under a cosine schedule on the NAS-Bench-201 curves that the
stage benchmark does *not* report (``stopping_stages.py`` reports every 3rd curve; this probe
uses the others unless ``--reported``). Each variant fits the value as a polynomial in the
cosine LR share ``(1 + cos(pi t / T)) / 2`` over the epochs whose LR is at most ``fit_share``
of the start, never stops before ``anneal_origin(T) + delay`` (LR at most a tenth), and stops
once the chance of beating the best observed value by ``tolerance`` residual sds is below
``risk``. ``chance="curve"``: the fitted curve's own uncertainty, at its most favourable epoch
ahead (what the library does); ``chance="epoch"``: some noisy epoch ahead (the curve's
uncertainty plus one observation's noise, as the constant-LR evidence does). The probe is a
separate, plain implementation (numpy ``lstsq``); the row ``library`` replays
``KneeRule(max_epochs=T, schedule="cosine")`` itself, which the variant
``0.3 / 2 / curve`` must match.

Usage:
    python benchmarks/cosine_design_probe.py [--reported]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _curves  # noqa: E402

from stageplan.knee import KneeRule  # noqa: E402
from stageplan.knee._rule import anneal_origin  # noqa: E402

# (fit_share, degree, chance, risk): the grid of fit windows and degrees at the default risk,
# then the chosen window at other risks and the "some noisy epoch" chance
VARIANTS = [
    *((share, degree, "curve", 0.2) for share in (0.1, 0.2, 0.3, 0.5) for degree in (1, 2)),
    (0.3, 2, "curve", 0.1),
    (0.3, 2, "curve", 0.3),
    (0.3, 2, "epoch", 0.2),
    (0.1, 2, "epoch", 0.2),
]
DELAY = 10
TOLERANCE = 1.0


def _lr(t: np.ndarray, budget: int) -> np.ndarray:
    return 0.5 * (1.0 + np.cos(np.pi * t / budget))  # type: ignore[no-any-return]


def stop_epoch(values: np.ndarray, share: float, degree: int, chance: str, risk: float) -> int:
    """Epoch at which the variant stops (the budget if it never does)."""
    budget = values.size - 1
    start = anneal_origin(budget, share)
    for t in range(anneal_origin(budget) + DELAY, budget):
        seen = np.arange(start, t + 1, dtype=np.float64)
        x = np.vander(_lr(seen, budget), degree + 1)
        y = values[start : t + 1]
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        s = math.sqrt(float(np.sum((y - x @ coef) ** 2)) / max(y.size - degree - 1, 1))
        inv = np.linalg.pinv(x.T @ x)
        xa = np.vander(_lr(np.arange(t + 1.0, budget + 1.0), budget), degree + 1)
        var = s * s * np.einsum("ij,jk,ik->i", xa, inv, xa)
        if chance == "epoch":
            var = var + s * s
        z = (xa @ coef - float(values[: t + 1].max()) - TOLERANCE * s) / np.sqrt(var)
        p = float(np.max(ndtr(z))) if chance == "curve" else 1.0 - float(np.prod(ndtr(-z)))
        if p < risk:
            return t
    return budget


def summary(stops: list[int], curves: list[np.ndarray]) -> str:
    saved = np.array([(c.size - 1 - t) / (c.size - 1) for t, c in zip(stops, curves)])
    regret = np.array([c.max() - c[: t + 1].max() for t, c in zip(stops, curves)])
    return (
        f"{np.median(saved) * 100:6.1f} {saved.mean() * 100:6.1f} {np.median(regret):6.2f} "
        f"{regret.mean():6.2f} {np.mean(regret > 1) * 100:5.0f}% {regret.max():6.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--reported", action="store_true", help="the every-3rd curves the stage benchmark reports"
    )
    args = parser.parse_args(argv)
    nb201 = [c for c in _curves.load_curves() if c.group == "nb201_mintal"]
    picked = nb201[::3] if args.reported else [c for i, c in enumerate(nb201) if i % 3]
    curves = [np.asarray(c.values, dtype=np.float64) for c in picked]
    print(f"{len(curves)} NB201 cosine curves ({'reported' if args.reported else 'design'})")
    print(
        f"{'variant (share/deg/chance/risk)':32s} {'sv med':>6s} {'sv tot':>6s} "
        f"{'rg med':>6s} {'rg avg':>6s} {'>1pt':>6s} {'rg max':>6s}"
    )
    for share, degree, chance, risk in VARIANTS:
        stops = [stop_epoch(c, share, degree, chance, risk) for c in curves]
        name = f"{share:g} / {degree} / {chance} / {risk:g}"
        print(f"{name:32s} {summary(stops, curves)}", flush=True)
    library = [
        KneeRule("exp", DELAY, max_epochs=c.size - 1, schedule="cosine").replay(c).epoch
        for c in curves
    ]
    print(f"{'library KneeRule(schedule=cosine)':32s} {summary(library, curves)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
