"""publish_plan, checked through the HTTP API of a real optuna-dashboard server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna_dashboard")

import optuna  # noqa: E402
from optuna_dashboard import get_note  # noqa: E402
from stageplan.integrations.optuna import PLAN_ATTR, OptunaStorage, publish_plan  # noqa: E402

from stageplan import KneeRule, Plan, Stage, TransitionGraph, plan  # noqa: E402


def curve(trial: Any) -> None:
    """A peaked curve whose height grows with the size and shrinks with the learning rate."""
    top = trial.params["size"] * (1.0 - trial.params["lr"])
    for epoch in trial.epochs():
        trial.report(top * min(epoch, 3) / 3 - 0.01 * max(epoch - 3, 0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def planned(tmp_path: Path) -> tuple[str, Plan]:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    graph = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.5, 0.1]))
    result = plan(graph, curve, storage=url, rule=KneeRule(delay=2, max_epochs=6),
                  progress=False)
    return url, result


@pytest.fixture
def dashboard(planned: tuple[str, Plan]) -> Any:
    url, _ = planned
    port = _free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen(
        [str(exe), url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                _get(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"optuna-dashboard did not start: {server.stderr.read()!r}"  # type: ignore[union-attr]
                    ) from None
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def _study(base: str) -> dict[str, Any]:
    summaries = _get(f"{base}/api/studies")["study_summaries"]
    (only,) = [s for s in summaries if s["study_name"] == "stageplan"]
    return _get(f"{base}/api/studies/{only['study_id']}")  # type: ignore[no-any-return]


def test_the_dashboard_shows_the_plan(planned: tuple[str, Plan], dashboard: str) -> None:
    url, result = planned
    assert _study(dashboard)["note"]["body"] == ""  # nothing before publishing
    info = publish_plan(url, result)
    study = _study(dashboard)
    note = study["note"]["body"]
    trials = {t["number"]: t for t in study["trials"]}
    chosen = [s["trial"] for s in info["stages"]]
    assert None not in chosen and len(chosen) == len(result.stages)
    for stage, number in zip(result.stages, chosen):
        # the table row: state, epochs, value and the trial of the transition into it
        assert f"| `{stage.state}` |" in note
        row = next(line for line in note.splitlines() if f"| `{stage.state}` |" in line)
        assert f"| {stage.epochs} |" in row and f"| #{number} |" in row
        assert f"{stage.value:.4g}" in row
        attrs = {a["key"]: a["value"] for a in trials[number]["user_attrs"]}
        assert attrs["stageplan:source"] == stage.source
        assert attrs["stageplan:target"] == stage.state
        assert "Chosen by the plan" in trials[number]["note"]["body"]
    assert f"{result.total_epochs} epochs, final value {result.final_value:.4g}" in note
    assert " → ".join(f"`{s}`" for s in ["start", *[s.state for s in result.stages]]) in note
    others = [t for n, t in trials.items() if n not in chosen]
    assert others and all(t["note"]["body"] == "" for t in others)
    shown = {a["key"]: a["value"] for a in study["user_attrs"]}
    assert json.loads(shown[PLAN_ATTR])["final_value"] == result.final_value


def test_publishing_again_moves_the_trial_notes(planned: tuple[str, Plan]) -> None:
    url, result = planned
    publish_plan(url, result)
    first = publish_plan(OptunaStorage(url), result)  # the same plan: same notes
    # a plan that stops after one other start transition (as a user might publish by hand)
    other = next(t for t in result.transitions
                 if t.source == "start" and t.target != result.stages[0].state)
    state = TransitionGraph.from_dict(result.graph or {}).state(other.target)
    short = Plan(stages=(Stage(state=other.target, params=state.params,
                               epochs=other.checkpoint_epoch or 0, value=other.value,
                               source="start"),),
                 final_value=other.value, transitions=result.transitions)
    second = publish_plan(url, short)
    study = OptunaStorage(url).load_study()
    notes = {t.number: get_note(optuna.trial.Trial(study, t._trial_id)) for t in study.trials}
    (now,) = [s["trial"] for s in second["stages"]]
    assert "stage 1 of 1" in notes[now]
    for s in first["stages"]:
        if s["trial"] != now:
            assert notes[s["trial"]] == ""
    assert study.user_attrs[PLAN_ATTR] == second


def test_a_plan_from_another_study_is_refused(planned: tuple[str, Plan], tmp_path: Path) -> None:
    _, result = planned
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    graph = TransitionGraph.grid(("size", [4]), ("lr", [0.5]))
    plan(graph, curve, storage=elsewhere, rule=KneeRule(delay=2, max_epochs=6), progress=False)
    with pytest.raises(ValueError, match="no finished trial.*start -> "):
        publish_plan(elsewhere, result)
    with pytest.raises(ValueError, match="study_name"):
        publish_plan(elsewhere, result, study_name="")
