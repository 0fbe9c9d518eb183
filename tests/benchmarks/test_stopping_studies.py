"""Smoke test of ``benchmarks/stopping_studies.py --quick``."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from types import ModuleType

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "stopping_studies.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stopping_studies_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_run_replays_studies_under_each_pruner(tmp_path: pathlib.Path) -> None:
    bench = _load()
    out = tmp_path / "s.json"
    summary = bench.main(["--quick", "--workers", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["summary"] == summary
    by = {(r["study"], r["pruner"]): r for r in summary}
    assert {s for s, _ in by} == {"nb201", "cifar10-resnet", "ptb-2layer"}
    for (_study, pruner), r in by.items():
        assert 0 <= r["mean_epochs"] <= r["full_epochs"]
        assert r["mean_regret"] >= -1e-9
        if pruner == "none":
            # nothing pruned: every epoch is spent and the best model is kept
            assert r["mean_epochs"] == r["full_epochs"] and abs(r["mean_regret"]) < 1e-9
            assert r["mean_completed"] == r["trials"]
    assert any(r["saved_fraction"] > 0 for (_s, p), r in by.items() if p == "knee")
    assert {p for _s, p in by} >= {"knee", "knee_paper", "knee_guarded"}
    # the PTB study is all Adabelief-Optimizer (tuning source); NB201 is held out
    assert by[("ptb-2layer", "knee")]["study_split"] == "tune"
    assert by[("nb201", "knee")]["study_split"] == "held_out"
