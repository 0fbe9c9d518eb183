"""Plan storages: where a plan's records and checkpoints live.

The protocol is two stores: :class:`PlanStorage` (the plan's header, finished transitions,
claims and progress of running ones) and :class:`CheckpointStore` (``storage.checkpoints``).
:class:`LocalStorage` keeps a plan in a directory with a :class:`DirectoryCheckpoints` store;
other back-ends (the Optuna adapter, :mod:`stageplan.integrations.optuna`) register URL schemes
as a :class:`StorageAdapter` and implement the same protocol, with the shared mechanisms of
this package (:func:`check_header`, :func:`is_stale`, :func:`owner_record`...).

The record types are the core's (:mod:`stageplan`); they are re-exported here for back-ends.
"""

from __future__ import annotations

from stageplan._records import (
    EdgeKey,
    Progress,
    Status,
    TransitionRecord,
    decode_float,
    edge_label,
    edge_slug,
    encode_float,
    resume_cut,
)
from stageplan.storage._directory import (
    DirectoryCheckpoints,
    copy_checkpoint,
    external_checkpoint,
    remove_path,
)
from stageplan.storage._local import LocalStorage, atomic_write_json
from stageplan.storage._protocol import (
    CheckpointStore,
    ClaimLostError,
    PlanStorage,
    StorageError,
    StorageMismatchError,
)
from stageplan.storage._registry import (
    ENTRY_POINT_GROUP,
    StorageAdapter,
    register_storage_adapter,
    resolve_storage,
    storage_adapters,
)
from stageplan.storage._shared import (
    check_header,
    describe_mismatch,
    is_stale,
    owner_record,
    pid_alive,
    written_checkpoint,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CheckpointStore",
    "ClaimLostError",
    "DirectoryCheckpoints",
    "EdgeKey",
    "LocalStorage",
    "PlanStorage",
    "Progress",
    "Status",
    "StorageAdapter",
    "StorageError",
    "StorageMismatchError",
    "TransitionRecord",
    "atomic_write_json",
    "check_header",
    "copy_checkpoint",
    "decode_float",
    "describe_mismatch",
    "edge_label",
    "edge_slug",
    "encode_float",
    "external_checkpoint",
    "is_stale",
    "owner_record",
    "pid_alive",
    "register_storage_adapter",
    "remove_path",
    "resolve_storage",
    "resume_cut",
    "storage_adapters",
    "written_checkpoint",
]
