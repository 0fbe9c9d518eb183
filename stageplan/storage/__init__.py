"""Plan storages: where finished transitions, running claims and checkpoints live.

:class:`LocalStorage` keeps a plan in a directory; other back-ends (the Optuna adapter in
:mod:`stageplan.integrations.optuna`) implement the same :class:`PlanStorage` protocol.
"""

from __future__ import annotations

from stageplan.storage._base import (
    ClaimLostError,
    EdgeKey,
    PlanStorage,
    Progress,
    StorageError,
    StorageMismatchError,
    TransitionRecord,
    best_incoming,
    describe_mismatch,
    edge_label,
    edge_slug,
    pid_alive,
    written_checkpoint,
)
from stageplan.storage._local import LocalStorage, atomic_write_json

__all__ = [
    "ClaimLostError",
    "EdgeKey",
    "LocalStorage",
    "PlanStorage",
    "Progress",
    "StorageError",
    "StorageMismatchError",
    "TransitionRecord",
    "atomic_write_json",
    "best_incoming",
    "describe_mismatch",
    "edge_label",
    "edge_slug",
    "pid_alive",
    "written_checkpoint",
]
