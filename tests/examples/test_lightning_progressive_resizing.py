"""The Lightning example plans a staged schedule (at its reduced --quick size)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import torch  # noqa: E402

from stageplan import Plan  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_progressive_resizing.py"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is as fast, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_example_plans_image_size_and_learning_rate(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("lightning_progressive_resizing", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--out", str(tmp_path), "--quick", "--quiet"])
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert Plan.from_dict(saved).to_dict() == result.to_dict()
    graph, _, _ = module.build(quick=True)
    assert len(result.transitions) == len(graph.edges)
    assert all(t.status == "complete" for t in result.transitions), result.summary()
    # the plan ends in the final state (full size, lowest learning rate)
    assert result.stages[-1].params == {"image_size": 16, "learning_rate": 3e-4}
    # four classes: chance is 0.25; even the quick run learns the angle (0.5) and more
    assert result.final_value is not None and result.final_value > 0.4
