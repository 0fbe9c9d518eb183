"""The core must import without torch, optuna, av or matplotlib (numpy and scipy only)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "optuna", "av", "matplotlib", "torchvision", "sqlalchemy")


def test_core_imports_nothing_heavy() -> None:
    code = (
        "import sys, stageplan, stageplan.cli, stageplan.knee, stageplan.storage\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"the core imported {done.stdout.strip()}"


def test_core_works_when_heavy_packages_are_missing() -> None:
    # Make every heavy import fail, then plan a tiny graph end to end.
    code = (
        "import sys, tempfile\n"
        f"for m in {HEAVY!r}: sys.modules[m] = None\n"
        "from stageplan import KneeRule, TransitionGraph, plan\n"
        "g = TransitionGraph.grid(('size', [1, 2]), ('lr', [0.1, 0.01]))\n"
        "def fn(trial):\n"
        "    for e in trial.epochs():\n"
        "        trial.report(min(e, 6) * trial.params['size'] - 0.01 * e * e)\n"
        "p = plan(g, fn, storage=tempfile.mkdtemp(), rule=KneeRule(delay=3, max_epochs=30),\n"
        "         progress=False)\n"
        "print(p.stages[-1].state)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "size=2,lr=0.01"
