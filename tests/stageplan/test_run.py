"""TransitionRun: the one place that decides which checkpoints of a transition live.

A recording storage checks, at every deletion, the rule the run promises: a checkpoint is
deleted only once neither the stored progress nor the stored record names it, and nothing is
deleted after a lost claim. Hypothesis drives curves, save patterns, rules and crash points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stageplan import (
    ClaimLostError,
    DirectoryCheckpoints,
    KneeRule,
    LocalStorage,
    Progress,
    State,
    TransitionRecord,
)
from stageplan._direction import Direction
from stageplan._run import TransitionRun

EDGE = (State("a", {}), State("b", {}))
KEY = ("a", "b")


class WatchedCheckpoints(DirectoryCheckpoints):
    def __init__(self, owner: Watched, root: Path) -> None:
        super().__init__(root, subdir="checkpoints")
        self.owner = owner
        self.deleted: list[str] = []

    def delete(self, ref: str) -> None:
        named = set(self.owner.stored.checkpoints.values())
        if self.owner.record is not None:  # once stored, the record alone names what it keeps
            named = {self.owner.record.checkpoint} - {None}
        assert ref not in named, f"deleted {ref} while the stored state still names it"
        assert not self.owner.lost, "deleted a checkpoint after the claim was lost"
        self.deleted.append(ref)
        super().delete(ref)


class Watched(LocalStorage):
    """A LocalStorage that remembers what it stored last and can lose its claim on cue."""

    def __init__(self, root: Path, lose_at: int | None = None) -> None:
        super().__init__(root)
        self._checkpoints = WatchedCheckpoints(self, root)
        self.stored = Progress()
        self.record: TransitionRecord | None = None
        self.lose_at = lose_at
        self.lost = False

    def save_progress(self, edge: Any, progress: Progress, *, worker: str) -> None:
        if self.lose_at is not None and len(progress.values) - 1 >= self.lose_at:
            self.lost = True
            raise ClaimLostError("taken over")
        super().save_progress(edge, progress, worker=worker)
        self.stored = progress

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        super().finish(record, worker=worker)
        self.record = record


def _store(tmp_path: Path, lose_at: int | None = None) -> Watched:
    store = Watched(tmp_path, lose_at)
    store.open({"g": 1}, {"m": 1})
    return store


def _trainer(curve: list[float], saves: list[bool], stop_at: int | None = None) -> Any:
    def fn(trial: Any) -> None:
        for epoch in trial.epochs():
            if stop_at is not None and epoch > stop_at:
                return
            save = None
            if saves[epoch % len(saves)]:
                def save(path: str, e: int = epoch) -> None:
                    Path(path).write_text(str(e))
            trial.report(curve[min(epoch, len(curve) - 1)], save=save)

    return fn


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "checkpoints").rglob("epoch-*")}


curves = st.lists(
    st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=2, max_size=25
)


SLOW_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
@given(
    curve=curves,
    saves=st.lists(st.booleans(), min_size=1, max_size=4),
    delay=st.integers(1, 4),
    mode=st.sampled_from(["max", "min"]),
    stop_at=st.one_of(st.none(), st.integers(0, 10)),
)
def test_only_the_kept_checkpoint_survives_and_nothing_named_is_deleted(
    tmp_path_factory: pytest.TempPathFactory,
    curve: list[float],
    saves: list[bool],
    delay: int,
    mode: str,
    stop_at: int | None,
) -> None:
    root = tmp_path_factory.mktemp("run")
    store = _store(root)
    assert store.claim(KEY, worker="w", stale_after=60) is not None
    run = TransitionRun(
        edge=EDGE, storage=store, rule=KneeRule(delay=delay, max_epochs=30),
        direction=Direction.of(mode), worker="w", init_ref=None,
    )
    record = run.execute(_trainer(curve, saves, stop_at))
    assert store.record is record
    left = _files(root)
    assert left == ({record.checkpoint} if record.checkpoint else set())
    if record.status == "complete":
        assert record.checkpoint_epoch is not None
        assert math.isfinite(record.values[record.checkpoint_epoch])


@settings(max_examples=25, deadline=None, suppress_health_check=SLOW_OK)
@given(curve=curves, lose_at=st.integers(1, 8), delay=st.integers(1, 3))
def test_a_lost_claim_writes_and_deletes_nothing_more(
    tmp_path_factory: pytest.TempPathFactory, curve: list[float], lose_at: int, delay: int
) -> None:
    root = tmp_path_factory.mktemp("lost")
    store = _store(root, lose_at=lose_at)
    assert store.claim(KEY, worker="w", stale_after=60) is not None
    run = TransitionRun(
        edge=EDGE, storage=store, rule=KneeRule(delay=delay, max_epochs=30),
        direction=Direction.of("max"), worker="w", init_ref=None,
    )
    before = None
    try:
        run.execute(_trainer(curve + [0.5] * 10, [True]))
    except ClaimLostError:
        before = _files(root)
    if store.lost:
        assert before is not None and store.record is None
        # What the last stored progress names is still there for the taker.
        assert set(store.stored.checkpoints.values()) <= before


def test_a_resumed_run_deletes_beyond_the_cut_only_after_storing_new_progress(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    assert store.claim(KEY, worker="w", stale_after=60) is not None
    refs = {}
    for epoch in (2, 3):
        path = store.checkpoints.checkpoint_path(KEY, epoch)
        Path(path).write_text(str(epoch))
        refs[epoch] = store.checkpoints.store(KEY, epoch, path)
    # Killed after storing the checkpoint of epoch 3 but before its value: the cut is epoch 2.
    stored = Progress(values=[0.1, 0.2, 0.3], checkpoints=refs)
    store.save_progress(KEY, stored, worker="w")
    run = TransitionRun(
        edge=EDGE, storage=store, rule=KneeRule(delay=2, max_epochs=6),
        direction=Direction.of("max"), worker="w", init_ref=None, progress=stored,
    )
    assert run.resumed_from == 2 and run.values == [0.1, 0.2, 0.3]
    assert refs[3] in _files(tmp_path)  # still named by the stored progress
    assert Path(run.start_checkpoint() or "").read_text() == "2"
    record = run.execute(_trainer([0.1, 0.2, 0.3, 0.4, 0.45, 0.46, 0.46], [True]))
    assert refs[3] in store.checkpoints.deleted
    assert record.resumed_from == 2 and record.values[:3] == [0.1, 0.2, 0.3]
    assert _files(tmp_path) == {record.checkpoint}
