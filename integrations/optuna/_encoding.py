"""What a plan study stores and where: attribute names, and records as trial attributes.

This is the on-disk (in-database) format of :class:`~stageplan.integrations.optuna.
OptunaStorage`; plan studies written by earlier releases must keep loading, so names and
value shapes here change only with :data:`VERSION`.

Study user attributes: ``stageplan:graph`` (``TransitionGraph.to_dict()``), ``stageplan:meta``
(plan settings), ``stageplan:version`` and, written last, ``stageplan:format``.

Trial user attributes (one trial per attempt at a transition): the edge (``"source ->
target"``, source, target), ``takes_over`` (the number of the trial this one continues, or
``None``), the ``owner`` record written at claim, the stored ``progress`` with its heartbeat,
``taken_over_by`` / ``superseded`` on trials that lost their place, and for a finished
transition its curve, status, knee epoch, checkpoint epoch, stop reason, fit parameters,
checkpoint, worker, error and, last, the whole ``record``. The target state's
hyper-parameters are the trial's params (categorical); the curve is its intermediate values
(step 0 is the start value) and the knee value its value.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stageplan.storage import EdgeKey, Progress, TransitionRecord, edge_label, encode_float

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "ATTR_PREFIX",
    "FORMAT",
    "VERSION",
    "ParamSpace",
    "final_state",
    "jsonable",
    "progress_attr",
    "record_attrs",
    "stored_progress",
    "stored_record",
    "trial_template",
    "written_values",
]

ATTR_PREFIX = "stageplan:"
FORMAT = "stageplan-optuna"
VERSION = 1

# Study user attributes.
S_FORMAT = ATTR_PREFIX + "format"
S_VERSION = ATTR_PREFIX + "version"
S_GRAPH = ATTR_PREFIX + "graph"
S_META = ATTR_PREFIX + "meta"

# Trial user attributes.
T_EDGE = ATTR_PREFIX + "edge"  # "source -> target"
T_SOURCE = ATTR_PREFIX + "source"
T_TARGET = ATTR_PREFIX + "target"
T_TAKES_OVER = ATTR_PREFIX + "takes_over"  # number of the trial this one continues, or None
T_OWNER = ATTR_PREFIX + "owner"  # {"worker", "host", "pid", "time"} written at claim
T_PROGRESS = ATTR_PREFIX + "progress"  # {"progress": Progress.to_dict(), "heartbeat", "worker"}
T_TAKEN_OVER = ATTR_PREFIX + "taken_over_by"  # {"worker", "time"[, "released": True]}
T_SUPERSEDED = ATTR_PREFIX + "superseded"
T_CURVE = ATTR_PREFIX + "curve"  # the exact curve, non-finite values as "nan"/"inf"/"-inf"
T_STATUS = ATTR_PREFIX + "status"
T_KNEE = ATTR_PREFIX + "knee_epoch"
T_CKPT_EPOCH = ATTR_PREFIX + "checkpoint_epoch"
T_REASON = ATTR_PREFIX + "stop_reason"
T_FIT = ATTR_PREFIX + "fit_params"
T_CKPT = ATTR_PREFIX + "checkpoint"
T_ERROR = ATTR_PREFIX + "error"
T_WORKER = ATTR_PREFIX + "worker"
T_RECORD = ATTR_PREFIX + "record"  # the whole TransitionRecord; written last before the state


def jsonable(data: Any) -> Any:
    """``data`` as it reads back from any Optuna storage (a JSON round trip)."""
    return json.loads(json.dumps(data))


def record_attrs(record: TransitionRecord) -> dict[str, Any]:
    """User attributes describing a finished transition; the whole record comes last."""
    decision = record.decision or {}
    attrs: dict[str, Any] = {
        T_CURVE: [encode_float(v) for v in record.values],
        T_STATUS: record.status,
        T_KNEE: record.knee_epoch,
        T_CKPT_EPOCH: record.checkpoint_epoch,
        T_REASON: decision.get("reason"),
        T_FIT: decision.get("params"),
        T_CKPT: record.checkpoint,
        T_WORKER: record.worker,
    }
    if record.error is not None:
        attrs[T_ERROR] = record.error
    attrs[T_RECORD] = jsonable(record.to_dict())
    return attrs


def final_state(record: TransitionRecord) -> tuple[TrialState, float | None]:
    """The trial state and value of a finished transition (``FAIL`` without a finite value)."""
    from optuna.trial import TrialState

    value = record.value
    if record.status == "complete" and value is not None and math.isfinite(value):
        return TrialState.COMPLETE, float(value)
    return TrialState.FAIL, None


def stored_record(trial: FrozenTrial) -> TransitionRecord | None:
    """The record a trial holds (``None`` when it has none yet)."""
    data = trial.user_attrs.get(T_RECORD)
    return TransitionRecord.from_dict(data) if isinstance(data, dict) else None


def stored_progress(trial: FrozenTrial) -> Progress | None:
    """The progress a trial's worker stored last (``None`` when it stored none)."""
    stored = trial.user_attrs.get(T_PROGRESS)
    if not isinstance(stored, dict):
        return None
    return Progress.from_dict(stored.get("progress", {}))


