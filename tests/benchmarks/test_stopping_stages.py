"""Smoke test of ``benchmarks/stopping_stages.py --quick`` and of its plateau rule."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from types import ModuleType

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_a_summary(tmp_path: pathlib.Path) -> None:
    bench = _load("stopping_stages")
    out = tmp_path / "s.json"
    records = tmp_path / "r.csv"
    rows = bench.main(["--quick", "--workers", "1", "--out", str(out), "--records", str(records)])
    data = json.loads(out.read_text())
    assert data["summary"] == rows
    kinds = {(r["kind"], r["unit"]) for r in rows}
    assert {("post_drop", "acc"), ("cosine", "acc"), ("post_drop", "ppl")} <= kinds
    rules = {r["rule"] for r in rows}
    assert {
        "evidence", "knee-exp-d10", "knee-guarded", "oracle-0.2", "patient-p10",
        "plateau-p10-th0.0001",
    } <= rules
    assert {r["split"] for r in rows} == {"tune", "held_out", "all"}
    for r in rows:
        assert 0 <= r["median_saved"] <= r["median_length"]
        assert 0 <= r["saved_fraction"] <= 1 and 0 <= r["median_saved_fraction"] <= 1
        assert r["median_regret"] >= 0 and r["max_regret"] >= r["median_regret"]
        if r["rule"] == "oracle-0.2":
            assert r["max_regret"] <= 0.2 + 1e-9  # the oracle keeps its promise
    by_split = [r for r in rows if r["split"] != "all"]
    lines = records.read_text().splitlines()
    assert out.with_suffix(".csv").exists() and len(lines) - 1 >= len(by_split)
    # the split is by source repository: every held-out record comes from another source
    header = lines[0].split(",")
    src, split = header.index("source"), header.index("split")
    for line in lines[1:]:
        fields = line.split(",")
        assert (fields[split] == "tune") == (fields[src] == "juntang-zhuang/Adabelief-Optimizer")


def test_stages_keep_the_value_before_the_stage_as_epoch_0() -> None:
    _load("stopping_stages")
    import _curves

    curve = next(c for c in _curves.load_curves() if c.id.startswith("AdaMod/resnet-sgd"))
    stages = _curves.stages_of(curve)
    assert [s.kind for s in stages] == ["first", "post_drop", "post_drop"]
    assert stages[1].values[0] == curve.values[149] and stages[1].values[1] == curve.values[150]
    assert sum(s.length for s in stages) == len(curve.values) - 1
    assert _curves.regret([1.0, 3.0, 2.0], 2, "max") == 1.0
    assert _curves.regret([5.0, 3.0, 4.0], 2, "min") == 1.0


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("patience", [0, 2, 5])
@pytest.mark.parametrize("threshold", [1e-4, 1e-2])
def test_plateau_rule_matches_torch_reduce_lr_on_plateau(
    mode: str, patience: int, threshold: float
) -> None:
    torch = pytest.importorskip("torch")
    bench = _load("stopping_stages")
    gen = torch.Generator().manual_seed(patience)
    values = (50 + torch.cumsum(torch.randn(60, generator=gen), 0)).tolist()
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, patience=patience, threshold=threshold, threshold_mode="rel"
    )
    expected = len(values) - 1
    for t, v in enumerate(values):
        sched.step(v)
        if opt.param_groups[0]["lr"] < 1.0:
            expected = t
            break
    assert bench.plateau_stop(values, mode, patience, threshold) == expected


def test_rules_option_selects_by_name_or_pattern(tmp_path: pathlib.Path) -> None:
    bench = _load("stopping_stages")
    assert set(bench.selected_rules(True, ["oracle-*", "evidence"])) == {"oracle-0.2", "evidence"}
    with pytest.raises(ValueError, match=r"\['nope\*'\] match no rule"):
        bench.selected_rules(True, ["nope*"])
    out = tmp_path / "s.json"
    rows = bench.main(
        ["--quick", "--workers", "1", "--rules", "oracle-*", "--split", "held_out",
         "--out", str(out)]
    )
    assert {r["rule"] for r in rows} == {"oracle-0.2"}
    assert {r["split"] for r in rows} == {"held_out", "all"}
