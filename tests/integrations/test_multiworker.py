"""Three worker processes share one plan; one is killed with SIGKILL mid-transition.

Each worker runs ``plan_worker.py`` (a deterministic synthetic trainer that sleeps a little per
epoch and logs every epoch it runs). The tests check that ready transitions are spread over the
workers, that no transition ever runs in two workers at once, that the killed worker's
transition is taken over and resumed from its last kept checkpoint, that nothing is lost or
duplicated, and that the result equals a one-worker plan.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from integrations.optuna import OptunaStorage
from stageplan import LocalStorage, plan

sys.path.insert(0, str(Path(__file__).parent))
import plan_worker  # noqa: E402

WORKER = Path(__file__).with_name("plan_worker.py")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _log_lines(path: Path) -> list[tuple[str, int, int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 4:
            out.append((parts[0], int(parts[1]), int(parts[2]), float(parts[3])))
    return out


def _run_three_workers_and_kill_one(tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    log = tmp_path / "epochs.log"
    cfg = {**cfg, "log": str(log), "sleep": 0.1}
    cfg_path = tmp_path / "worker.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(cfg_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    by_pid = {p.pid: p for p in procs}
    killed: tuple[int, str] | None = None
    deadline = time.monotonic() + 30
    try:
        while killed is None and time.monotonic() < deadline:
            for edge, epoch, pid, _ in _log_lines(log):
                if epoch >= 2 and pid in by_pid and by_pid[pid].poll() is None:
                    os.kill(pid, signal.SIGKILL)
                    killed = (pid, edge)
                    break
            time.sleep(0.02)
        assert killed is not None, "no worker reached epoch 2 of a transition"
        outputs = {p.pid: p.communicate(timeout=60) for p in procs}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p in procs:
        if p.pid != killed[0]:
            assert p.returncode == 0, outputs[p.pid][1][-3000:]
    assert by_pid[killed[0]].returncode == -signal.SIGKILL
    return {"killed_pid": killed[0], "killed_edge": killed[1], "lines": _log_lines(log)}


def _check(run: dict[str, Any], store: OptunaStorage, reference: Any) -> None:
    graph = plan_worker.graph()
    per_edge: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for edge, epoch, pid, t in run["lines"]:
        per_edge[edge].append((epoch, pid, t))
    assert len(per_edge) == len(graph.edges)
    pids_used = {pid for rows in per_edge.values() for _, pid, _ in rows}
    assert len(pids_used) >= 2, "ready transitions were not spread over the workers"
    for edge, rows in per_edge.items():
        rows.sort(key=lambda r: r[2])
        pids = [pid for _, pid, _ in rows]
        if edge != run["killed_edge"]:
            assert len(set(pids)) == 1, f"{edge} ran in several workers: {rows}"
            assert [e for e, _, _ in rows] == list(range(len(rows))), f"{edge}: {rows}"
            continue
        # The killed transition: the dead worker's epochs, then the taker's, never interleaved.
        first_taker = next(i for i, pid in enumerate(pids) if pid != run["killed_pid"])
        assert all(pid == run["killed_pid"] for pid in pids[:first_taker])
        taker = pids[first_taker]
        assert all(pid == taker for pid in pids[first_taker:]), f"{edge}: {rows}"
        epochs = [e for e, _, _ in rows]
        killed_last = epochs[first_taker - 1]
        resumed_at = epochs[first_taker]
        assert 1 < resumed_at <= killed_last + 1, f"did not resume from a kept checkpoint: {rows}"
        assert epochs[first_taker:] == list(
            range(resumed_at, resumed_at + len(epochs) - first_taker)
        )

    # Nothing lost or duplicated in the study.
    trials = store.load_study().get_trials()
    states = defaultdict(list)
    for t in trials:
        states[t.user_attrs["stageplan:edge"].replace(" -> ", "->")].append(t)
    for edge, ts in states.items():
        complete = [t for t in ts if t.state == TrialState.COMPLETE]
        assert len(complete) == 1, f"{edge}: {[t.state for t in ts]}"
        others = [t for t in ts if t.state != TrialState.COMPLETE]
        if edge == run["killed_edge"]:
            assert [t.state for t in others] == [TrialState.FAIL], [
                (
                    t.number,
                    t.state.name,
                    t.user_attrs.get("stageplan:takes_over"),
                    t.user_attrs.get("stageplan:taken_over_by"),
                )
                for t in ts
            ]
            assert others[0].user_attrs["stageplan:taken_over_by"]
            assert complete[0].user_attrs["stageplan:takes_over"] == others[0].number
        else:
            assert others == []
    records = store.records()
    assert sorted(records) == sorted((a.name, b.name) for a, b in graph.edges)
    assert all(r.status == "complete" for r in records.values())

    # A restarted plan resumes a finished plan: nothing runs again, same plan as one worker.
    calls: list[Any] = []
    again = plan(graph, calls.append, storage=store, rule=plan_worker.RULE, progress=False)
    assert calls == []
    assert [(s.state, s.epochs, s.value) for s in again.stages] == [
        (s.state, s.epochs, s.value) for s in reference.stages
    ]
    want = {r.edge: (r.values, r.knee_epoch, r.value) for r in reference.transitions}
    got = {r.edge: (r.values, r.knee_epoch, r.value) for r in again.transitions}
    assert got == want


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return plan(
        plan_worker.graph(),
        plan_worker.make_fn(None, 0.0),
        storage=LocalStorage(tmp_path_factory.mktemp("ref")),
        rule=plan_worker.RULE,
        progress=False,
    )


def test_three_workers_on_a_journal_file_survive_a_kill(tmp_path: Path, reference: Any) -> None:
    url = f"journal:{tmp_path / 'plan.log'}"
    run = _run_three_workers_and_kill_one(tmp_path, {"url": url, "study": "plan"})
    _check(run, OptunaStorage(url, study_name="plan"), reference)


@pytest.mark.postgres
def test_three_workers_on_postgres_survive_a_kill(
    tmp_path: Path, reference: Any, postgres_url: str, study_name: str
) -> None:
    ckpt = str(tmp_path / "checkpoints")
    cfg = {
        "url": postgres_url,
        "study": study_name,
        "storage_kwargs": {"checkpoint_dir": ckpt},
        "check_pids": False,  # detect the dead worker by its heartbeat alone
        "stale_after": 1.5,
    }
    store = OptunaStorage(postgres_url, study_name=study_name, checkpoint_dir=ckpt)
    try:
        run = _run_three_workers_and_kill_one(tmp_path, cfg)
        _check(run, store, reference)
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=store._backend())