def progress_attr(progress: Progress, worker: str) -> dict[str, Any]:
    """The stored form of a running transition's progress, with its heartbeat."""
    return {"progress": progress.to_dict(), "heartbeat": time.time(), "worker": worker}


def written_values(trial: FrozenTrial) -> list[float]:
    """The curve a trial holds as intermediate values (steps 0..n-1; else nothing)."""
    steps = sorted(trial.intermediate_values)
    if steps != list(range(len(steps))):
        return []
    return [trial.intermediate_values[s] for s in steps]


class ParamSpace:
    """The states' hyper-parameters as Optuna params: one categorical distribution per name.

    Only scalar values (``None``, bool, int, float, str) become params; the choices of a name
    are every value some state of the graph gives it.
    """

    def __init__(self) -> None:
        self._params: dict[str, dict[str, Any]] = {}
        self._choices: dict[str, list[Any]] = {}

    def learn(self, graph: Mapping[str, Any]) -> None:
        """Read the states of a graph (``TransitionGraph.to_dict()``)."""
        params: dict[str, dict[str, Any]] = {}
        choices: dict[str, list[Any]] = {}
        for state in graph.get("states", []):
            p = {
                k: v
                for k, v in dict(state.get("params", {})).items()
                if v is None or isinstance(v, (bool, int, float, str))
            }
            params[str(state["name"])] = p
            for k, v in p.items():
                known = choices.setdefault(k, [])
                if v not in known or any(type(v) is not type(c) for c in known if c == v):
                    known.append(v)
        self._params = params
        self._choices = choices

    def of(self, state: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A state's params and their distributions."""
        from optuna.distributions import CategoricalDistribution

        params: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        for k, v in self._params.get(state, {}).items():
            if k in self._choices:
                params[k] = v
                dists[k] = CategoricalDistribution(self._choices[k])
        return params, dists


def trial_template(
    edge: EdgeKey,
    space: ParamSpace,
    *,
    takes_over: int | None,
    progress: Any = None,
    intermediate: Mapping[int, float] | None = None,
    record: TransitionRecord | None = None,
) -> FrozenTrial:
    """A new trial of a transition: ``WAITING``, or finished when ``record`` is given.

    ``progress`` is a stored progress attribute (copied from the trial taken over).
    """
    from optuna.trial import FrozenTrial, TrialState

    params, dists = space.of(edge[1])
    attrs: dict[str, Any] = {
        T_EDGE: edge_label(edge),
        T_SOURCE: edge[0],
        T_TARGET: edge[1],
        T_TAKES_OVER: takes_over,
    }
    if progress is not None:
        attrs[T_PROGRESS] = progress
    state, value = TrialState.WAITING, None
    now = datetime.now()
    if record is not None:
        attrs.update(record_attrs(record))
        state, value = final_state(record)
    return FrozenTrial(
        number=-1,
        state=state,
        value=value,
        datetime_start=now if record is not None else None,
        datetime_complete=now if record is not None else None,
        params=params,
        distributions=dists,
        user_attrs=attrs,
        system_attrs={},
        intermediate_values=dict(intermediate or {}),
        trial_id=-1,
    )
