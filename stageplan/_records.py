"""The records of a plan: finished transitions and the progress of running ones.

Both are plain data, written and read by every storage back-end in the same JSON form, so the
planner's dynamic programming (:mod:`stageplan._dp`) rests on them alone.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "EdgeKey",
    "Progress",
    "Status",
    "TransitionRecord",
    "decode_float",
    "edge_label",
    "edge_slug",
    "encode_float",
    "resume_cut",
]

EdgeKey = tuple[str, str]
Status = Literal["complete", "failed"]


def edge_label(edge: EdgeKey) -> str:
    """How messages and stored records name a transition.

    >>> edge_label(("a", "b"))
    'a -> b'
    """
    return f"{edge[0]} -> {edge[1]}"


def edge_slug(edge: EdgeKey, *, max_len: int = 80) -> str:
    """A file-name-safe, collision-resistant name for a transition.

    >>> edge_slug(("size=8", "size=16/x"))
    'size=8__size=16_x-aa36b7d8'
    """
    raw = f"{edge[0]}__{edge[1]}"
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", raw)[:max_len]
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def encode_float(x: float | None) -> float | str | None:
    """A float as JSON keeps it: non-finite values become ``"nan"``, ``"inf"``, ``"-inf"``.

    >>> [encode_float(v) for v in (0.5, float("nan"), float("-inf"), None)]
    [0.5, 'nan', '-inf', None]
    """
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def decode_float(x: Any) -> float | None:
    """The inverse of :func:`encode_float`.

    >>> decode_float("-inf"), decode_float(None), decode_float(2)
    (-inf, None, 2.0)
    """
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
            "values": [encode_float(v) for v in self.values],
            "knee_epoch": self.knee_epoch,
            "checkpoint_epoch": self.checkpoint_epoch,
            "value": encode_float(self.value),
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
                value=decode_float(data.get("value")),
                checkpoint=data.get("checkpoint"),
                decision=data.get("decision"),
                error=data.get("error"),
                worker=data.get("worker"),
                duration_s=data.get("duration_s"),
                resumed_from=data.get("resumed_from"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            from stageplan.storage._protocol import StorageError  # records come from storages

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
            "values": [encode_float(v) for v in self.values],
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




def resume_cut(progress: Progress) -> int | None:
    """The epoch an interrupted transition resumes from: its last kept checkpoint.

    Values after it are lost (no checkpoint holds the weights that gave them) and are run
    again; ``None`` when no checkpoint of a trained epoch was kept (start over at epoch 0).

    >>> resume_cut(Progress(values=[0.1, 0.2, 0.3, 0.4], checkpoints={1: "a", 2: "b", 5: "c"}))
    2
    >>> resume_cut(Progress(values=[0.1], checkpoints={})) is None
    True
    """
    kept = [e for e in progress.checkpoints if 0 < e < len(progress.values)]
    return max(kept) if kept else None
