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
import shutil
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
from stageplan.integrations.optuna import OptunaStorage

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
        "stale_after": 4.0,  # above the slowest epoch on a loaded 2-core machine
    }
    store = OptunaStorage(postgres_url, study_name=study_name, checkpoint_dir=ckpt)
    try:
        run = _run_three_workers_and_kill_one(tmp_path, cfg)
        _check(run, store, reference)
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=store._backend())


def test_three_workers_on_sqlite_survive_a_kill(tmp_path: Path, reference: Any) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    run = _run_three_workers_and_kill_one(tmp_path, {"url": url, "study": "plan"})
    _check(run, OptunaStorage(url, study_name="plan"), reference)


# -- the multi-machine recipe, as the README gives it: `stageplan plan` on every machine with
# -- one --storage URL and one --checkpoints location, nothing else shared -------------------

_CAN_FAKE_HOSTS = shutil.which("unshare") is not None and hasattr(os, "geteuid") and (
    os.geteuid() == 0
)


def _machine_cmd(host: str | None, *args: str) -> list[str]:
    """``stageplan plan ...`` as a process on machine ``host`` (own UTS namespace)."""
    cmd = [sys.executable, "-m", "stageplan.cli", "plan", *args]
    if host is None:
        return cmd
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *cmd]


def _cli_args(storage: str, graph_file: Path, *extra: str) -> list[str]:
    return [
        "--graph", str(graph_file), "--fn", "plan_worker:run_transition",
        "--storage", storage, "--delay", "3", "--max-epochs", "6", "--quiet", *extra,
    ]  # fmt: skip


def _machine_env(home: Path, log: Path, sleep: float) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(WORKER.parent)]),
        "PLAN_WORKER_LOG": str(log),
        "PLAN_WORKER_SLEEP": str(sleep),
        "TMPDIR": str(home),  # each machine its own scratch and checkpoint cache
        "HOME": str(home),
    }


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, float]]:
    """The plan one uninterrupted `stageplan plan` makes on a directory storage."""
    root = tmp_path_factory.mktemp("cli-ref")
    graph_file = root / "graph.json"
    graph_file.write_text(json.dumps(plan_worker.graph().to_dict()))
    out = root / "plan.json"
    env = _machine_env(root / "home", root / "log", 0.0)
    proc = subprocess.run(
        _machine_cmd(None, *_cli_args(str(root / "store"), graph_file, "--out", str(out))),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _stages(out)


def _stages(plan_file: Path) -> list[tuple[str, int, float]]:
    from stageplan import Plan

    p = Plan.load(plan_file)
    return [(s.state, s.epochs, round(float(s.value or 0.0), 9)) for s in p.stages]


def _wait_for(log: Path, pred: Any, timeout: float) -> tuple[str, int, int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in _log_lines(log):
            if pred(row):
                return row
        time.sleep(0.05)
    raise AssertionError(f"no epoch line matched within {timeout} s: {_log_lines(log)[-5:]}")


def _storages(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if request.param == "journal":
        return f"journal:{tmp_path / 'plan.log'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def _recipe(tmp_path: Path, storage: str) -> tuple[list[str], Path, Path]:
    """The workers' command-line arguments, their epoch log and the shared checkpoint folder."""
    graph_file = tmp_path / "graph.json"
    graph_file.write_text(json.dumps(plan_worker.graph().to_dict()))
    ckpt = tmp_path / "shared-checkpoints"
    args = _cli_args(storage, graph_file, "--checkpoints", str(ckpt))
    return args, tmp_path / "epochs.log", ckpt


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_storage(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return _storages(tmp_path, request)


@pytest.mark.skipif(not _CAN_FAKE_HOSTS, reason="needs root and unshare to fake a second host")
def test_ctrl_c_frees_the_claim_for_a_worker_on_another_host(
    tmp_path: Path, shared_storage: str, cli_reference: list[tuple[str, int, float]]
) -> None:
    args, log, _ = _recipe(tmp_path, shared_storage)
    a = subprocess.Popen(
        _machine_cmd("machine-a", *args), env=_machine_env(tmp_path / "a", log, 0.2),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        edge, epoch, _, _ = _wait_for(log, lambda r: r[1] >= 2, timeout=60)
        a.send_signal(signal.SIGINT)
        _, err = a.communicate(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    interrupted_at = time.time()
    # Machine B: default stale_after (600 s). It must take the transition at once.
    b = subprocess.run(
        _machine_cmd("machine-b", *args, "--out", str(tmp_path / "plan.json")),
        env=_machine_env(tmp_path / "b", log, 0.0), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert b.returncode == 0, b.stderr[-3000:]
    resumed = [r for r in _log_lines(log) if r[0] == edge and r[3] > interrupted_at]
    assert resumed, f"machine b never ran {edge}"
    # Far below stale_after (600 s): B took it at once; the bound leaves room for B's start-up
    # on a loaded machine.
    assert resumed[0][3] - interrupted_at < 60.0
    assert 1 <= resumed[0][1] <= epoch + 1, f"not resumed from a kept checkpoint: {resumed[:3]}"
    assert _stages(tmp_path / "plan.json") == cli_reference


@pytest.mark.postgres
@pytest.mark.skipif(not _CAN_FAKE_HOSTS, reason="needs root and unshare to fake other hosts")
def test_three_machines_share_only_a_new_database_and_a_checkpoint_location(
    tmp_path: Path, fresh_postgres_url: str, cli_reference: list[tuple[str, int, float]]
) -> None:
    """The README recipe: started at once on a new database, one machine killed mid-way."""
    args, log, ckpt = _recipe(tmp_path, fresh_postgres_url)
    procs = {
        host: subprocess.Popen(
            _machine_cmd(host, *args, "--stale-after", "2", "--out", f"{tmp_path}/{host}.json"),
            env=_machine_env(tmp_path / host, log, 0.1),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for host in ("m1", "m2", "m3")
    }
    pids = {p.pid for p in procs.values()}
    try:
        _, _, victim_pid, _ = _wait_for(log, lambda r: r[1] >= 2 and r[2] in pids, timeout=90)
    except AssertionError:
        for p in procs.values():
            p.kill()
        raise
    # The log holds the worker's pid as its namespace shows it: the real pid (no PID namespace).
    victim = next(h for h, p in procs.items() if p.pid == victim_pid)
    procs[victim].kill()
    outputs = {h: p.communicate(timeout=180) for h, p in procs.items()}
    for host, p in procs.items():
        if host != victim:
            assert p.returncode == 0, outputs[host][1][-3000:]
            assert _stages(tmp_path / f"{host}.json") == cli_reference
    store = OptunaStorage(fresh_postgres_url, study_name="stageplan", checkpoint_dir=ckpt)
    for edge, states in _trial_states(store).items():
        assert states.count(TrialState.COMPLETE) == 1, (edge, states)
    kept = {r.checkpoint for r in store.records().values() if r.checkpoint}
    on_disk = {str(p.relative_to(ckpt)) for p in ckpt.glob("*/*")}
    assert on_disk <= kept, f"orphaned checkpoints: {sorted(on_disk - kept)}"


def _trial_states(store: OptunaStorage) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for t in store.load_study().get_trials():
        out[t.user_attrs["stageplan:edge"]].append(t.state)
    return out
