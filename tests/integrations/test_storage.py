"""OptunaStorage: plans as Optuna studies, claims, take-overs, checkpoints and bad input."""

from __future__ import annotations

import importlib.util
import json
import math
import multiprocessing
import os
import pickle
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from stageplan.integrations.optuna import OptunaStorage
from stageplan.integrations.optuna._chain import chain_head
from stageplan.integrations.optuna._encoding import T_OWNER, T_RECORD, record_attrs

from stageplan import (
    ClaimLostError,
    KneeRule,
    LocalStorage,
    Progress,
    StorageError,
    StorageMismatchError,
    TransitionGraph,
    TransitionRecord,
    plan,
    resolve_storage,
)
from stageplan.storage import CheckpointStore, DirectoryCheckpoints, PlanStorage

sys.path.insert(0, str(Path(__file__).parent))
import plan_worker  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

EDGE = (
    "start",
    "sampling=consecutive,clip_length=16,learning_rate=0.1",
)


def _url(kind: str, tmp_path: Path) -> Any:
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":
        return f"journal:{tmp_path / 'plan.log'}"
    return f"sqlite:///{tmp_path / 'plan.db'}"


def _plan(storage: Any, fn: Any = None, **kw: Any) -> Any:
    return plan(
        plan_worker.graph(),
        fn or plan_worker.make_fn(None, 0.0),
        storage=storage,
        rule=plan_worker.RULE,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _plan(LocalStorage(tmp_path_factory.mktemp("ref")))


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[OptunaStorage, Any]:
    """A plan made on a journal file, shared by the tests that only read it."""
    store = OptunaStorage(_url("journal", tmp_path_factory.mktemp("planned")), study_name="p1")
    return store, _plan(store)


def _summary(p: Any) -> Any:
    return (
        [(s.state, s.epochs, s.value) for s in p.stages],
        {r.edge: (r.status, r.values, r.knee_epoch, r.value) for r in p.transitions},
    )


@pytest.mark.parametrize("kind", ["memory", "journal", "sqlite"])
def test_plan_matches_local_storage(kind: str, tmp_path: Path, reference: Any) -> None:
    store = OptunaStorage(_url(kind, tmp_path))
    assert _summary(_plan(store)) == _summary(reference)


def test_each_transition_is_one_trial(planned: tuple[OptunaStorage, Any]) -> None:
    store, p = planned
    study = store.load_study()
    graph = plan_worker.graph()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["stageplan:graph"] == json.loads(json.dumps(graph.to_dict()))
    assert study.user_attrs["stageplan:meta"]["mode"] == "max"
    assert len(study.trials) == len(graph.edges)
    by_edge = {(r.source, r.target): r for r in p.transitions}
    for t in study.trials:
        rec = by_edge[(t.user_attrs["stageplan:source"], t.user_attrs["stageplan:target"])]
        assert t.state == TrialState.COMPLETE
        assert t.value == rec.value
        assert t.intermediate_values == dict(enumerate(rec.values))
        assert t.user_attrs["stageplan:knee_epoch"] == rec.knee_epoch
        assert t.user_attrs["stageplan:stop_reason"] == rec.decision["reason"]
        assert t.user_attrs["stageplan:fit_params"] == rec.decision["params"]
        assert t.user_attrs["stageplan:checkpoint"] == rec.checkpoint
        assert TransitionRecord.from_dict(t.user_attrs[T_RECORD]) == rec
        assert t.params == graph.state(rec.target).params
    # A finished plan is never re-run.
    calls: list[Any] = []
    again = _plan(store, fn=lambda trial: calls.append(trial))
    assert calls == [] and _summary(again) == _summary(p)


def test_non_finite_values_are_kept(tmp_path: Path) -> None:
    kind = "journal"  # RDB storages: test_non_finite_values_round_trip_through_sqlite
    def fn(trial: Any) -> None:
        for epoch in trial.epochs():
            bad = {2: math.nan, 3: math.inf}.get(epoch)
            trial.report(bad if bad is not None else min(epoch, 5) * 0.1)

    store = OptunaStorage(_url(kind, tmp_path))
    p = _plan(store, fn=fn)
    study = store.load_study()
    for t in study.trials:
        assert math.isnan(t.intermediate_values[2]) and t.intermediate_values[3] == math.inf
        assert t.user_attrs["stageplan:curve"][2:4] == ["nan", "inf"]
        assert math.isfinite(t.value)
    rec = p.transitions[0]
    assert math.isnan(rec.values[2]) and rec.values[3] == math.inf


def test_non_finite_values_round_trip_through_sqlite(tmp_path: Path) -> None:
    store = OptunaStorage(_url("sqlite", tmp_path))
    store.open(plan_worker.graph().to_dict(), {"mode": "max"})
    values = [0.0, math.nan, math.inf, -math.inf, 0.5]
    store.claim(EDGE, worker="w", stale_after=60)
    store.save_progress(EDGE, Progress(values=values), worker="w")
    store.finish(_record(values), worker="w")
    (trial,) = [t for t in store.load_study().trials if t.state == TrialState.COMPLETE]
    got = [trial.intermediate_values[i] for i in range(5)]
    assert got[0] == 0.0 and math.isnan(got[1]) and got[2:] == [math.inf, -math.inf, 0.5]
    assert trial.user_attrs["stageplan:curve"] == [0.0, "nan", "inf", "-inf", 0.5]
    rec = store.records()[EDGE]
    assert math.isnan(rec.values[1]) and rec.values[2:] == [math.inf, -math.inf, 0.5]


def test_failed_transition_is_a_fail_trial(tmp_path: Path) -> None:
    inner = plan_worker.make_fn(None, 0.0)
    calls: list[str] = []

    def fn(trial: Any) -> None:
        calls.append(trial.target.name)
        if trial.target.name.endswith("clip_length=32,learning_rate=0.1"):
            raise RuntimeError("out of memory in the synthetic trainer")
        inner(trial)

    store = OptunaStorage(_url("journal", tmp_path))
    p = _plan(store, fn=fn)
    failed = [r for r in p.transitions if r.status == "failed"]
    assert len(failed) == 2 and all("out of memory" in (r.error or "") for r in failed)
    fails = [t for t in store.load_study().trials if t.state == TrialState.FAIL]
    assert len(fails) == 2
    for t in fails:
        assert t.user_attrs["stageplan:status"] == "failed"
        assert "out of memory" in t.user_attrs["stageplan:error"]
    n = len(calls)
    _plan(store, fn=fn)
    assert len(calls) == n  # failed transitions are finished too: not re-run


def test_other_graph_or_settings_refused(tmp_path: Path) -> None:
    url = _url("journal", tmp_path)
    _plan(OptunaStorage(url))
    other = TransitionGraph.paper(clip_lengths=[16, 64], learning_rates=[0.1, 0.01])
    with pytest.raises(StorageMismatchError, match="another transition graph.*edges"):
        plan(other, plan_worker.make_fn(None, 0), storage=OptunaStorage(url), progress=False)
    with pytest.raises(StorageMismatchError, match="other settings.*rule"):
        _plan_rule = KneeRule(delay=4, max_epochs=12)
        plan(
            plan_worker.graph(),
            plan_worker.make_fn(None, 0),
            storage=OptunaStorage(url),
            rule=_plan_rule,
            progress=False,
        )
    with pytest.raises(StorageMismatchError, match="mode"):
        _plan(OptunaStorage(url), mode="min")


def test_foreign_study_refused(tmp_path: Path) -> None:
    url = _url("sqlite", tmp_path)
    study = optuna.create_study(storage=url, study_name="hpo")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(StorageError, match="'hpo'.*not a stageplan study"):
        _plan(OptunaStorage(url, study_name="hpo"))
    assert len(optuna.load_study(study_name="hpo", storage=url).trials) == 2  # untouched


def test_bad_storage_urls(tmp_path: Path) -> None:
    graph = plan_worker.graph().to_dict()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1.*OperationalError") as info:
        OptunaStorage(
            "postgresql://someone:secret@127.0.0.1:1/nodb", checkpoint_dir=str(tmp_path)
        ).open(graph, {})
    assert "secret" not in str(info.value)
    with pytest.raises(StorageError, match="directory .*does-not-exist.* does not exist"):
        OptunaStorage(f"journal:{tmp_path / 'does-not-exist' / 'plan.log'}").records()
    with pytest.raises(ValueError, match="storage must be a URL"):
        OptunaStorage("plan.db")
    with pytest.raises(TypeError, match="BaseStorage"):
        OptunaStorage(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one of"):
        OptunaStorage("sqlite:///x.db", checkpoint_dir="a", artifacts_dir="b")
    with pytest.raises(ValueError, match="study_name"):
        OptunaStorage("sqlite:///x.db", study_name="")
    with pytest.raises(StorageError, match="no checkpoint location.*checkpoints="):
        OptunaStorage("postgresql://u:p@127.0.0.1:1/x").checkpoints.checkpoint_path(EDGE, 1)


def test_resolve_storage_routes_to_the_adapter(tmp_path: Path) -> None:
    assert isinstance(resolve_storage(f"journal:{tmp_path / 'a.log'}"), OptunaStorage)
    assert isinstance(resolve_storage(f"sqlite:///{tmp_path / 'a.db'}"), OptunaStorage)
    assert isinstance(resolve_storage(optuna.storages.InMemoryStorage()), OptunaStorage)


def _pair(tmp_path: Path) -> tuple[OptunaStorage, OptunaStorage]:
    """Two independent connections to one journal file (as two processes would have)."""
    url = _url("journal", tmp_path)
    a, b = OptunaStorage(url), OptunaStorage(url)
    header = (plan_worker.graph().to_dict(), {"mode": "max"})
    a.open(*header)
    b.open(*header)
    return a, b


def _record(values: list[float], checkpoint: str | None = None) -> TransitionRecord:
    return TransitionRecord(
        source=EDGE[0],
        target=EDGE[1],
        status="complete",
        values=values,
        knee_epoch=len(values) - 1,
        checkpoint_epoch=len(values) - 1,
        value=values[-1],
        checkpoint=checkpoint,
    )


def _trials_of_edge(store: OptunaStorage) -> list[Any]:
    trials = store.load_study().get_trials()
    return [t for t in trials if t.user_attrs["stageplan:target"] == EDGE[1]]


def test_claim_is_exclusive(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    assert a.claim(EDGE, worker="a", stale_after=60) == Progress()
    assert b.claim(EDGE, worker="b", stale_after=60) is None
    a.save_progress(EDGE, Progress(values=[0.0, 0.5]), worker="a")
    assert b.claim(EDGE, worker="b", stale_after=60) is None
    assert a.records() == {}
    a.finish(_record([0.0, 0.5]), worker="a")
    assert b.records()[EDGE].value == 0.5
    assert b.claim(EDGE, worker="b", stale_after=60) is None  # finished
    with pytest.raises(StorageError, match="not claimed by this process"):
        b.save_progress(EDGE, Progress(values=[0.0]), worker="b")


def _checkpoint(store: OptunaStorage, epoch: int) -> str:
    path = store.checkpoints.checkpoint_path(EDGE, epoch)
    Path(path).write_text(f"epoch {epoch}")
    return store.checkpoints.store(EDGE, epoch, path)


def test_stale_claim_is_taken_over_and_resumed(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    a._check_local_pids = b._check_local_pids = False
    assert a.claim(EDGE, worker="a", stale_after=60) is not None
    refs = {e: _checkpoint(a, e) for e in (1, 2, 3)}
    a.checkpoints.delete(refs[1])  # not named in stored progress yet: deleted at once
    with pytest.raises(StorageError, match="missing"):
        a.checkpoints.fetch(refs[1])
    progress = Progress(values=[0.0, 0.1, 0.2, 0.3, 0.35], checkpoints={2: refs[2], 3: refs[3]})
    a.save_progress(EDGE, progress, worker="a")
    assert b.claim(EDGE, worker="b", stale_after=60) is None  # fresh heartbeat
    time.sleep(0.3)
    resumed = b.claim(EDGE, worker="b", stale_after=0.2)
    assert resumed == progress
    trials = sorted(b.load_study().get_trials(), key=lambda t: t.number)
    edge_trials = [t for t in trials if t.user_attrs["stageplan:target"] == EDGE[1]]
    old, new = edge_trials
    assert old.state == TrialState.FAIL and old.user_attrs["stageplan:taken_over_by"]
    assert new.state == TrialState.RUNNING and new.user_attrs["stageplan:takes_over"] == old.number
    assert new.intermediate_values == {0: 0.0, 1: 0.1, 2: 0.2, 3: 0.3}  # up to the last kept
    # The slow worker learns it lost the transition; its planner then deletes nothing
    # (stageplan._run), so the taker's checkpoints stay.
    with pytest.raises(StorageError, match="taken over by another worker"):
        a.save_progress(EDGE, Progress(values=[0.0] * 6), worker="a")
    assert Path(b.checkpoints.fetch(refs[3])).read_text() == "epoch 3"
    with pytest.raises(ClaimLostError, match="dropped"):
        a.finish(_record([0.0, 0.9]), worker="a")  # dropped: not its transition any more
    assert a.records() == {}
    b.save_progress(EDGE, Progress(values=[0.0, 0.1, 0.2, 0.3, 0.4]), worker="b")
    b.finish(_record([0.0, 0.1, 0.2, 0.3, 0.4]), worker="b")
    assert list(a.records()) == [EDGE] and a.records()[EDGE].value == 0.4
    states = [t.state for t in _trials_of_edge(a)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def _claim_and_die(store: OptunaStorage) -> None:
    store.claim(EDGE, worker="doomed", stale_after=600)
    os._exit(0)


def test_dead_local_worker_is_taken_over_at_once(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    child = multiprocessing.get_context("fork").Process(target=_claim_and_die, args=(a,))
    child.start()
    child.join()
    owner = [t for t in b.load_study().get_trials() if t.state == TrialState.RUNNING]
    assert len(owner) == 1 and owner[0].user_attrs[T_OWNER]["pid"] == child.pid
    assert b.claim(EDGE, worker="b", stale_after=600) == Progress()


def test_record_stored_just_before_a_crash_is_kept(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    a._check_local_pids = b._check_local_pids = False
    a.claim(EDGE, worker="a", stale_after=60)
    rec = _record([0.0, 0.7])
    trials = a._plan_trials()
    for key, val in record_attrs(rec).items():  # what finish() writes before the state
        trials.backend.set_trial_user_attr(trials.claims[EDGE].trial_id, key, val)
    time.sleep(0.2)
    assert b.claim(EDGE, worker="b", stale_after=0.1) is None
    assert b.records()[EDGE] == rec
    (trial,) = _trials_of_edge(b)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.7


def test_pickled_storage_reconnects(planned: tuple[OptunaStorage, Any]) -> None:
    store = planned[0]
    copy = pickle.loads(pickle.dumps(store))
    assert copy.records() == store.records()
    assert repr(copy) == repr(store)


@pytest.mark.parametrize("mode", ["artifacts", "directory"])
@pytest.mark.parametrize("as_dir", [False, True])
def test_checkpoints_round_trip(mode: str, as_dir: bool, tmp_path: Path) -> None:
    kw = (
        {"artifacts_dir": tmp_path / "art"}
        if mode == "artifacts"
        else {"checkpoint_dir": tmp_path / "ckpt"}
    )
    store = OptunaStorage(_url("journal", tmp_path), cache_dir=tmp_path / "cache", **kw)
    path = Path(store.checkpoints.checkpoint_path(EDGE, 4))
    if as_dir:
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 10)
        (path / "meta.json").write_text("{}")
    else:
        path.write_bytes(b"weights")
    ref = store.checkpoints.store(EDGE, 4, str(path))
    if mode == "artifacts":
        assert ref.endswith(".tar") == as_dir
        assert (tmp_path / "art" / ref).is_file()
        other = OptunaStorage(
            _url("journal", tmp_path), artifacts_dir=tmp_path / "art", cache_dir=tmp_path / "c2"
        )
    else:
        other = OptunaStorage(_url("journal", tmp_path), checkpoint_dir=tmp_path / "ckpt")
    got = Path(other.checkpoints.fetch(ref))  # a fresh machine: downloads into its cache
    if as_dir:
        assert (got / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 10
        assert (got / "meta.json").read_text() == "{}"
    else:
        assert got.read_bytes() == b"weights"
    copy = other.checkpoints.copy(ref, ("a", "b"), 0)
    assert copy != ref and Path(other.checkpoints.fetch(copy)).exists()
    store.checkpoints.delete(ref)
    store.checkpoints.delete(ref)  # idempotent
    fresh = OptunaStorage(_url("journal", tmp_path), cache_dir=tmp_path / "c3", **kw)
    with pytest.raises(StorageError, match="missing"):
        fresh.checkpoints.fetch(ref)
    with pytest.raises(StorageError, match="wrote nothing"):
        store.checkpoints.store(EDGE, 5, str(tmp_path / "never-written"))


def test_default_artifacts_live_next_to_the_file(tmp_path: Path) -> None:
    store = OptunaStorage(_url("journal", tmp_path))
    path = store.checkpoints.checkpoint_path(EDGE, 1)
    Path(path).write_text("x")
    ref = store.checkpoints.store(EDGE, 1, path)
    assert (tmp_path / "plan.log.artifacts" / ref).is_file()


def test_absolute_start_checkpoint_is_read_in_place(tmp_path: Path) -> None:
    weights = tmp_path / "pretrained.json"
    weights.write_text(json.dumps({"value": 0.25, "edge": "-", "epoch": 0, "start": 0}))
    store = OptunaStorage(_url("journal", tmp_path))
    p = _plan(store, start_checkpoint=str(weights))
    assert p.transitions[0].values[0] == pytest.approx(0.25)
    assert weights.exists()  # never deleted


def _head(*trials: tuple[int, int | None]) -> int | None:
    fake = [SimpleNamespace(number=n, user_attrs={"stageplan:takes_over": p}) for n, p in trials]
    head = chain_head(fake)  # type: ignore[arg-type]
    return None if head is None else head.number


@pytest.mark.parametrize(
    ("trials", "expected"),
    [
        ((), None),
        (((0, None),), 0),
        (((0, None), (3, 0)), 3),
        (((0, None), (2, None), (3, 0)), 3),  # duplicate first trial 2 is ignored
        (((0, None), (3, 0), (4, 0), (5, 4)), 3),  # 4 lost the race to 3; its child too
        (((5, 1), (1, None), (7, 5)), 7),
    ],
)
def test_chain_head(trials: tuple[tuple[int, int | None], ...], expected: int | None) -> None:
    assert _head(*trials) == expected


def test_plan_with_forked_workers_on_a_journal(tmp_path: Path, reference: Any) -> None:
    store = OptunaStorage(_url("journal", tmp_path))
    p = _plan(store, workers=3)
    assert _summary(p) == _summary(reference)
    trials = store.load_study().get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(plan_worker.graph().edges)


def test_in_memory_storage_is_refused_in_another_process(tmp_path: Path) -> None:
    store = OptunaStorage(optuna.storages.InMemoryStorage())
    store.open(plan_worker.graph().to_dict(), {"mode": "max"})
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()

    def child() -> None:
        try:
            store.records()
            queue.put("no error")
        except StorageError as exc:
            queue.put(str(exc))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join()
    assert "InMemoryStorage cannot be shared" in queue.get()


def test_plot_intermediate_values_builds(planned: tuple[OptunaStorage, Any]) -> None:
    store = planned[0]
    study = store.load_study()
    if importlib.util.find_spec("plotly") is not None:
        fig = optuna.visualization.plot_intermediate_values(study)
        assert len(fig.data) == len(study.trials)
    else:
        import matplotlib

        matplotlib.use("Agg")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
        assert len(ax.get_lines()) == len(study.trials)


# -- where checkpoints go: the documented forms, and refusals before any work ---------------


def _tiny_graph() -> TransitionGraph:
    return TransitionGraph.grid(("size", [8, 16]), ("lr", [0.1, 0.01]))


def _rising(trial: Any) -> None:
    for epoch in trial.epochs():
        def save(path: str, epoch: int = epoch) -> None:
            Path(path).write_text(str(epoch))

        trial.report(min(epoch, 4) / 4 * trial.params["size"], save=save)


@pytest.mark.postgres
def test_the_readme_postgres_form_plans_with_a_checkpoint_location(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    rule = KneeRule.paper(delay=2, max_epochs=6)
    want = plan(_tiny_graph(), _rising, storage=tmp_path / "ref", rule=rule, progress=False)
    got = plan(
        _tiny_graph(),
        _rising,
        storage=fresh_postgres_url,
        checkpoints=tmp_path / "ckpt",
        rule=rule,
        progress=False,
    )
    assert [(s.state, s.epochs, s.value) for s in got.stages] == [
        (s.state, s.epochs, s.value) for s in want.stages
    ]
    assert got.final_checkpoint and (tmp_path / "ckpt" / got.final_checkpoint).exists()
    named = {r.checkpoint for r in got.transitions if r.checkpoint}
    on_disk = {str(p.relative_to(tmp_path / "ckpt")) for p in (tmp_path / "ckpt").glob("*/*")}
    assert got.final_checkpoint in on_disk and on_disk <= named


@pytest.mark.postgres
def test_a_database_without_a_checkpoint_location_is_refused_before_any_transition(
    fresh_postgres_url: str,
) -> None:
    calls: list[Any] = []
    with pytest.raises(StorageError) as err:
        plan(_tiny_graph(), calls.append, storage=fresh_postgres_url, progress=False)
    assert calls == []
    message = str(err.value)
    assert "checkpoints=" in message and "--checkpoints" in message
    assert "stageplan:stageplan@" not in message  # the password is masked


@pytest.mark.parametrize(
    ("checkpoints", "expected"),
    [
        ("s3://", "expected s3://<bucket>"),
        ("s3://bucket/some/prefix", "a bucket of its own"),
        ("ftp://host/dir", "expected a directory path"),
        ("", "must name a directory"),
    ],
)
def test_a_bad_checkpoint_location_is_named(checkpoints: str, expected: str) -> None:
    with pytest.raises(ValueError, match="checkpoints") as err:
        OptunaStorage("sqlite:///unused.db", checkpoints=checkpoints)
    assert expected in str(err.value)


@pytest.mark.skipif(
    importlib.util.find_spec("boto3") is not None, reason="boto3 is installed: nothing to name"
)
def test_a_bucket_without_its_client_library_is_refused_at_open(tmp_path: Path) -> None:
    store = OptunaStorage(f"sqlite:///{tmp_path / 'p.db'}", checkpoints="s3://my-bucket")
    with pytest.raises(StorageError, match="boto3"):
        store.open(_tiny_graph().to_dict(), {"mode": "max"})


def test_checkpoints_is_refused_for_a_directory_storage(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory storage"):
        plan(_tiny_graph(), _rising, storage=tmp_path, checkpoints=tmp_path / "c", progress=False)


def test_a_finished_transition_leaves_no_orphaned_checkpoint(tmp_path: Path) -> None:
    """A checkpoint written by a worker killed before storing its progress is swept."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    ckpt = tmp_path / "ckpt"
    store = OptunaStorage(url, checkpoints=ckpt)
    store.open(_tiny_graph().to_dict(), {"mode": "max", "rule": None})
    edge = (_tiny_graph().edges[0][0].name, _tiny_graph().edges[0][1].name)
    assert store.claim(edge, worker="w", stale_after=60) is not None
    orphan = store.checkpoints.checkpoint_path(edge, 3)
    Path(orphan).write_text("never named in any stored progress")
    kept_path = store.checkpoints.checkpoint_path(edge, 2)
    Path(kept_path).write_text("kept")
    ref = store.checkpoints.store(edge, 2, kept_path)
    record = TransitionRecord(
        source=edge[0], target=edge[1], status="complete", values=[0.0, 1.0, 2.0],
        knee_epoch=2, checkpoint_epoch=2, value=2.0, checkpoint=ref,
    )  # fmt: skip
    store.finish(record, worker="w")
    store.checkpoints.sweep(edge, {ref})  # what the planner does once finish() succeeded
    assert not Path(orphan).exists()
    assert Path(store.checkpoints.fetch(ref)).read_text() == "kept"


def test_both_checkpoint_stores_implement_the_protocol(tmp_path: Path) -> None:
    url = _url("journal", tmp_path)
    by_dir = OptunaStorage(url, checkpoint_dir=tmp_path / "ckpt")
    by_artifacts = OptunaStorage(url, cache_dir=tmp_path / "cache")
    assert isinstance(by_dir, PlanStorage) and isinstance(by_artifacts, PlanStorage)
    assert type(by_dir.checkpoints) is DirectoryCheckpoints  # the core store, not a twin
    assert isinstance(by_artifacts.checkpoints, CheckpointStore)
    for store in (by_dir, by_artifacts):
        ref = _checkpoint(store, 2)
        copy = store.checkpoints.copy(ref, EDGE, 3)
        assert Path(store.checkpoints.fetch(copy)).read_text() == "epoch 2"
        assert store.checkpoints.sweep(EDGE, keep={copy}) == [ref]
        with pytest.raises(StorageError, match="missing"):
            store.checkpoints.fetch(ref)
        assert Path(store.checkpoints.fetch(copy)).read_text() == "epoch 2"


def test_a_journal_storage_object_needs_a_checkpoint_location(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(tmp_path / "plan.log")))
    calls: list[Any] = []
    with pytest.raises(StorageError, match="JournalStorage object.*checkpoints=") as err:
        plan(_tiny_graph(), calls.append, storage=journal, progress=False)
    assert calls == [] and "journal:/path/plan.log" in str(err.value)
    p = plan(
        _tiny_graph(), _rising, storage=journal, checkpoints=tmp_path / "ckpt", progress=False
    )
    assert p.final_checkpoint and (tmp_path / "ckpt" / p.final_checkpoint).is_file()


def test_finish_after_a_take_over_raises_and_keeps_the_takers_checkpoints(
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path)
    a._check_local_pids = b._check_local_pids = False
    a.claim(EDGE, worker="a", stale_after=60)
    ref = _checkpoint(a, 2)
    a.save_progress(EDGE, Progress(values=[0.0, 0.1, 0.2], checkpoints={2: ref}), worker="a")
    time.sleep(0.3)
    assert b.claim(EDGE, worker="b", stale_after=0.2) is not None  # a looks dead
    with pytest.raises(ClaimLostError, match="after another worker took it over"):
        a.finish(_record([0.0, 0.1, 0.2], checkpoint=ref), worker="a")
    assert a.records() == {} and b.records() == {}
    assert Path(b.checkpoints.fetch(ref)).read_text() == "epoch 2"  # b resumes from it
    failed, running = _trials_of_edge(b)
    assert failed.state == TrialState.FAIL and T_RECORD not in failed.user_attrs
    assert running.state == TrialState.RUNNING
    with pytest.raises(StorageError, match="not claimed by this process"):
        a.save_progress(EDGE, Progress(values=[0.0]), worker="a")


def test_a_forked_worker_starts_with_no_claims(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    assert a.claim(EDGE, worker="parent", stale_after=60) is not None
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()

    def child() -> None:
        try:
            a.save_progress(EDGE, Progress(values=[0.0]), worker="parent")
            queue.put("saved")
        except StorageError as exc:
            queue.put(str(exc))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join()
    assert "not claimed by this process" in queue.get()
    a.save_progress(EDGE, Progress(values=[0.0, 0.5]), worker="parent")  # still the parent's


def test_trials_that_lost_their_place_are_closed(tmp_path: Path) -> None:
    """Workers racing to make a transition's next trial leave duplicates: none stays open."""
    a, b = _pair(tmp_path)
    (first,) = _trials_of_edge(a)
    a._plan_trials().create(EDGE, takes_over=None)  # a second first trial: lost the race
    assert a.claim(EDGE, worker="a", stale_after=60) == Progress()
    by_number = {t.number: t for t in _trials_of_edge(a)}
    assert by_number.pop(first.number).state == TrialState.RUNNING
    (dup,) = by_number.values()
    assert dup.state == TrialState.FAIL and dup.user_attrs["stageplan:superseded"] is True
    a.finish(_record([0.0, 0.5]), worker="a")
    b._plan_trials().create(EDGE, takes_over=None)  # another one, made after the finish
    assert b.claim(EDGE, worker="b", stale_after=60) is None  # finished
    states = sorted(t.state.name for t in _trials_of_edge(b))
    assert states == ["COMPLETE", "FAIL", "FAIL"] and b.records()[EDGE].value == 0.5


def test_a_study_whose_maker_died_is_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageplan.integrations.optuna._header as header

    monkeypatch.setattr(header, "HEADER_WAIT_S", 0.3)
    url = _url("journal", tmp_path)
    graph = plan_worker.graph()
    dying = OptunaStorage(url)
    dying._space.learn(graph.to_dict())
    trials = dying._plan_trials()
    sid = trials.backend.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "stageplan")
    trials.backend.set_study_user_attr(sid, "stageplan:graph", graph.to_dict())
    trials.create(EDGE, takes_over=None)  # killed here: one trial, no settings, no marker
    with pytest.raises(StorageMismatchError, match="mode"):
        _plan(OptunaStorage(url), mode="min")  # wrong direction: refused, nothing written
    assert optuna.load_study(study_name="stageplan", storage=trials.backend).user_attrs.keys() == {
        "stageplan:graph"
    }
    p = _plan(OptunaStorage(url))
    assert [s.state for s in p.stages] and p.final_value is not None
    study = OptunaStorage(url).load_study()
    assert study.user_attrs["stageplan:format"] == "stageplan-optuna"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * len(graph.edges)


def test_an_empty_study_of_the_other_direction_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageplan.integrations.optuna._header as header

    monkeypatch.setattr(header, "HEADER_WAIT_S", 0.1)
    url = _url("sqlite", tmp_path)
    optuna.create_study(storage=url, study_name="empty", direction="minimize")
    with pytest.raises(StorageError, match="'empty'.*optimizes \\['MINIMIZE'\\].*'max'"):
        _plan(OptunaStorage(url, study_name="empty"))


def test_a_claim_whose_worker_died_before_naming_itself_is_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stageplan.integrations.optuna._chain as chain

    monkeypatch.setattr(chain, "OWNERLESS_GRACE_S", 0.3)
    a, b = _pair(tmp_path)
    (trial,) = _trials_of_edge(a)
    backend = a._backend()
    trial_id = a._trial_id(trial)
    assert backend.set_trial_state_values(trial_id, TrialState.RUNNING)  # killed here
    assert b.claim(EDGE, worker="b", stale_after=600) is None  # it may still be writing
    time.sleep(0.5)
    assert b.claim(EDGE, worker="b", stale_after=600) == Progress()  # not 600 s later
    old, new = _trials_of_edge(b)
    assert old.state == TrialState.FAIL and new.state == TrialState.RUNNING


def test_a_storage_without_the_study_says_so(tmp_path: Path) -> None:
    store = OptunaStorage(_url("journal", tmp_path), study_name="Plan-A")
    with pytest.raises(StorageError, match="there is no study 'Plan-A' in journal:.*call plan"):
        store.records()
