"""stageplan: plan staged training schedules automatically.

An implementation of *Optimization Planning for 3D ConvNets* (Qiu et al., ICML 2021) as a
framework-agnostic plugin. Training **states** fix hyper-parameters, a **transition graph**
says which state may follow which, a **knee rule** stops each transition once its validation
curve has peaked, and **dynamic programming** keeps each state's best predecessor; the
result is a replayable :class:`Plan`. Any staged trainer takes part through the small
:class:`Trial` protocol. The core needs numpy and scipy only.

Example:
    >>> import tempfile
    >>> from stageplan import KneeRule, TransitionGraph, plan
    >>> graph = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.1, 0.01]))
    >>> def run_transition(trial):
    ...     for epoch in trial.epochs():
    ...         trial.report(min(epoch, 12) / 12 * trial.params["size"])
    >>> result = plan(graph, run_transition, storage=tempfile.mkdtemp(),
    ...               rule=KneeRule(delay=3), progress=False)
    >>> result.stages[-1].state
    'size=16,lr=0.01'
"""

from __future__ import annotations

from stageplan._graph import Edge, GraphError, TransitionGraph
from stageplan._plan import FORMAT_VERSION, EpochSettings, Plan, PlanFormatError, Stage
from stageplan._planner import (
    DEFAULT_MAX_EPOCHS,
    Frontier,
    PlanningError,
    TransitionFailedError,
    build_plan,
    frontier,
    plan,
    resolve_storage,
)
from stageplan._records import Progress, TransitionRecord
from stageplan._state import ParamValue, State
from stageplan._trial import Trial, TrialProtocolError
from stageplan.knee import KneeDecision, KneeRule, KneeTracker
from stageplan.storage import (
    CheckpointStore,
    ClaimLostError,
    DirectoryCheckpoints,
    LocalStorage,
    PlanStorage,
    StorageAdapter,
    StorageError,
    StorageMismatchError,
    register_storage_adapter,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointStore",
    "ClaimLostError",
    "DEFAULT_MAX_EPOCHS",
    "DirectoryCheckpoints",
    "FORMAT_VERSION",
    "Edge",
    "EpochSettings",
    "Frontier",
    "GraphError",
    "KneeDecision",
    "KneeRule",
    "KneeTracker",
    "LocalStorage",
    "ParamValue",
    "Plan",
    "PlanFormatError",
    "PlanStorage",
    "PlanningError",
    "Progress",
    "Stage",
    "State",
    "StorageAdapter",
    "StorageError",
    "StorageMismatchError",
    "TransitionFailedError",
    "TransitionGraph",
    "TransitionRecord",
    "Trial",
    "TrialProtocolError",
    "build_plan",
    "frontier",
    "plan",
    "register_storage_adapter",
    "resolve_storage",
]
