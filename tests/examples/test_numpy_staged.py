"""The README's first command runs this example: it must plan and stop on the knee rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stageplan import Plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numpy_staged.py"


def test_example_plans_with_the_knee_rule(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("numpy_staged", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--out", str(tmp_path), "--quiet"])
    again = Plan.load(tmp_path / "plan.json")
    assert again.to_dict() == result.to_dict()
    assert len(result.transitions) == 36 // 2  # one sampling group: 16 + 2 edges
    reasons = {t.decision["reason"] for t in result.transitions if t.decision}
    # the default (evidence) rule stops every transition before the 60-epoch cap
    assert reasons == {"converged"}, reasons
    assert result.stages[-1].state == "resolution=16,learning_rate=0.02"
    # six classes: chance is 1/6; the plan must be far above it
    assert result.final_value is not None and result.final_value > 0.6
