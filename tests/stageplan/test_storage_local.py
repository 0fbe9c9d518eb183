from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from stageplan import (
    ClaimLostError,
    LocalStorage,
    Progress,
    StorageError,
    StorageMismatchError,
    TransitionRecord,
)

EDGE = ("start", "a,b=1")


def _opened(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "s")
    store.open({"g": 1}, {"mode": "max"})
    return store


def test_claim_is_exclusive_and_finish_releases(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    assert store.claim(EDGE, worker="w1", stale_after=60) == Progress()
    assert store.claim(EDGE, worker="w2", stale_after=60) is None
    rec = TransitionRecord(
        source=EDGE[0],
        target=EDGE[1],
        status="complete",
        values=[0.0, 1.0],
        knee_epoch=1,
        checkpoint_epoch=1,
        value=1.0,
    )
    store.finish(rec, worker="w1")
    assert store.records() == {EDGE: rec}
    assert not list((tmp_path / "s" / "running").iterdir())


def test_stale_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=lambda: store.claim(EDGE, worker="dead", stale_after=60))
    proc.start()
    proc.join()
    # its pid is gone: the claim is stale at once, and its progress comes back
    progress = store.claim(EDGE, worker="w2", stale_after=3600)
    assert progress is not None


def test_old_heartbeat_is_taken_over_and_progress_returned(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    assert store.claim(EDGE, worker="w1", stale_after=60) is not None
    ref = store.checkpoints.store(EDGE, 1, _touch(store.checkpoints.checkpoint_path(EDGE, 1)))
    store.save_progress(EDGE, Progress(values=[0.1, 0.2], checkpoints={1: ref}), worker="w1")
    assert store.claim(EDGE, worker="w2", stale_after=60) is None  # fresh heartbeat, alive pid
    lock = next((tmp_path / "s" / "running").glob("*.lock"))
    old = time.time() - 120
    os.utime(lock, (old, old))
    progress = store.claim(EDGE, worker="w2", stale_after=60)
    assert progress == Progress(values=[0.1, 0.2], checkpoints={1: ref})


def _touch(path: str) -> str:
    Path(path).write_text("ckpt")
    return path


def test_checkpoint_refs_are_relative_and_deletes_idempotent(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    ref = store.checkpoints.store(EDGE, 3, _touch(store.checkpoints.checkpoint_path(EDGE, 3)))
    assert not os.path.isabs(ref)
    assert Path(store.checkpoints.fetch(ref)).read_text() == "ckpt"
    copy = store.checkpoints.copy(ref, ("a,b=1", "c"), 0)
    store.checkpoints.delete(ref)
    store.checkpoints.delete(ref)
    assert Path(store.checkpoints.fetch(copy)).read_text() == "ckpt"
    with pytest.raises(StorageError, match="checkpoint .* is missing"):
        store.checkpoints.fetch(ref)
    with pytest.raises(StorageError, match="wrote nothing"):
        store.checkpoints.store(EDGE, 4, store.checkpoints.checkpoint_path(EDGE, 4))


def test_directory_checkpoints_are_supported(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    path = Path(store.checkpoints.checkpoint_path(EDGE, 1))
    path.mkdir()
    (path / "weights.bin").write_text("w")
    ref = store.checkpoints.store(EDGE, 1, str(path))
    copy = store.checkpoints.copy(ref, ("x", "y"), 0)
    store.checkpoints.delete(ref)
    assert not path.exists()
    assert (Path(store.checkpoints.fetch(copy)) / "weights.bin").read_text() == "w"


def test_mismatch_and_corruption_errors(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    with pytest.raises(StorageMismatchError, match="another transition graph"):
        LocalStorage(tmp_path / "s").open({"g": 2}, {"mode": "max"})
    with pytest.raises(StorageMismatchError, match="mode: stored 'max', this run 'min'"):
        LocalStorage(tmp_path / "s").open({"g": 1}, {"mode": "min"})
    (tmp_path / "s" / "transitions" / "broken.json").write_text("{not json")
    with pytest.raises(StorageError, match="broken.json is not valid JSON"):
        store.records()
    (tmp_path / "s" / "transitions" / "broken.json").write_text(json.dumps({"source": "a"}))
    with pytest.raises(StorageError, match="malformed transition record"):
        store.records()


def test_a_file_is_not_a_storage(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="exists and is not a directory"):
        LocalStorage(tmp_path / "f")


def test_a_taken_over_worker_can_neither_report_nor_finish(tmp_path: Path) -> None:
    store = _opened(tmp_path)
    assert store.claim(EDGE, worker="slow", stale_after=60) is not None
    lock = next((tmp_path / "s" / "running").glob("*.lock"))
    old = time.time() - 120
    os.utime(lock, (old, old))
    assert store.claim(EDGE, worker="taker", stale_after=60) is not None
    with pytest.raises(ClaimLostError, match="taken over by taker"):
        store.save_progress(EDGE, Progress(values=[0.0]), worker="slow")
    rec = TransitionRecord(source=EDGE[0], target=EDGE[1], status="failed", error="late")
    with pytest.raises(ClaimLostError):
        store.finish(rec, worker="slow")
    assert store.records() == {}
    store.save_progress(EDGE, Progress(values=[0.0]), worker="taker")


def _open_at(root: str, start: float) -> str:
    while time.time() < start:
        pass
    try:
        LocalStorage(root).open({"g": 1}, {"m": 1})
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_many_workers_opening_a_new_directory_at_once_all_succeed(tmp_path: Path) -> None:
    # The fault soak once saw a worker refuse a new plan directory as "not empty" because
    # another worker had just written its header and folders.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(6) as pool:
        for round_ in range(20):
            root = str(tmp_path / f"plan{round_}")
            start = time.time() + 0.3
            results = pool.starmap(_open_at, [(root, start)] * 6)
            assert results == ["ok"] * 6, results
