"""The plan study's header: made once, checked by every later worker with ``check_header``."""

from __future__ import annotations

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

from stageplan.storage import StorageError, check_header

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["open_study"]

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
    (which enqueues one trial per transition), then the format marker: other workers wait for
    the marker, so none of them sees a study whose first trials are still being enqueued.
    An existing study must be a stageplan study for the same graph and settings
    (:class:`~stageplan.StorageMismatchError` names the difference). ``where`` names the study
    in messages.
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
        backend.set_study_user_attr(study_id, S_GRAPH, graph)
        backend.set_study_user_attr(study_id, S_META, meta)
        backend.set_study_user_attr(study_id, S_VERSION, VERSION)
        populate(study_id)
        backend.set_study_user_attr(study_id, S_FORMAT, FORMAT)
        return study_id
    attrs = _wait_for_header(backend, study_id, where)
    stored = {
        "version": attrs.get(S_VERSION),
        "graph": attrs.get(S_GRAPH),
        "meta": attrs.get(S_META),
    }
    check_header(
        stored, version=VERSION, graph=graph, meta=meta, where=where, remedy="a new study_name"
    )
    return study_id


def _wait_for_header(backend: BaseStorage, study_id: int, where: str) -> dict[str, Any]:
    """The study's user attributes once its format marker is there.

    Waits while the study looks like one another process is making right now (only stageplan
    attributes and trials, no marker yet), up to :data:`HEADER_WAIT_S`; refuses any other
    study without the marker.
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
        being_made = ours_only and S_FORMAT not in attrs
        if not being_made or time.monotonic() > deadline:
            raise StorageError(
                f"{where} is not a stageplan study (it has {len(trials)} trials and user "
                f"attributes {sorted(attrs)[:8]}, no {S_FORMAT!r}={FORMAT!r}); pass another "
                "study_name"
            )
        time.sleep(0.1)
