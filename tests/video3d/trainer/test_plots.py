"""Pictures of a plan (graph with the chosen path, curves with fits and knees)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stageplan import Trial, plan
from video3d.trainer import get_preset, graph_for, rule_for, save_pictures
from video3d.trainer._plots import chosen_edges, state_label


def _fn(trial: Trial) -> None:
    top = 0.5 + 0.1 * trial.params["clip_length"] / 8  # type: ignore[operator]
    for epoch in trial.epochs():
        trial.report(top * (1 - 0.5 ** epoch) - 0.01 * max(epoch - 4, 0))


@pytest.fixture(scope="module")
def made_plan(tmp_path_factory: pytest.TempPathFactory) -> object:
    cfg = get_preset("synthetic").replace(max_epochs=12)
    return plan(graph_for(cfg), _fn, storage=tmp_path_factory.mktemp("s"), rule=rule_for(cfg),
                progress=False)


def test_pictures_are_written(made_plan: object, tmp_path: Path) -> None:
    files = save_pictures(made_plan, tmp_path)  # type: ignore[arg-type]
    assert [Path(f).name for f in files] == ["graph.png", "curves.png"]
    assert all(Path(f).stat().st_size > 20_000 for f in files)


def test_chosen_edges_follow_the_stages(made_plan: object) -> None:
    edges = chosen_edges(made_plan)  # type: ignore[arg-type]
    assert len(edges) == len(made_plan.stages)  # type: ignore[attr-defined]
    assert any(src == "start" for src, _ in edges)


def test_state_label() -> None:
    assert state_label({"sampling": "uniform", "clip_length": 16, "learning_rate": 0.01}) == (
        "clip 16\nlr 0.01")


def test_without_matplotlib_pictures_are_skipped_with_a_note(
    made_plan: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert save_pictures(made_plan, tmp_path, stream=sys.stdout) == []  # type: ignore[arg-type]
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
