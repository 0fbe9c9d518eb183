"""Turning what a user passes as ``storage=`` into a :class:`PlanStorage`.

A directory path (or ``file://`` URL) is a :class:`LocalStorage`. Every other URL scheme, and
storage objects of other libraries, belong to an **adapter**: an object with

* ``schemes``: the URL schemes it opens (``"sqlite"``, ``"postgresql"``, ``"journal"``...; a
  driver suffix such as ``postgresql+psycopg2`` counts as its base scheme);
* ``open_url(url, *, checkpoints)``: the storage for such a URL;
* ``adopt(obj, *, checkpoints)``: the storage for an object of its library, or ``None`` when
  ``obj`` is not one.

Adapters are found through the entry-point group ``stageplan.storage_adapters`` (an installed
distribution declares ``[project.entry-points."stageplan.storage_adapters"] name =
"package.module:ADAPTER"``), or registered at run time with :func:`register_storage_adapter`.
The core never names an adapter: a third back-end plugs in without touching it.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from stageplan.storage._local import LocalStorage
from stageplan.storage._protocol import PlanStorage, StorageError

__all__ = [
    "ENTRY_POINT_GROUP",
    "StorageAdapter",
    "register_storage_adapter",
    "resolve_storage",
    "storage_adapters",
]

ENTRY_POINT_GROUP = "stageplan.storage_adapters"


@runtime_checkable
class StorageAdapter(Protocol):
    """What a storage back-end registers (see the module's description)."""

    schemes: tuple[str, ...]

    def open_url(self, url: str, *, checkpoints: object | None) -> PlanStorage: ...

    def adopt(self, obj: object, *, checkpoints: object | None) -> PlanStorage | None: ...


_registered: list[StorageAdapter] = []
_loaded: list[StorageAdapter] | None = None
_broken: dict[str, str] = {}


def register_storage_adapter(adapter: StorageAdapter) -> None:
    """Add an adapter at run time (it is consulted before the installed ones)."""
    if not isinstance(adapter, StorageAdapter):
        raise TypeError(
            "a storage adapter needs schemes, open_url() and adopt(); got "
            f"{type(adapter).__name__} {adapter!r}"
        )
    if adapter not in _registered:
        _registered.insert(0, adapter)


def storage_adapters() -> list[StorageAdapter]:
    """The registered adapters, then the installed ones (entry points, loaded once)."""
    global _loaded
    if _loaded is None:
        found: list[StorageAdapter] = []
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                adapter = ep.load()
            except Exception as exc:  # noqa: BLE001 - reported when its scheme is asked for
                _broken[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            if isinstance(adapter, StorageAdapter):
                found.append(adapter)
            else:
                _broken[ep.name] = f"{ep.value} is not a storage adapter"
        _loaded = found
    return [*_registered, *_loaded]


def _scheme(url: str) -> str | None:
    """A storage string's URL scheme (driver suffix dropped), or ``None`` for a plain path.

    >>> _scheme("postgresql+psycopg2://u@h/db"), _scheme("journal:plan.log"), _scheme("runs/a")
    ('postgresql', 'journal', None)
    """
    head, sep, _ = url.partition(":")
    if not sep or not head or not all(c.isalnum() or c in "+-." for c in head):
        return None
    if len(head) == 1:  # a Windows drive letter, C:\\...
        return None
    return head.split("+", 1)[0].lower()


def _no_checkpoints_for(storage: object, checkpoints: object | None, what: str) -> None:
    if checkpoints is not None:
        raise ValueError(
            f"checkpoints={checkpoints!r} applies to database and journal storages only; "
            f"storage {storage!r} is {what}"
        )


def resolve_storage(
    storage: PlanStorage | str | os.PathLike[str] | Any, *, checkpoints: object | None = None
) -> PlanStorage:
    """Turn what ``plan(storage=...)`` was given into a :class:`PlanStorage`.

    A directory path or ``file://`` URL is a :class:`LocalStorage` (its checkpoints live
    inside it). Other URLs (``sqlite:///``, ``postgresql://``, ``journal:``...) and storage
    objects of other libraries go to the installed adapter for them, with ``checkpoints`` (a
    directory every worker can reach, ``s3://bucket``, or an artifact store) as the place for
    checkpoints. A :class:`PlanStorage` is used as it is.
    """
    if isinstance(storage, PlanStorage):
        _no_checkpoints_for(storage, checkpoints, "a storage object (pass it to its constructor)")
        return storage
    if isinstance(storage, Path):
        _no_checkpoints_for(storage, checkpoints, "a directory storage (it keeps them inside)")
        return LocalStorage(storage)
    if isinstance(storage, str):
        scheme = _scheme(storage)
        if scheme in (None, "file"):
            _no_checkpoints_for(storage, checkpoints, "a directory storage (it keeps them inside)")
            return LocalStorage(storage[len("file://") :] if scheme == "file" else storage)
        for adapter in storage_adapters():
            if scheme in adapter.schemes:
                return adapter.open_url(storage, checkpoints=checkpoints)
        raise StorageError(_no_adapter(f"storage {storage!r}", f"URL scheme {scheme!r}"))
    for adapter in storage_adapters():
        adopted = adapter.adopt(storage, checkpoints=checkpoints)
        if adopted is not None:
            return adopted
    raise TypeError(
        "storage must be a directory path, a storage URL or a PlanStorage, got "
        f"{type(storage).__name__} {storage!r}{_broken_text()}"
    )


def _broken_text() -> str:
    if not _broken:
        return ""
    return "; adapters that failed to load: " + "; ".join(
        f"{name}: {why}" for name, why in sorted(_broken.items())
    )


def _no_adapter(what: str, needs: str) -> str:
    known = sorted({s for a in storage_adapters() for s in a.schemes})
    text = f"{what}: no installed storage adapter handles the {needs}"
    if known:
        text += f" (known schemes: {', '.join(known)})"
    return text + _broken_text()
