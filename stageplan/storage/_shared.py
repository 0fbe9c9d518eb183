"""Mechanisms every storage back-end needs, written once.

The plan header check, a worker's owner record, the staleness test of a claim and the check
that a trainer's ``save`` wrote something. Back-ends differ in where they keep these, never
in how they judge them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stageplan._records import EdgeKey, edge_label
from stageplan.storage._protocol import StorageError, StorageMismatchError

__all__ = [
    "check_header",
    "describe_mismatch",
    "is_stale",
    "owner_record",
    "pid_alive",
    "written_checkpoint",
]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host still runs; a zombie (exited, unreaped) does not.

    >>> pid_alive(os.getpid())
    True
    """
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


def owner_record(worker: str) -> dict[str, Any]:
    """What a claim stores about its owner: worker name, host, pid and the time of the claim."""
    return {
        "worker": worker,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": time.time(),
    }


def is_stale(
    owner: Mapping[str, Any] | None,
    heartbeats: Iterable[float],
    stale_after: float,
    *,
    check_local_pid: bool = True,
    now: float | None = None,
) -> bool:
    """Whether a claim may be taken over.

    It may when its owner runs on this host and its process is dead (``check_local_pid``), or
    when the newest of ``heartbeats`` (times of the claim and of its progress writes) is older
    than ``stale_after`` seconds. A claim with no heartbeat at all is stale.

    >>> is_stale({"host": "elsewhere", "pid": 1}, [100.0, 130.0], 60.0, now=180.0)
    False
    >>> is_stale({"host": "elsewhere", "pid": 1}, [100.0, 110.0], 60.0, now=180.0)
    True
    """
    if (
        check_local_pid
        and owner is not None
        and owner.get("host") == socket.gethostname()
        and isinstance(owner.get("pid"), int)
        and not pid_alive(owner["pid"])
    ):
        return True
    beats = [float(b) for b in heartbeats]
    if not beats:
        return True
    return (time.time() if now is None else now) - max(beats) > stale_after


def describe_mismatch(stored: Any, wanted: Any) -> str:
    """Name what differs between a stored graph/settings object and this run's.

    >>> describe_mismatch({"a": [1, 2], "b": 1}, {"a": [1, 3], "b": 1})
    'a[1]: stored 2, this run 3'
    """
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


def check_header(
    stored: Mapping[str, Any],
    *,
    version: int,
    graph: Any,
    meta: Any,
    where: str,
    remedy: str,
) -> None:
    """Check a stored plan header (``version``, ``graph``, ``meta``) against this run's.

    ``where`` names the storage in messages; ``remedy`` says how to start a new plan instead
    (``"a new directory"``, ``"a new study_name"``).

    >>> try:
    ...     check_header({"version": 1, "graph": {"s": 1}, "meta": {"mode": "max"}}, version=1,
    ...                  graph={"s": 1}, meta={"mode": "min"}, where="d", remedy="a new dir")
    ... except StorageMismatchError as exc:
    ...     print(str(exc).split(";")[0])
    d holds a plan made with other settings (mode: stored 'max', this run 'min')
    """
    if stored.get("version") != version:
        raise StorageMismatchError(
            f"{where} uses storage format version {stored.get('version')!r}; this stageplan "
            f"reads version {version}"
        )
    if stored.get("graph") != graph:
        raise StorageMismatchError(
            f"{where} holds a plan for another transition graph "
            f"({describe_mismatch(stored.get('graph'), graph)}); use {remedy} or the original "
            "graph"
        )
    if stored.get("meta") != meta:
        raise StorageMismatchError(
            f"{where} holds a plan made with other settings "
            f"({describe_mismatch(stored.get('meta'), meta)}); use {remedy} or the original "
            "settings"
        )


def written_checkpoint(edge: EdgeKey, epoch: int, path: str) -> Path:
    """``path`` as a Path, after checking that the trainer's save callable wrote something."""
    p = Path(path)
    if not p.exists():
        raise StorageError(
            f"transition {edge_label(edge)}: the save callable for epoch {epoch} wrote "
            f"nothing at {p}"
        )
    return p
