"""The storage protocol the planner reads and writes through, and its errors.

A plan storage is two stores: a **record store** (:class:`PlanStorage`: the plan's header,
finished transitions, claims and progress of running ones) and a **checkpoint store**
(:class:`CheckpointStore`, reached as ``storage.checkpoints``: the files a trainer's ``save``
writes). The local directory and the Optuna adapter implement both; a checkpoint store can be
shared between them (:class:`~stageplan.storage.DirectoryCheckpoints`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from stageplan._records import EdgeKey, Progress, TransitionRecord

__all__ = [
    "CheckpointStore",
    "ClaimLostError",
    "PlanStorage",
    "StorageError",
    "StorageMismatchError",
]


class StorageError(RuntimeError):
    """A storage cannot be used (unreachable, not a stageplan store, corrupt record...)."""


class StorageMismatchError(StorageError):
    """A storage holds a plan for another graph, rule or direction."""


class ClaimLostError(StorageError):
    """This worker's claim on a transition was taken over by another worker.

    Raised by ``save_progress`` or ``finish`` of a worker whose heartbeat went stale while it
    was still running. The planner then drops its run without writing a record or deleting
    checkpoints: the taker resumes from them.
    """


@runtime_checkable
class CheckpointStore(Protocol):
    """Where the checkpoints of a plan live, each named by a string reference.

    The planner alone decides which checkpoints to keep; a store only writes, reads and
    deletes what it is told. A reference that is an absolute path of an existing file or
    directory (pretrained weights given as ``start_checkpoint``) is read in place and never
    deleted. Implementations must be picklable.
    """

    def describe(self) -> str:
        """A short human description (``"directory /plans/a/checkpoints"``) for messages."""
        ...

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        """A new local path where the trainer's ``save`` callable writes an epoch's checkpoint."""
        ...

    def store(self, edge: EdgeKey, epoch: int, path: str) -> str:
        """Keep the checkpoint just written at ``path``; return its reference."""
        ...

    def fetch(self, ref: str) -> str:
        """A local path holding checkpoint ``ref`` (:class:`StorageError` if it is gone)."""
        ...

    def delete(self, ref: str) -> None:
        """Remove a checkpoint; removing one that is gone already is not an error."""
        ...

    def copy(self, ref: str, edge: EdgeKey, epoch: int) -> str:
        """Keep a copy of checkpoint ``ref`` as ``edge``'s checkpoint of ``epoch``."""
        ...

    def sweep(self, edge: EdgeKey, keep: set[str]) -> list[str]:
        """Delete ``edge``'s checkpoints that ``keep`` does not name; return their references.

        Called once a transition's record is stored: a worker killed between writing a
        checkpoint and storing the progress that names it leaves such a file behind. A store
        that cannot list its contents returns ``[]``.
        """
        ...


@runtime_checkable
class PlanStorage(Protocol):
    """Where a plan's header, finished transitions and running claims live.

    The planner talks to storage only through these methods and :attr:`checkpoints`, so
    back-ends (a local directory, an Optuna study) plug in without touching it. Several worker
    processes, on one machine or many, may use one storage at once: ``claim`` must be atomic.
    Implementations must be picklable (worker processes receive them).
    """

    @property
    def checkpoints(self) -> CheckpointStore:
        """The store of this plan's checkpoints."""
        ...

    @property
    def process_safe(self) -> bool:
        """Whether several worker processes may share this storage (``plan(workers=N)``)."""
        ...

    def open(self, graph: dict[str, Any], meta: dict[str, Any]) -> None:
        """Bind the storage to a graph (``TransitionGraph.to_dict()``) and plan settings.

        A fresh storage records both; a storage made for another graph or other settings
        raises :class:`StorageMismatchError` naming the difference.
        """
        ...

    def records(self) -> dict[EdgeKey, TransitionRecord]:
        """Every finished transition (complete or failed), by ``(source, target)``."""
        ...

    def claim(self, edge: EdgeKey, *, worker: str, stale_after: float) -> Progress | None:
        """Atomically take a transition to run.

        Returns its stored progress (empty for a fresh start) when this worker now owns it,
        or ``None`` when another live worker holds it or it is finished. A claim whose
        heartbeat is older than ``stale_after`` seconds (or whose process on this host is
        dead) is taken over.
        """
        ...

    def save_progress(self, edge: EdgeKey, progress: Progress, *, worker: str) -> None:
        """Persist a running transition's progress; also refreshes its heartbeat.

        Raises :class:`ClaimLostError` when another worker took the transition over.
        """
        ...

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        """Store a finished transition atomically and drop its claim and progress.

        Raises :class:`ClaimLostError` when another worker took the transition over (the
        record is then not stored).
        """
        ...

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Give up this worker's claim without a record (the run was interrupted).

        The stored progress and its checkpoints stay, and any worker, on any host, may claim
        the transition at once and resume it. Releasing a claim this worker no longer holds
        does nothing.
        """
        ...
