"""Dynamic programming over a transition graph, from finished records alone (Qiu et al., 2021).

Each state keeps the checkpoint of its best incoming transition; a state is *settled* once
every incoming transition has finished; the plan is the best final state's path, backtracked
through each state's best predecessor. Everything here is a pure function of the graph and the
records, so every worker on every machine derives the same frontier and the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stageplan._direction import Direction
from stageplan._graph import TransitionGraph
from stageplan._plan import Plan, Stage
from stageplan._records import EdgeKey, TransitionRecord, edge_label
from stageplan._state import State

__all__ = [
    "Frontier",
    "PlanningError",
    "best_incoming",
    "build_plan",
    "frontier",
    "losing_checkpoints",
]


class PlanningError(RuntimeError):
    """Planning could not produce a plan (e.g. every path to a final state failed)."""


def best_incoming(
    records: Sequence[TransitionRecord],
    edge_order: Mapping[EdgeKey, int],
    direction: Direction,
    path_epochs: Mapping[str, int] | None = None,
) -> TransitionRecord | None:
    """The best complete record among a state's incoming transitions.

    The best value in ``direction`` wins. Tie rule, among exactly equal values: the cheaper path
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
        key = (-direction.sign * rec.value, cost, edge_order[rec.edge])
        if best_key is None or key < best_key:
            best, best_key = rec, key
    return best


@dataclass
class Frontier:
    """Where planning stands, derived from the finished records alone.

    Attributes:
        best: Best complete incoming record of every state whose incoming transitions are
            all finished (``None`` for a dead state: all of them failed).
        ready: Transitions that may start now, in graph order.
        dead: Transitions that can never run (their source is dead).
        done: True when every transition is finished or dead.
        path_epochs: Epochs from the start through each settled live state's best path (the
            start state: 0); ties between equal values go to the smaller.
    """

    best: dict[str, TransitionRecord | None] = field(default_factory=dict)
    ready: list[EdgeKey] = field(default_factory=list)
    dead: list[EdgeKey] = field(default_factory=list)
    done: bool = False
    path_epochs: dict[str, int] = field(default_factory=dict)


def frontier(
    graph: TransitionGraph,
    records: Mapping[EdgeKey, TransitionRecord],
    *,
    mode: str | Direction = "max",
) -> Frontier:
    """Compute the DP frontier: which states are settled, which transitions can run.

    A transition out of state S is ready once every incoming transition of S has finished
    (S's checkpoint is the best of them). A state whose incoming transitions all failed (or
    can never run) is dead, and so are the transitions out of it. The result depends on the
    set of finished records only, never on the order they finished in.
    """
    direction = Direction.of(mode)
    order = {(a.name, b.name): i for i, (a, b) in enumerate(graph.edges)}
    out = Frontier()
    alive: dict[str, bool] = {graph.start.name: True}  # settled states only
    path_epochs = out.path_epochs
    path_epochs[graph.start.name] = 0
    for state in graph.topological_order():
        if state == graph.start:
            continue
        incoming = [(p.name, state.name) for p in graph.predecessors(state)]
        finished = [records[e] for e in incoming if e in records]
        never = [e for e in incoming if e not in records and alive.get(e[0]) is False]
        if len(finished) + len(never) == len(incoming):
            best = best_incoming(finished, order, direction, path_epochs)
            out.best[state.name] = best
            if best is not None:  # ties between equal values went to the cheaper path
                path_epochs[state.name] = path_epochs.get(best.source, 0) + int(
                    best.checkpoint_epoch or 0
                )
            alive[state.name] = best is not None
    for a, b in graph.edges:
        key = (a.name, b.name)
        if key in records or a.name not in alive:
            continue
        (out.ready if alive[a.name] else out.dead).append(key)
    out.done = all(
        (a.name, b.name) in records or alive.get(a.name) is False for a, b in graph.edges
    )
    return out


def build_plan(
    graph: TransitionGraph,
    records: Mapping[EdgeKey, TransitionRecord],
    *,
    mode: str | Direction = "max",
    rule: dict[str, Any] | None = None,
    storage: str | None = None,
) -> Plan:
    """Backtrack the best path from the best final state through each state's best predecessor.

    Ties between final states of exactly equal value go to the cheaper path (fewest epochs
    from the start), then to the one listed first in ``graph.finals``.
    """
    direction = Direction.of(mode)
    fr = frontier(graph, records, mode=direction)
    finals = [(f, fr.best.get(f.name)) for f in graph.finals]
    candidates = [(f, r) for f, r in finals if r is not None and r.value is not None]
    ordered = [records[(a.name, b.name)] for a, b in graph.edges if (a.name, b.name) in records]
    if not candidates:
        failed = [r for r in ordered if r.status == "failed"]
        detail = "; ".join(
            f"{edge_label(r.edge)}: {(r.error or '').strip().splitlines()[-1:]}"
            for r in failed[:5]
        )
        raise PlanningError(
            "no final state was reached, so there is no plan"
            + (f" ({len(failed)} transitions failed: {detail})" if failed else "")
        )

    best_final, rec = max(
        candidates,
        key=lambda fr_: (direction.sign * (fr_[1].value or 0.0),
                         -fr.path_epochs[fr_[0].name], -graph.finals.index(fr_[0])),
    )
    assert rec is not None
    stages: list[Stage] = []
    current: TransitionRecord | None = rec
    while current is not None:
        target: State = graph.state(current.target)
        stages.append(
            Stage(
                state=target.name,
                params=target.params,
                epochs=int(current.checkpoint_epoch or 0),
                value=current.value,
                source=current.source,
            )
        )
        if current.source == graph.start.name:
            break
        current = fr.best.get(current.source)
    stages.reverse()
    return Plan(
        stages=tuple(stages),
        final_value=rec.value,
        final_checkpoint=rec.checkpoint,
        mode=direction.mode,
        graph=graph.to_dict(),
        transitions=ordered,
        rule=rule,
        storage=storage,
    )




def losing_checkpoints(
    graph: TransitionGraph, records: Mapping[EdgeKey, TransitionRecord], fr: Frontier
) -> set[str]:
    """Checkpoints no plan can use any more: those of settled states' losing transitions.

    Once a state is settled, only its best incoming checkpoint can start a later transition or
    end the plan; every other incoming transition's checkpoint is a loser (unless it is also
    some state's best, which a shared reference can be).
    """
    keep = {r.checkpoint for r in fr.best.values() if r is not None and r.checkpoint}
    losers: set[str] = set()
    for state, best in fr.best.items():
        for pred in graph.predecessors(state):
            rec = records.get((pred.name, state))
            if rec is None or rec is best or not rec.checkpoint or rec.checkpoint in keep:
                continue
            losers.add(rec.checkpoint)
    return losers
