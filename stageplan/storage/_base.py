"""The storage protocol the planner reads and writes through, and its records."""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ClaimLostError",
    "EdgeKey",
    "PlanStorage",
    "Progress",
    "Status",
    "StorageError",
    "StorageMismatchError",
    "TransitionRecord",
    "describe_mismatch",
    "edge_label",
    "edge_slug",
    "pid_alive",
    "written_checkpoint",
]

EdgeKey = tuple[str, str]
Status = Literal["complete", "failed"]


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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host still runs; a zombie (exited, unreaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(pid, 0)
    return state not in ("Z", "X")


def describe_mismatch(stored: Any, wanted: Any) -> str:
    """Name what differs between a stored graph/settings object and this run's."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return f"stored {stored!r}, this run {wanted!r}"
    parts = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                parts.append(f"{key}: stored has {len(a)}, this run has {len(b)}")
            else:
                first = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                parts.append(f"{key}[{first}]: stored {a[first]!r}, this run {b[first]!r}")
        else:
            parts.append(f"{key}: stored {a!r}, this run {b!r}")
    return "; ".join(parts)


def edge_slug(edge: EdgeKey, *, max_len: int = 80) -> str:
    """A file-name-safe, collision-resistant name for a transition."""
    raw = f"{edge[0]}__{edge[1]}"
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", raw)[:max_len]
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def written_checkpoint(edge: EdgeKey, epoch: int, path: str) -> Path:
    """``path`` as a Path, after checking that the trainer's save callable wrote something."""
    p = Path(path)
    if not p.exists():
        raise StorageError(
            f"transition {edge_label(edge)}: the save callable for epoch {epoch} wrote "
            f"nothing at {p}"
        )
    return p


def edge_label(edge: EdgeKey) -> str:
    return f"{edge[0]} -> {edge[1]}"


def _json_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _from_json_float(x: Any) -> float | None:
    if x is None:
        return None
    return float(x)


@dataclass
class TransitionRecord:
    """One finished transition: its curve, the knee decision and the checkpoint it keeps.

    Attributes:
        source: Name of the source state.
        target: Name of the target state.
        status: ``"complete"`` or ``"failed"`` (the transition function raised, reported no
            value, or broke the protocol; ``error`` says which).
        values: The validation curve, ``values[0]`` the start checkpoint under the target's
            settings. Non-finite values are kept as reported.
        knee_epoch: The epoch the knee rule chose (``None`` when it never decided).
        checkpoint_epoch: The epoch whose checkpoint is kept (equals ``knee_epoch`` unless that
            checkpoint was not saved; then the nearest kept epoch).
        value: ``values[checkpoint_epoch]``: the transition's value V(S_i -> S_j).
        checkpoint: Storage reference of the kept checkpoint; ``None`` when the transition
            kept the start weights of an untrained start or saved no checkpoints.
        decision: The final knee decision as a dict.
        error: The error text of a failed transition.
        worker: Who ran it; ``duration_s``: wall time; ``resumed_from``: epoch a resumed run
            started from.
    """

    source: str
    target: str
    status: Status
    values: list[float] = field(default_factory=list)
    knee_epoch: int | None = None
    checkpoint_epoch: int | None = None
    value: float | None = None
    checkpoint: str | None = None
    decision: dict[str, Any] | None = None
    error: str | None = None
    worker: str | None = None
    duration_s: float | None = None
    resumed_from: int | None = None

    @property
    def edge(self) -> EdgeKey:
        return (self.source, self.target)

    @property
    def epochs(self) -> int:
        """Epochs trained (the curve's length minus the epoch-0 evaluation)."""
        return max(len(self.values) - 1, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "values": [_json_float(v) for v in self.values],
            "knee_epoch": self.knee_epoch,
            "checkpoint_epoch": self.checkpoint_epoch,
            "value": _json_float(self.value),
            "checkpoint": self.checkpoint,
            "decision": self.decision,
            "error": self.error,
            "worker": self.worker,
            "duration_s": self.duration_s,
            "resumed_from": self.resumed_from,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransitionRecord:
        try:
            status = data["status"]
            if status not in ("complete", "failed"):
                raise ValueError(f"status must be 'complete' or 'failed', got {status!r}")
            return cls(
                source=str(data["source"]),
                target=str(data["target"]),
                status=status,
                values=[float(v) for v in data.get("values", [])],
                knee_epoch=data.get("knee_epoch"),
                checkpoint_epoch=data.get("checkpoint_epoch"),
                value=_from_json_float(data.get("value")),
                checkpoint=data.get("checkpoint"),
                decision=data.get("decision"),
                error=data.get("error"),
                worker=data.get("worker"),
                duration_s=data.get("duration_s"),
                resumed_from=data.get("resumed_from"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"malformed transition record {dict(data)!r}: {exc}") from exc


@dataclass
class Progress:
    """What a running transition has stored so far (used to resume it).

    Attributes:
        values: Values reported so far (``values[0]`` is epoch 0).
        checkpoints: Storage references of the kept checkpoints, by epoch.
        init_checkpoint: Reference of the checkpoint the transition started from.
    """

    values: list[float] = field(default_factory=list)
    checkpoints: dict[int, str] = field(default_factory=dict)
    init_checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": [_json_float(v) for v in self.values],
            "checkpoints": {str(k): v for k, v in self.checkpoints.items()},
            "init_checkpoint": self.init_checkpoint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        return cls(
            values=[float(v) for v in data.get("values", [])],
            checkpoints={int(k): str(v) for k, v in dict(data.get("checkpoints", {})).items()},
            init_checkpoint=data.get("init_checkpoint"),
        )


@runtime_checkable
class PlanStorage(Protocol):
    """Where a plan's finished transitions, running claims and checkpoints live.

    The planner talks to storage only through these methods, so back-ends (a local
    directory, an Optuna study) plug in without touching it. Several worker processes, on
    one machine or many, may use one storage at once: ``claim`` must be atomic.
    Implementations must be picklable (worker processes receive them).
    """

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
        or ``None`` when another live worker holds it. A claim whose heartbeat is older than
        ``stale_after`` seconds (or whose local process is dead) is taken over.
        """
        ...

    def save_progress(self, edge: EdgeKey, progress: Progress, *, worker: str) -> None:
        """Persist a running transition's progress; also refreshes its heartbeat."""
        ...

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        """Store a finished transition atomically and drop its claim and progress.

        Checkpoints of the transition that the record does not keep (left by a worker
        killed between writing a checkpoint and storing its progress) may be deleted.
        """
        ...

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Give up this worker's claim without a record (the run was interrupted).

        The stored progress and its checkpoints stay, and any worker, on any host, may claim
        the transition at once and resume it. Releasing a claim this worker no longer holds
        does nothing.
        """
        ...

    @property
    def process_safe(self) -> bool:
        """Whether several worker processes may share this storage (``plan(workers=N)``)."""
        ...

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        """A local path where the trainer's ``save`` callable writes an epoch's checkpoint."""
        ...

    def store_checkpoint(self, edge: EdgeKey, epoch: int, path: str) -> str:
        """Keep a checkpoint just written at ``path``; return its storage reference."""
        ...

    def fetch_checkpoint(self, ref: str) -> str:
        """Return a local path holding the checkpoint ``ref``."""
        ...

    def delete_checkpoint(self, ref: str) -> None:
        """Remove a kept checkpoint; removing one that is gone already is not an error."""
        ...

    def copy_checkpoint(self, ref: str, edge: EdgeKey, epoch: int) -> str:
        """Keep a copy of checkpoint ``ref`` as ``edge``'s checkpoint of ``epoch``."""
        ...


def best_incoming(
    records: Sequence[TransitionRecord],
    edge_order: Mapping[EdgeKey, int],
    sign: float,
    path_epochs: Mapping[str, int] | None = None,
) -> TransitionRecord | None:
    """The best complete record among a state's incoming transitions.

    Highest ``sign * value`` wins. Tie rule, among exactly equal values: the cheaper path
    wins, i.e. the fewest epochs from the start through the record (``path_epochs[source]``,
    the epochs of the source's own best path, plus the record's ``checkpoint_epoch``; without
    ``path_epochs`` only the record's own epochs count); remaining ties go to the edge listed
    first in the graph.
    """
    best: TransitionRecord | None = None
    best_key: tuple[float, int, int] | None = None
    for rec in records:
        if rec.status != "complete" or rec.value is None or not math.isfinite(rec.value):
            continue
        before = 0 if path_epochs is None else int(path_epochs.get(rec.source, 0))
        cost = before + int(rec.checkpoint_epoch or 0)
        key = (-sign * rec.value, cost, edge_order[rec.edge])
        if best_key is None or key < best_key:
            best, best_key = rec, key
    return best
