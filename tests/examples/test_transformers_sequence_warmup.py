"""The Transformers example plans a staged schedule (at its reduced --quick size)."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
pytest.importorskip("transformers")

import torch  # noqa: E402

from stageplan import Plan  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transformers_sequence_warmup.py"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is as fast, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_example_plans_sequence_length_and_learning_rate(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("transformers_sequence_warmup", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--out", str(tmp_path), "--quick", "--quiet"])
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert Plan.from_dict(saved).to_dict() == result.to_dict()
    graph, _, _ = module.build(quick=True, workdir=tmp_path)
    assert len(result.transitions) == len(graph.edges)
    assert all(t.status == "complete" for t in result.transitions), result.summary()
    assert result.stages[-1].params == {"seq_len": 64, "learning_rate": 1e-3}
    # two balanced classes: chance is 0.5; at the full length every marker is in sight
    assert result.final_value is not None and result.final_value > 0.75
