"""Storage adapters: a third back-end plugs in by URL scheme without touching the core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stageplan import (
    ClaimLostError,
    DirectoryCheckpoints,
    KneeRule,
    LocalStorage,
    PlanStorage,
    Progress,
    StorageError,
    TransitionGraph,
    TransitionRecord,
    plan,
    register_storage_adapter,
    resolve_storage,
)
from stageplan.storage import check_header, storage_adapters


class DictStorage:
    """A whole plan storage in one process's memory: the smallest complete back-end."""

    def __init__(self, name: str, checkpoint_root: Path) -> None:
        self.name = name
        self._checkpoints = DirectoryCheckpoints(checkpoint_root)
        self.header: dict[str, Any] | None = None
        self.done: dict[tuple[str, str], TransitionRecord] = {}
        self.running: dict[tuple[str, str], tuple[str, Progress]] = {}

    @property
    def checkpoints(self) -> DirectoryCheckpoints:
        return self._checkpoints

    @property
    def process_safe(self) -> bool:
        return False

    def open(self, graph: dict[str, Any], meta: dict[str, Any]) -> None:
        if self.header is None:
            self.header = {"version": 1, "graph": graph, "meta": meta}
        check_header(self.header, version=1, graph=graph, meta=meta, where=self.name,
                     remedy="another name")

    def records(self) -> dict[tuple[str, str], TransitionRecord]:
        return dict(self.done)

    def claim(self, edge: Any, *, worker: str, stale_after: float) -> Progress | None:
        if edge in self.done or edge in self.running:
            return None
        self.running[edge] = (worker, Progress())
        return Progress()

    def _owned(self, edge: Any, worker: str) -> None:
        if self.running.get(edge, ("",))[0] != worker:
            raise ClaimLostError(f"{edge} is not claimed by {worker}")

    def save_progress(self, edge: Any, progress: Progress, *, worker: str) -> None:
        self._owned(edge, worker)
        self.running[edge] = (worker, progress)

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        self._owned(record.edge, worker)
        self.done[record.edge] = record
        del self.running[record.edge]

    def release(self, edge: Any, *, worker: str) -> None:
        if self.running.get(edge, ("",))[0] == worker:
            del self.running[edge]


class DictAdapter:
    schemes = ("dict",)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: dict[str, DictStorage] = {}

    def open_url(self, url: str, *, checkpoints: object | None) -> PlanStorage:
        name = url.partition("://")[2]
        root = Path(str(checkpoints)) if checkpoints is not None else self.root / name
        return self.opened.setdefault(name, DictStorage(url, root))

    def adopt(self, obj: object, *, checkpoints: object | None) -> PlanStorage | None:
        return None


def _fn(trial: Any) -> None:
    for epoch in trial.epochs():
        trial.report(min(epoch, 5) * trial.params["size"], save=lambda p: Path(p).write_text("w"))


def test_a_registered_adapter_plans_end_to_end(tmp_path: Path) -> None:
    adapter = DictAdapter(tmp_path)
    register_storage_adapter(adapter)
    graph = TransitionGraph.grid(("size", [1, 2]), ("lr", [0.1, 0.01]))
    rule = KneeRule(delay=2, max_epochs=12)
    result = plan(graph, _fn, storage="dict://one", rule=rule, progress=False)
    store = adapter.opened["one"]
    assert set(store.done) == {(a.name, b.name) for a, b in graph.edges}
    assert result.stages[-1].params["size"] == 2
    # Only the checkpoints the DP still needs are left in the adapter's checkpoint store.
    left = {str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("epoch-*")}
    settled_best = {r.checkpoint for r in store.done.values() if r.checkpoint}
    assert left <= settled_best
    assert result.final_checkpoint in left
    # A second plan() on the same URL reuses the finished records.
    again = plan(graph, _fn, storage="dict://one", rule=rule, progress=False)
    assert again.stages == result.stages


def test_an_adapter_must_have_the_protocol() -> None:
    with pytest.raises(TypeError, match="schemes, open_url"):
        register_storage_adapter(object())  # type: ignore[arg-type]


def test_an_unknown_scheme_names_itself_and_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"URL scheme 'redis'.*known schemes: .*postgresql"):
        resolve_storage("redis://localhost/0")


def test_paths_and_file_urls_are_local_storage(tmp_path: Path) -> None:
    assert isinstance(resolve_storage(str(tmp_path / "a")), LocalStorage)
    assert isinstance(resolve_storage(tmp_path / "b"), LocalStorage)
    local = resolve_storage(f"file://{tmp_path / 'c'}")
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "c").resolve()
    with pytest.raises(ValueError, match="checkpoints=.*directory storage"):
        resolve_storage(str(tmp_path / "d"), checkpoints=str(tmp_path / "ck"))
    with pytest.raises(TypeError, match="storage must be a directory path"):
        resolve_storage(42)


def test_the_optuna_adapter_is_found_by_its_entry_point() -> None:
    schemes = {s for a in storage_adapters() for s in a.schemes}
    assert {"sqlite", "postgresql", "journal"} <= schemes
