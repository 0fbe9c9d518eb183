"""End-to-end planner tests with synthetic trainers whose best path is known by construction."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stageplan import (
    KneeRule,
    LocalStorage,
    PlanningError,
    State,
    StorageError,
    StorageMismatchError,
    TransitionFailedError,
    TransitionGraph,
    Trial,
    plan,
)

RULE = KneeRule.paper(delay=3, max_epochs=40)  # the tests below check the paper's knee stops


def curve(v0: float, gain: float, t: int) -> float:
    """Exactly an 'exp' family curve: rises by ``gain``, peaks near epoch 6-7, then decays."""
    return v0 + gain * (1 - math.exp(-t / 4)) - 0.004 * abs(gain) * t * t


def reference_knee(v0: float, gain: float, horizon: int = 40) -> tuple[int, float]:
    values = [curve(v0, gain, t) for t in range(horizon)]
    best = max(range(horizon), key=lambda t: (values[t], -t))
    return best, values[best]


class CurveTrainer:
    """A 'model' is one number stored in a JSON checkpoint; training follows ``curve``.

    ``gains[(source, target)]`` sets what the transition adds; ``penalty[target]`` is
    subtracted from the start value when the old model is evaluated under the target's
    settings (a new clip length hurts at first).
    """

    def __init__(
        self,
        gains: dict[tuple[str, str], float],
        log: Path | None = None,
        crash_at: tuple[str, str, int] | None = None,
    ) -> None:
        self.gains = gains
        self.log = log
        self.crash_at = crash_at

    def __call__(self, trial: Trial) -> None:
        key = (trial.source.name, trial.target.name)
        if self.log is not None:
            with open(self.log, "a") as fh:
                fh.write(
                    json.dumps({"edge": key, "resumed": trial.resumed, "epoch": trial.epoch})
                    + "\n"
                )
        if trial.resumed:
            v0 = trial.values[0]
        elif trial.init_checkpoint is None:
            v0 = 0.0
        else:
            v0 = json.loads(Path(trial.init_checkpoint).read_text())["quality"]
        for epoch in trial.epochs():
            if self.crash_at is not None and (key[0], key[1], epoch) == self.crash_at:
                os._exit(3)  # a hard crash: no clean-up runs
            q = curve(v0, self.gains[key], epoch)
            trial.report(q, save=lambda p, q=q: Path(p).write_text(json.dumps({"quality": q})))


def reference_plan(
    graph: TransitionGraph, gains: dict[tuple[str, str], float]
) -> tuple[list[str], float]:
    """Independent DP: best incoming per state in topological order, then backtrack."""
    best: dict[str, tuple[float, str | None]] = {graph.start.name: (0.0, None)}
    order = {(a.name, b.name): i for i, (a, b) in enumerate(graph.edges)}
    for s in graph.topological_order()[1:]:
        options = []
        for p in graph.predecessors(s):
            if p.name not in best:
                continue
            _, value = reference_knee(best[p.name][0], gains[(p.name, s.name)])
            options.append((-value, order[(p.name, s.name)], p.name, value))
        if options:
            _, _, pred, value = min(options)
            best[s.name] = (value, pred)
    final = max(graph.finals, key=lambda f: (best[f.name][0], -graph.finals.index(f)))
    path = [final.name]
    while best[path[-1]][1] is not None:
        path.append(best[path[-1]][1])  # type: ignore[arg-type]
    path.reverse()
    return path[1:], best[final.name][0]


def paper_graph() -> TransitionGraph:
    return TransitionGraph.paper(
        clip_lengths=[16, 32, 64], learning_rates=[0.1, 0.01, 0.001], samplings=("consecutive",)
    )


def designed_gains(graph: TransitionGraph) -> tuple[dict[tuple[str, str], float], list[str]]:
    """Gains that make one path best: start, (32, .1), (32, .01), (64, .01), (64, .001)."""
    name = "sampling=consecutive,clip_length={},learning_rate={}".format
    path = ["start", name(32, 0.1), name(32, 0.01), name(64, 0.01), name(64, 0.001)]
    good = set(zip(path, path[1:]))
    gains = {(a.name, b.name): (1.0 if (a.name, b.name) in good else 0.3) for a, b in graph.edges}
    return gains, path[1:]


def test_plan_equals_the_path_known_by_construction(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, expected = designed_gains(graph)
    result = plan(graph, CurveTrainer(gains), storage=tmp_path / "s", rule=RULE, progress=False)
    assert [s.state for s in result.stages] == expected
    ref_path, ref_value = reference_plan(graph, gains)
    assert ref_path == expected
    assert result.final_value == pytest.approx(ref_value, abs=2e-3)
    for stage in result.stages:  # every stage trained to its knee (~6-7 epochs), not the cap
        assert 4 <= stage.epochs <= 9
    assert len(result.transitions) == len(graph.edges)
    assert all(
        t.decision is not None and t.decision["reason"] == "knee" for t in result.transitions
    )
    # the final checkpoint exists and holds the final value
    final = json.loads(Path(tmp_path / "s" / result.final_checkpoint).read_text())
    assert final["quality"] == pytest.approx(result.final_value)


def test_disk_stays_bounded_one_checkpoint_per_state(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, _ = designed_gains(graph)
    result = plan(graph, CurveTrainer(gains), storage=tmp_path / "s", rule=RULE, progress=False)
    files = sorted(
        p.relative_to(tmp_path / "s").as_posix()
        for p in (tmp_path / "s" / "checkpoints").rglob("epoch-*")
    )
    by_target: dict[str, list[Any]] = {}
    for t in result.transitions:
        by_target.setdefault(t.target, []).append(t)
    kept = sorted(max(ts, key=lambda t: t.value).checkpoint for ts in by_target.values())
    assert files == kept
    assert not list((tmp_path / "s" / "running").iterdir())


def test_resume_skips_finished_transitions(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, expected = designed_gains(graph)
    log = tmp_path / "calls.jsonl"
    first = plan(
        graph, CurveTrainer(gains, log), storage=tmp_path / "s", rule=RULE, progress=False
    )
    n_calls = len(log.read_text().splitlines())
    second = plan(
        graph, CurveTrainer(gains, log), storage=tmp_path / "s", rule=RULE, progress=False
    )
    assert len(log.read_text().splitlines()) == n_calls, "a finished transition was re-run"
    assert second.to_dict() == first.to_dict()
    assert [s.state for s in second.stages] == expected


def _crash_run(
    storage: str, gains: dict[tuple[str, str], float], log: str, crash_at: tuple[str, str, int]
) -> None:
    plan(
        paper_graph(),
        CurveTrainer(gains, Path(log), crash_at=crash_at),
        storage=storage,
        rule=RULE,
        progress=False,
    )


def test_hard_crash_mid_transition_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, expected = designed_gains(graph)
    crash_edge = (
        "sampling=consecutive,clip_length=32,learning_rate=0.1",
        "sampling=consecutive,clip_length=32,learning_rate=0.01",
    )
    log = tmp_path / "calls.jsonl"
    proc = multiprocessing.get_context("fork").Process(
        target=_crash_run, args=(str(tmp_path / "s"), gains, str(log), (*crash_edge, 5))
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    done_before = set(LocalStorage(tmp_path / "s").records())
    assert crash_edge not in done_before and done_before

    result = plan(
        graph, CurveTrainer(gains, log), storage=tmp_path / "s", rule=RULE, progress=False
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    edges_called = [tuple(c["edge"]) for c in calls]
    for edge in done_before:
        assert edges_called.count(edge) == 1, f"{edge} was re-run after the crash"
    resumed = [c for c in calls if tuple(c["edge"]) == crash_edge and c["resumed"]]
    assert len(resumed) == 1 and resumed[0]["epoch"] == 4  # epochs 1-4 kept, epoch 5 re-run
    record = next(t for t in result.transitions if t.edge == crash_edge)
    assert record.resumed_from == 4
    assert [s.state for s in result.stages] == expected
    clean = plan(graph, CurveTrainer(gains), storage=tmp_path / "clean", rule=RULE, progress=False)
    assert result.final_value == pytest.approx(clean.final_value)
    assert record.values == pytest.approx(
        next(t for t in clean.transitions if t.edge == crash_edge).values
    )


def test_two_workers_give_the_one_worker_plan(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, _ = designed_gains(graph)
    one = plan(graph, CurveTrainer(gains), storage=tmp_path / "one", rule=RULE, progress=False)
    two = plan(
        graph,
        CurveTrainer(gains),
        storage=tmp_path / "two",
        rule=RULE,
        workers=2,
        poll_interval=0.05,
        progress=False,
    )
    assert [s.to_dict() for s in two.stages] == [s.to_dict() for s in one.stages]
    workers = {t.worker for t in two.transitions}
    assert len(workers) == 2, "both workers should have run transitions"
    assert {t.edge: t.values for t in two.transitions} == {
        t.edge: t.values for t in one.transitions
    }


class RefusingStorage(LocalStorage):
    """Refuses claims at random, as if other workers held them: random completion orders."""

    def __init__(self, root: Path, seed: int) -> None:
        super().__init__(root)
        self.rng = random.Random(seed)

    def claim(self, edge, *, worker, stale_after):  # type: ignore[no-untyped-def]
        if self.rng.random() < 0.6:
            return None
        return super().claim(edge, worker=worker, stale_after=stale_after)


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[TransitionGraph, dict[tuple[str, str], float]]:
    n = draw(st.integers(2, 6))
    states = [State("start")] + [State(f"s{i}", {"x": i}) for i in range(n)]
    edges: list[tuple[str, str]] = []
    for i in range(n):
        # every state gets at least one predecessor among earlier states (or the start)
        preds = draw(st.sets(st.integers(-1, i - 1), min_size=1, max_size=3))
        edges += [("start" if p < 0 else f"s{p}", f"s{i}") for p in sorted(preds)]
    gains = {e: draw(st.sampled_from([0.2, 0.5, 0.8, 1.1, 1.4])) for e in edges}
    return TransitionGraph(states, edges, start="start"), gains


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=random_dags(), seeds=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))
def test_result_does_not_depend_on_completion_order(tmp_path_factory, case, seeds) -> None:  # type: ignore[no-untyped-def]
    graph, gains = case
    results = []
    for seed in seeds:
        store = RefusingStorage(tmp_path_factory.mktemp("order"), seed)
        results.append(
            plan(
                graph,
                CurveTrainer(gains),
                storage=store,
                rule=RULE,
                poll_interval=0.001,
                progress=False,
            )
        )
    a, b = results
    assert [s.to_dict() for s in a.stages] == [s.to_dict() for s in b.stages]
    assert a.final_value == b.final_value
    ref_path, ref_value = reference_plan(graph, gains)
    assert a.final_value == pytest.approx(ref_value, abs=5e-3)


# -- bad input ---------------------------------------------------------------------------


def test_a_raising_transition_is_recorded_and_planning_goes_on(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, expected = designed_gains(graph)
    bad = (
        "sampling=consecutive,clip_length=16,learning_rate=0.1",
        "sampling=consecutive,clip_length=32,learning_rate=0.1",
    )
    trainer = CurveTrainer(gains)

    def fn(trial: Trial) -> None:
        if (trial.source.name, trial.target.name) == bad:
            raise RuntimeError("CUDA out of memory (simulated)")
        trainer(trial)

    result = plan(graph, fn, storage=tmp_path / "s", rule=RULE, progress=False)
    failed = [t for t in result.transitions if t.status == "failed"]
    assert [t.edge for t in failed] == [bad]
    assert "CUDA out of memory (simulated)" in (failed[0].error or "")
    assert [s.state for s in result.stages] == expected
    assert "FAILED" in result.summary()


def test_on_error_raise_stops_with_the_transition_named(tmp_path: Path) -> None:
    def fn(trial: Trial) -> None:
        raise ValueError("bad batch")

    with pytest.raises(TransitionFailedError, match="(?s)start -> .*bad batch"):
        plan(
            paper_graph(), fn, storage=tmp_path / "s", rule=RULE, on_error="raise", progress=False
        )
    records = LocalStorage(tmp_path / "s").records()
    assert len(records) == 1 and next(iter(records.values())).status == "failed"


def test_all_paths_failing_is_a_planning_error_naming_failures(tmp_path: Path) -> None:
    def fn(trial: Trial) -> None:
        raise ValueError("no data for " + trial.target.name)

    with pytest.raises(PlanningError, match="no final state was reached.*2 transitions failed"):
        plan(paper_graph(), fn, storage=tmp_path / "s", rule=RULE, progress=False)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("never_reports", "returned without reporting any value"),
        ("reports_after_stop", "after should_stop\\(\\) became true"),
        ("reports_text", "report\\(\\) needs a number for epoch 0, got str 'high'"),
        ("all_nan", "not finite"),
    ],
)
def test_protocol_violations_fail_the_transition_clearly(
    tmp_path: Path, behaviour: str, message: str
) -> None:
    def fn(trial: Trial) -> None:
        if behaviour == "never_reports":
            return
        if behaviour == "reports_text":
            trial.report("high")  # type: ignore[arg-type]
        if behaviour == "all_nan":
            for _ in trial.epochs():
                trial.report(float("nan"))
            return
        for epoch in range(100):
            trial.report(curve(0, 1, epoch))  # ignores should_stop()

    graph = TransitionGraph(
        [State("start"), State("a", {"x": 1})], [("start", "a")], start="start"
    )
    with pytest.raises(PlanningError, match="no final state"):
        plan(graph, fn, storage=tmp_path / "s", rule=RULE, progress=False)
    (record,) = LocalStorage(tmp_path / "s").records().values()
    assert record.status == "failed"
    assert message and __import__("re").search(message, record.error or ""), record.error


def test_nan_epochs_are_survived_and_never_kept(tmp_path: Path) -> None:
    def fn(trial: Trial) -> None:
        for epoch in trial.epochs():
            trial.report(float("nan") if epoch in (3, 7) else curve(0, 1, epoch))

    graph = TransitionGraph(
        [State("start"), State("a", {"x": 1})], [("start", "a")], start="start"
    )
    result = plan(graph, fn, storage=tmp_path / "s", rule=RULE, progress=False)
    (t,) = result.transitions
    assert t.status == "complete" and t.knee_epoch not in (3, 7)
    assert math.isfinite(t.value or math.nan)
    assert sum(math.isnan(v) for v in t.values) == 2


def test_storage_for_another_graph_is_refused(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, _ = designed_gains(graph)
    plan(graph, CurveTrainer(gains), storage=tmp_path / "s", rule=RULE, progress=False)
    other = TransitionGraph.paper(
        clip_lengths=[16, 32], learning_rates=[0.1, 0.01], samplings=("consecutive",)
    )
    with pytest.raises(StorageMismatchError, match="another transition graph"):
        plan(other, CurveTrainer(gains), storage=tmp_path / "s", rule=RULE, progress=False)
    with pytest.raises(StorageMismatchError, match="other settings.*rule"):
        plan(
            graph,
            CurveTrainer(gains),
            storage=tmp_path / "s",
            rule=KneeRule(delay=5, max_epochs=40),
            progress=False,
        )
    assert len(LocalStorage(tmp_path / "s").records()) == len(graph.edges), "records kept"


def test_non_plan_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StorageError, match="not a stageplan plan directory"):
        plan(paper_graph(), CurveTrainer({}), storage=tmp_path, rule=RULE, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"mode": "up"}, ValueError, "mode must be 'max' or 'min', got 'up'"),
        ({"workers": 0}, ValueError, "workers must be an int >= 1, got 0"),
        ({"on_error": "ignore"}, ValueError, "on_error must be"),
        ({"rule": "exp"}, TypeError, "rule must be a KneeRule"),
        ({"storage": 42}, TypeError, "storage must be a directory path"),
    ],
)
def test_plan_arguments_are_validated(tmp_path: Path, kwargs, exc, match) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"storage": tmp_path / "s", **kwargs}
    with pytest.raises(exc, match=match):
        plan(paper_graph(), CurveTrainer({}), progress=False, **kwargs)


def test_min_mode_for_losses(tmp_path: Path) -> None:
    graph = paper_graph()
    gains, expected = designed_gains(graph)
    trainer = CurveTrainer(gains)

    def loss_fn(trial: Trial) -> None:
        class Negated:
            def __getattr__(self, name: str) -> Any:
                return getattr(trial, name)

            def report(self, value: float, *, save: Any = None) -> Any:
                return trial.report(5.0 - value, save=save)

            def epochs(self) -> Any:
                return trial.epochs()

        if trial.init_checkpoint is not None:
            pass
        trainer(Negated())  # type: ignore[arg-type]

    result = plan(graph, loss_fn, storage=tmp_path / "s", rule=RULE, mode="min", progress=False)
    assert result.mode == "min"
    assert [s.state for s in result.stages] == expected


def test_a_run_whose_claim_is_taken_over_is_dropped_and_resumed(tmp_path: Path) -> None:
    """A worker that lost its claim writes no record and deletes no checkpoint."""
    graph = TransitionGraph(
        [State("start"), State("a", {"x": 1})], [("start", "a")], start="start"
    )
    store_dir = tmp_path / "s"
    dead = multiprocessing.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join()
    calls: list[tuple[bool, int]] = []

    def fn(trial: Trial) -> None:
        calls.append((trial.resumed, trial.epoch))
        for epoch in trial.epochs():
            if epoch == 5 and not trial.resumed:  # someone takes the claim over
                lock = next((store_dir / "running").glob("*.lock"))
                info = json.loads(lock.read_text())
                lock.write_text(json.dumps({**info, "worker": "thief", "pid": dead.pid}))
            q = curve(0.0, 1.0, epoch)
            trial.report(q, save=lambda p, q=q: Path(p).write_text(json.dumps({"quality": q})))

    result = plan(graph, fn, storage=store_dir, rule=RULE, progress=False)
    assert calls == [(False, -1), (True, 4)]
    (record,) = result.transitions
    assert record.status == "complete" and record.resumed_from == 4
    clean = plan(
        graph,
        CurveTrainer({("start", "a"): 1.0}),
        storage=tmp_path / "c",
        rule=RULE,
        progress=False,
    )
    assert record.values == pytest.approx(clean.transitions[0].values)


def test_in_memory_optuna_storage_is_refused_for_several_workers(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    with pytest.raises(ValueError, match="cannot be shared by worker processes"):
        plan(
            paper_graph(),
            CurveTrainer({}),
            storage=optuna.storages.InMemoryStorage(),
            rule=RULE,
            workers=2,
            progress=False,
        )


def test_ctrl_c_frees_the_claim_so_a_rerun_in_the_same_process_resumes(tmp_path: Path) -> None:
    graph = TransitionGraph(
        [State("start"), State("a", {"x": 1})], [("start", "a")], start="start"
    )
    trainer = CurveTrainer({("start", "a"): 1.0})

    def interrupted(trial: Trial) -> None:
        for epoch in trial.epochs():
            if epoch == 4:
                raise KeyboardInterrupt
            q = curve(0.0, 1.0, epoch)
            trial.report(q, save=lambda p, q=q: Path(p).write_text(json.dumps({"quality": q})))

    with pytest.raises(KeyboardInterrupt):
        plan(graph, interrupted, storage=tmp_path / "s", rule=RULE, progress=False)
    started = time.monotonic()
    result = plan(
        graph, trainer, storage=tmp_path / "s", rule=RULE, progress=False, stale_after=3600
    )
    assert time.monotonic() - started < 60, "the rerun waited for a stale claim"
    assert result.transitions[0].resumed_from == 3


class _Crash(BaseException):
    """Stands for a kill: nothing after it runs in this process."""


def test_a_crash_while_the_record_is_stored_loses_no_checkpoint(tmp_path: Path) -> None:
    """The checkpoints that stored progress names stay until the record is stored.

    Found by benchmarks/fault_soak.py: a worker killed while writing a finished transition's
    record had already deleted every checkpoint but the knee's, so the worker that took the
    transition over could not load the one it had to resume from, and recorded a failure.
    """
    graph = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.1, 0.01]))

    def fn(trial: Trial) -> None:
        start = 0.0
        if trial.init_checkpoint is not None:
            start = json.loads(Path(trial.init_checkpoint).read_text())["value"]
        for epoch in trial.epochs():
            value = curve(start, 0.5, epoch)

            def save(path: str, value: float = value) -> None:
                Path(path).write_text(json.dumps({"value": value}))

            trial.report(value, save=save)

    want = plan(graph, fn, storage=tmp_path / "ref", rule=RULE, progress=False)
    store = LocalStorage(tmp_path / "crash")
    real_finish = store.finish
    calls = [0]

    def finish(record: Any, *, worker: str) -> None:
        calls[0] += 1
        if calls[0] == 2:  # the second transition to finish: die before its record lands
            raise _Crash()
        real_finish(record, worker=worker)

    store.finish = finish  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        plan(graph, fn, storage=store, rule=RULE, progress=False)
    store.finish = real_finish  # type: ignore[method-assign]
    got = plan(graph, fn, storage=store, rule=RULE, progress=False)
    assert all(r.status == "complete" for r in got.transitions), [
        (r.edge, r.error) for r in got.transitions if r.status != "complete"
    ]
    assert [(s.state, s.epochs, s.value) for s in got.stages] == [
        (s.state, s.epochs, s.value) for s in want.stages
    ]
