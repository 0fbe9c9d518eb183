"""The plan study's header: made once, checked by every later worker with ``check_header``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stageplan.integrations.optuna._encoding import (
    ATTR_PREFIX,
    FORMAT,
    S_FORMAT,
    S_GRAPH,
    S_META,
    S_VERSION,
    T_EDGE,
    VERSION,
    jsonable,
)

from stageplan.storage import StorageError, StorageMismatchError, check_header

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["open_study"]

_log = logging.getLogger("stageplan.integrations.optuna")

HEADER_WAIT_S = 15.0
"""Seconds a worker waits for another process to finish making the study's header."""


def open_study(
    backend: BaseStorage,
    study_name: str,
    graph: dict[str, Any],
    meta: dict[str, Any],
    *,
    where: str,
    populate: Callable[[int], None],
) -> int:
    """Make the plan study, or check the one there; return its id.

    A new study gets the graph, settings and format version, then ``populate(study_id)``
    (which enqueues a trial for every transition that has none), then the format marker:
    other workers wait for the marker, so none of them sees a study whose first trials are
    still being enqueued. A study whose maker died before the marker (only stageplan
    attributes and trials, no marker after :data:`HEADER_WAIT_S`) is completed by the next
    worker that opens it. An existing study must be a stageplan study for the same graph and
    settings (:class:`~stageplan.StorageMismatchError` names the difference). ``where`` names
    the study in messages.
    """
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    graph, meta = jsonable(graph), jsonable(meta)
    direction = StudyDirection.MINIMIZE if meta.get("mode") == "min" else StudyDirection.MAXIMIZE
    try:
        study_id = backend.create_new_study([direction], study_name)
    except DuplicatedStudyError:
        study_id = backend.get_study_id_from_name(study_name)
    else:
        _write_header(backend, study_id, graph, meta, {}, populate)
        return study_id
    attrs = _wait_for_header(backend, study_id, where)
    if attrs is None:  # its maker died half-way: finish its work
        directions = backend.get_study_directions(study_id)
        if directions != [direction]:
            raise StorageMismatchError(
                f"{where} has no complete stageplan header and optimizes "
                f"{[d.name for d in directions]}, not this plan's mode {meta.get('mode')!r}; "
                "pass another study_name"
            )
        _log.warning("%s: its maker stopped before the header was complete; completing it", where)
        _write_header(
            backend, study_id, graph, meta, backend.get_study_user_attrs(study_id), populate
        )
        attrs = backend.get_study_user_attrs(study_id)
    stored = {
        "version": attrs.get(S_VERSION),
        "graph": attrs.get(S_GRAPH),
        "meta": attrs.get(S_META),
    }
    check_header(
        stored, version=VERSION, graph=graph, meta=meta, where=where, remedy="a new study_name"
    )
    return study_id


def _write_header(
    backend: BaseStorage,
    study_id: int,
    graph: dict[str, Any],
    meta: dict[str, Any],
    present: dict[str, Any],
    populate: Callable[[int], None],
) -> None:
    """Write what the header lacks (all of it for a new study), the trials, then the marker."""
    for key, value in ((S_GRAPH, graph), (S_META, meta), (S_VERSION, VERSION)):
        if key not in present:
            backend.set_study_user_attr(study_id, key, value)
    populate(study_id)
    backend.set_study_user_attr(study_id, S_FORMAT, FORMAT)


def _wait_for_header(backend: BaseStorage, study_id: int, where: str) -> dict[str, Any] | None:
    """The study's user attributes once its format marker is there.

    Waits while the study looks like one another process is making right now (only stageplan
    attributes and trials, no marker yet), up to :data:`HEADER_WAIT_S`, then returns ``None``
    (its maker died); refuses any other study without the marker.
    """
    deadline = time.monotonic() + HEADER_WAIT_S
    while True:
        attrs = backend.get_study_user_attrs(study_id)
        if attrs.get(S_FORMAT) == FORMAT:
            return attrs
        trials = backend.get_all_trials(study_id, deepcopy=False)
        ours_only = all(k.startswith(ATTR_PREFIX) for k in attrs) and all(
            T_EDGE in t.user_attrs for t in trials
        )
        if not ours_only or S_FORMAT in attrs:
            raise StorageError(
                f"{where} is not a stageplan study (it has {len(trials)} trials and user "
                f"attributes {sorted(attrs)[:8]}, no {S_FORMAT!r}={FORMAT!r}); pass another "
                "study_name"
            )
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
