"""Transition graphs: validated DAGs of training states with one start and one or more finals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stageplan._state import ParamValue, State

__all__ = ["GraphError", "TransitionGraph", "Edge"]

Edge = tuple[State, State]
StateRef = State | str


class GraphError(ValueError):
    """A transition graph is not a valid planning DAG; the message names the culprits."""


def _fmt_states(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _find_cycle(names: Sequence[str], succ: Mapping[str, Sequence[str]]) -> list[str]:
    """Return one cycle (as a closed list of names) among ``names``; empty if none."""
    color = {n: 0 for n in names}
    stack_path: list[str] = []

    def visit(node: str) -> list[str]:
        color[node] = 1
        stack_path.append(node)
        for nxt in succ[node]:
            if color[nxt] == 1:
                return stack_path[stack_path.index(nxt) :] + [nxt]
            if color[nxt] == 0:
                found = visit(nxt)
                if found:
                    return found
        stack_path.pop()
        color[node] = 2
        return []

    for n in names:
        if color[n] == 0:
            found = visit(n)
            if found:
                return found
    return []


class TransitionGraph:
    """A DAG of training states: the transitions a planner may explore.

    Args:
        states: Every state, the start state included. Names must be unique.
        edges: Allowed transitions as ``(source, target)`` pairs of states or state names.
        start: The start state (initial or pretrained weights) or its name. It may carry no
            hyper-parameters; every other state must carry exactly the graph's axes.
        finals: Final states (or names). By default every state without successors.
        axes: Hyper-parameter axes every non-start state must define. By default the axes of
            the first non-start state.

    Raises:
        GraphError: On duplicate names, edges to unknown states, self-loops, duplicate edges,
            edges into the start state, cycles, states unreachable from the start, missing or
            extra axes, or no final state. The message names the offending states or edges.

    Example:
        >>> a, b = State("a", {"lr": 0.1}), State("b", {"lr": 0.01})
        >>> edges = [("start", "a"), ("a", "b")]
        >>> g = TransitionGraph([State("start"), a, b], edges, start="start")
        >>> [s.name for s in g.topological_order()], [s.name for s in g.finals]
        (['start', 'a', 'b'], ['b'])
    """

    def __init__(
        self,
        states: Sequence[State],
        edges: Iterable[tuple[StateRef, StateRef]],
        *,
        start: StateRef,
        finals: Iterable[StateRef] | None = None,
        axes: Sequence[str] | None = None,
    ) -> None:
        by_name: dict[str, State] = {}
        duplicates: list[str] = []
        for s in states:
            if not isinstance(s, State):
                raise GraphError(f"states must be State objects, got {type(s).__name__} {s!r}")
            if s.name in by_name:
                duplicates.append(s.name)
            by_name[s.name] = s
        if duplicates:
            raise GraphError(f"duplicate state names: {_fmt_states(duplicates)}")
        if not by_name:
            raise GraphError("a transition graph needs at least a start state and one other state")
        self._by_name = by_name
        self._order_index = {name: i for i, name in enumerate(by_name)}

        self._start = self._resolve(start, "start state")
        edge_list: list[Edge] = []
        seen: set[tuple[str, str]] = set()
        for pair in edges:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise GraphError(f"an edge must be a (source, target) pair, got {pair!r}")
            src = self._resolve(pair[0], f"source of edge {self._edge_label(pair)}")
            dst = self._resolve(pair[1], f"target of edge {self._edge_label(pair)}")
            key = (src.name, dst.name)
            if src == dst:
                raise GraphError(
                    f"self-loop on state {src.name!r}: a transition must change state"
                )
            if key in seen:
                raise GraphError(f"duplicate edge {src.name!r} -> {dst.name!r}")
            if dst == self._start:
                raise GraphError(
                    f"edge {src.name!r} -> {dst.name!r} enters the start state; the start state "
                    "can only have outgoing transitions"
                )
            seen.add(key)
            edge_list.append((src, dst))
        self._edges = tuple(edge_list)
        self._succ: dict[str, list[str]] = {n: [] for n in by_name}
        self._pred: dict[str, list[str]] = {n: [] for n in by_name}
        for src, dst in edge_list:
            self._succ[src.name].append(dst.name)
            self._pred[dst.name].append(src.name)

        self._axes = self._check_axes(axes)
        self._topo = self._toposort()
        self._check_reachable()
        if finals is None:
            final_states = [
                by_name[n] for n in by_name if not self._succ[n] and n != self._start.name
            ]
        else:
            final_states = [self._resolve(f, "final state") for f in finals]
            if self._start in final_states:
                raise GraphError(f"the start state {self._start.name!r} cannot be a final state")
        if not final_states:
            raise GraphError(
                "the graph has no final state: give finals= or leave a state without successors"
            )
        self._finals = tuple(final_states)

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _edge_label(pair: Any) -> str:
        try:
            a, b = pair
        except (TypeError, ValueError):
            return repr(pair)
        return f"{getattr(a, 'name', a)!r} -> {getattr(b, 'name', b)!r}"

    def _resolve(self, ref: object, what: str) -> State:
        name = ref.name if isinstance(ref, State) else ref
        if not isinstance(name, str):
            raise GraphError(f"{what}: expected a State or a state name, got {ref!r}")
        state = self._by_name.get(name)
        if state is None:
            raise GraphError(f"{what}: unknown state {name!r}")
        if isinstance(ref, State) and ref != state:
            raise GraphError(f"{what}: state {name!r} differs from the graph's state of that name")
        return state

    def _check_axes(self, axes: Sequence[str] | None) -> tuple[str, ...]:
        others = [s for s in self._by_name.values() if s != self._start]
        if axes is None:
            axes = others[0].axes if others else ()
        wanted = tuple(axes)
        for s in others:
            missing = [a for a in wanted if a not in s.axes]
            extra = [a for a in s.axes if a not in wanted]
            if missing:
                raise GraphError(
                    f"state {s.name!r} lacks hyper-parameter axes {missing}; every state but the "
                    f"start must define {list(wanted)}"
                )
            if extra:
                raise GraphError(
                    f"state {s.name!r} has axes {extra} that the graph does not declare "
                    f"({list(wanted)})"
                )
        return wanted

    def _toposort(self) -> tuple[State, ...]:
        indeg = {n: len(p) for n, p in self._pred.items()}
        ready = [n for n in self._by_name if indeg[n] == 0]
        order: list[str] = []
        while ready:
            ready.sort(key=self._order_index.__getitem__)
            node = ready.pop(0)
            order.append(node)
            for nxt in self._succ[node]:
                indeg[nxt] -= 1
                if indeg[nxt] == 0:
                    ready.append(nxt)
        if len(order) != len(self._by_name):
            left = [n for n in self._by_name if n not in set(order)]
            cycle = _find_cycle(left, {n: [m for m in self._succ[n] if m in left] for n in left})
            raise GraphError(
                "the transitions form a cycle: " + " -> ".join(repr(c) for c in cycle)
            )
        return tuple(self._by_name[n] for n in order)

    def _check_reachable(self) -> None:
        seen = {self._start.name}
        todo = [self._start.name]
        while todo:
            for nxt in self._succ[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unreachable = [n for n in self._by_name if n not in seen]
        if unreachable:
            raise GraphError(
                f"states unreachable from the start state {self._start.name!r}: "
                f"{_fmt_states(unreachable)}"
            )

    # -- public accessors -----------------------------------------------------------------
    @property
    def states(self) -> tuple[State, ...]:
        return tuple(self._by_name.values())

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self._edges

    @property
    def start(self) -> State:
        return self._start

    @property
    def finals(self) -> tuple[State, ...]:
        return self._finals

    @property
    def axes(self) -> tuple[str, ...]:
        return self._axes

    def state(self, name: str) -> State:
        """The state called ``name``."""
        return self._resolve(name, "state")

    def predecessors(self, state: StateRef) -> tuple[State, ...]:
        s = self._resolve(state, "predecessors()")
        return tuple(self._by_name[n] for n in self._pred[s.name])

    def successors(self, state: StateRef) -> tuple[State, ...]:
        s = self._resolve(state, "successors()")
        return tuple(self._by_name[n] for n in self._succ[s.name])

    def topological_order(self) -> tuple[State, ...]:
        """States in a deterministic topological order (ties broken by declaration order)."""
        return self._topo

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return (
            f"TransitionGraph({len(self._by_name)} states, {len(self._edges)} edges, "
            f"start={self._start.name!r}, finals={[f.name for f in self._finals]})"
        )

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "states": [s.to_dict() for s in self._by_name.values()],
            "edges": [[a.name, b.name] for a, b in self._edges],
            "start": self._start.name,
            "finals": [f.name for f in self._finals],
            "axes": list(self._axes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransitionGraph:
        """Build a graph from :meth:`to_dict` output or a hand-written JSON object.

        ``finals`` and ``axes`` are optional; ``states`` entries are ``{"name", "params"}``
        objects and ``edges`` are ``[source, target]`` name pairs.
        """
        if not isinstance(data, Mapping):
            raise GraphError(f"a graph must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("states", "edges", "start") if k not in data]
        if missing:
            raise GraphError(f"a graph object needs the keys {missing} (has {sorted(data)})")
        try:
            states = [State.from_dict(s) for s in data["states"]]
        except (TypeError, ValueError) as exc:
            raise GraphError(f"bad state in graph: {exc}") from exc
        return cls(
            states,
            [tuple(e) if isinstance(e, list) else e for e in data["edges"]],
            start=data["start"],
            finals=data.get("finals"),
            axes=data.get("axes"),
        )

    def fingerprint(self) -> str:
        """A stable hash of the graph's structure and hyper-parameters."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransitionGraph) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    # -- builders -------------------------------------------------------------------------
    @classmethod
    def grid(
        cls,
        grow: tuple[str, Sequence[ParamValue]],
        decay: tuple[str, Sequence[ParamValue]],
        *,
        groups: Mapping[str, Sequence[ParamValue]] | None = None,
        extended: bool = True,
        start_name: str = "start",
        start_params: Mapping[str, Any] | None = None,
        n_start_targets: int = 2,
    ) -> TransitionGraph:
        """The paper's graph rules on any two ordered axes, per group of fixed values.

        ``grow`` is an axis whose values a schedule walks forward (clip length, image
        resolution: listed in the order training should move through them); ``decay`` an axis
        walked forward likewise (learning rates from high to low). Per group (one combination
        of ``groups`` values, e.g. each sampling strategy) the states are the grid
        ``grow x decay``; the rules of Qiu et al. (2021) apply:

        1. no transition between groups; each group's final is (last grow, last decay);
        2. the start connects to the first ``n_start_targets`` grow values at the first decay
           value;
        3. basic moves: one step along ``grow`` (same decay value) or one step along ``decay``
           (same grow value);
        4. ``extended=True`` also allows one step back along ``grow`` together with one step
           along ``decay``.

        State names are ``axis=value`` pairs joined with commas.

        Example:
            >>> g = TransitionGraph.grid(("resolution", [64, 128]), ("lr", [0.1, 0.01]))
            >>> len(g.edges), [f.name for f in g.finals]
            (7, ['resolution=128,lr=0.01'])
        """
        g_axis, g_values = grow
        d_axis, d_values = decay
        g_list: list[ParamValue] = list(g_values)
        d_list: list[ParamValue] = list(d_values)
        for axis, values in ((g_axis, g_list), (d_axis, d_list)):
            if not values:
                raise GraphError(f"axis {axis!r} needs at least one value")
            if len(set(map(repr, values))) != len(values):
                raise GraphError(f"axis {axis!r} has repeated values: {values}")
        if g_axis == d_axis:
            raise GraphError(f"the two axes must differ, both are {g_axis!r}")
        if n_start_targets < 1:
            raise GraphError(f"n_start_targets must be >= 1, got {n_start_targets}")
        group_axes = dict(groups or {})
        for axis, group_values in group_axes.items():
            if axis in (g_axis, d_axis):
                raise GraphError(f"group axis {axis!r} repeats a grid axis")
            if not group_values:
                raise GraphError(f"group axis {axis!r} needs at least one value")
        combos: list[dict[str, ParamValue]] = [{}]
        for axis, group_values in group_axes.items():
            combos = [{**c, axis: v} for c in combos for v in group_values]

        start = State(start_name, start_params or {})
        states: list[State] = [start]
        edges: list[tuple[State, State]] = []
        for combo in combos:
            grid: dict[tuple[int, int], State] = {}
            for i, gv in enumerate(g_list):
                for j, dv in enumerate(d_list):
                    params = {**combo, g_axis: gv, d_axis: dv}
                    name = ",".join(f"{k}={v}" for k, v in params.items())
                    grid[i, j] = State(name, params)
                    states.append(grid[i, j])
            for i in range(min(n_start_targets, len(g_list))):
                edges.append((start, grid[i, 0]))
            for (i, j), s in grid.items():
                if (i + 1, j) in grid:
                    edges.append((s, grid[i + 1, j]))
                if (i, j + 1) in grid:
                    edges.append((s, grid[i, j + 1]))
                if extended and (i - 1, j + 1) in grid:
                    edges.append((s, grid[i - 1, j + 1]))
        finals = [
            s for s in states if s != start and s[g_axis] == g_list[-1] and s[d_axis] == d_list[-1]
        ]
        axes = [*group_axes, g_axis, d_axis]
        return cls(states, edges, start=start, finals=finals, axes=axes)

    @classmethod
    def paper(
        cls,
        *,
        clip_lengths: Sequence[int],
        learning_rates: Sequence[float],
        samplings: Sequence[str] = ("consecutive", "uniform"),
        extended: bool = True,
        start_clip_lengths: int | None = None,
    ) -> TransitionGraph:
        """The transition graph of Qiu et al. (2021): clip length x learning rate x sampling.

        Args:
            clip_lengths: Increasing clip lengths, e.g. ``(16, 32, 64)``.
            learning_rates: Decreasing learning rates, e.g. ``(0.01, 0.001, 0.0001)``.
            samplings: Sampling strategies; each gets its own sub-graph and final state.
            extended: Also allow "one clip length shorter and one learning rate lower".
            start_clip_lengths: How many of the shortest clip lengths training may start at
                (at the first learning rate). ``None``: the paper's 2 (1 with one clip
                length), which never starts at the longest of three or more;
                ``len(clip_lengths)`` lets the plan start anywhere, for workloads where short
                clips learn slowly (one more transition per sampling for each extra length).

        Example:
            >>> g = TransitionGraph.paper(clip_lengths=[16, 32, 64],
            ...                           learning_rates=[0.01, 0.001, 0.0001])
            >>> len(g.states), len(g.edges), len(g.finals)
            (19, 36, 2)
        """
        clips = list(clip_lengths)
        lrs = list(learning_rates)
        if any(not isinstance(c, int) or isinstance(c, bool) or c <= 0 for c in clips):
            raise GraphError(f"clip_lengths must be positive integers, got {clips}")
        if any(b <= a for a, b in zip(clips, clips[1:])):
            raise GraphError(f"clip_lengths must be strictly increasing, got {clips}")
        if any(not isinstance(r, (int, float)) or isinstance(r, bool) or r <= 0 for r in lrs):
            raise GraphError(f"learning_rates must be positive numbers, got {lrs}")
        if any(b >= a for a, b in zip(lrs, lrs[1:])):
            raise GraphError(f"learning_rates must be strictly decreasing, got {lrs}")
        if not samplings:
            raise GraphError("samplings must name at least one sampling strategy")
        if start_clip_lengths is None:
            start_clip_lengths = min(2, len(clips))
        if (isinstance(start_clip_lengths, bool) or not isinstance(start_clip_lengths, int)
                or not 1 <= start_clip_lengths <= len(clips)):
            raise GraphError(
                f"start_clip_lengths must be an integer from 1 to {len(clips)} (the number of "
                f"clip lengths), got {start_clip_lengths!r}"
            )
        return cls.grid(
            ("clip_length", clips),
            ("learning_rate", lrs),
            groups={"sampling": list(samplings)},
            extended=extended,
            n_start_targets=start_clip_lengths,
        )
