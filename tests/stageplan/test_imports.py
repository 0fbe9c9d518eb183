"""The core must import without torch, optuna, av or matplotlib (numpy and scipy only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

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


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def test_every_package_folder_is_installed() -> None:
    # pyproject.toml lists the packages by hand (integrations/ is mapped to
    # stageplan.integrations); a subpackage missing from the list would be left out of wheels.
    root = _repo_root()
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ])
    found = set()
    for init in root.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(root)
        if rel.parts[0] not in ("stageplan", "video3d", "integrations"):
            continue
        name = ".".join(rel.parts)
        found.add("stageplan." + name if rel.parts[0] == "integrations" else name)
    assert found - listed == set(), f"packages missing from pyproject.toml: {found - listed}"


def test_old_integrations_name_is_a_warning_shim_over_the_same_modules(tmp_path: Path) -> None:
    code = (
        "import warnings, sys\n"
        "import stageplan.integrations.optuna as new\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import integrations.optuna as old\n"
        "    from integrations.optuna._storage import OptunaStorage\n"
        "print(old is new, OptunaStorage is new.OptunaStorage,\n"
        "      any(issubclass(w.category, DeprecationWarning) and 'stageplan.integrations'\n"
        "          in str(w.message) for w in caught))\n"
    )
    # Run outside the repository, so the installed package (not the checkout) is imported.
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
