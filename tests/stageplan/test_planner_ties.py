"""The DP's tie rule: among exactly equal values the cheaper path (fewest epochs) wins.

Checked against a brute force over every path of small random DAGs whose transition values
are drawn from two levels, so ties are common.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stageplan import State, TransitionGraph, TransitionRecord, build_plan, frontier

Case = tuple[TransitionGraph, dict[tuple[str, str], TransitionRecord]]


@st.composite
def tied_dags(draw: st.DrawFn) -> Case:
    n = draw(st.integers(2, 7))
    states = [State("start")] + [State(f"s{i}", {"x": i}) for i in range(n)]
    edges: list[tuple[str, str]] = []
    for i in range(n):
        preds = draw(st.sets(st.integers(-1, i - 1), min_size=1, max_size=3))
        edges += [("start" if p < 0 else f"s{p}", f"s{i}") for p in sorted(preds)]
    graph = TransitionGraph(states, edges, start="start")
    records = {}
    for a, b in edges:
        value = draw(st.sampled_from([0.5, 1.0]))
        epochs = draw(st.integers(0, 4))
        records[(a, b)] = TransitionRecord(
            a, b, "complete", values=[value] * (epochs + 1), knee_epoch=epochs,
            checkpoint_epoch=epochs, value=value,
        )
    return graph, records


def _paths(graph: TransitionGraph, state: str) -> list[list[tuple[str, str]]]:
    if state == graph.start.name:
        return [[]]
    out = []
    for p in graph.predecessors(state):
        out += [path + [(p.name, state)] for path in _paths(graph, p.name)]
    return out


def _brute(graph: TransitionGraph, records: dict[tuple[str, str], TransitionRecord],
           state: str) -> tuple[float, int]:
    """Best value into ``state`` and the fewest epochs of a path that is value-optimal at
    every state it passes (the DP's choice at each state is by value first)."""
    best_in = {
        s.name: max(records[(p.name, s.name)].value or 0.0 for p in graph.predecessors(s))
        for s in graph.states if s != graph.start
    }
    costs = [
        sum(int(records[e].checkpoint_epoch or 0) for e in path)
        for path in _paths(graph, state)
        if all(records[e].value == best_in[e[1]] for e in path)
    ]
    return best_in[state], min(costs)


def _dp_epochs(fr, graph: TransitionGraph, state: str) -> int:  # type: ignore[no-untyped-def]
    total, rec = 0, fr.best[state]
    while rec is not None:
        total += int(rec.checkpoint_epoch or 0)
        rec = None if rec.source == graph.start.name else fr.best[rec.source]
    return total


@settings(max_examples=200, deadline=None)
@given(case=tied_dags())
def test_ties_go_to_the_cheaper_path_at_every_state_and_final(case: Case) -> None:
    graph, records = case
    fr = frontier(graph, records)
    assert fr.done
    for s in graph.states:
        if s == graph.start:
            continue
        value, epochs = _brute(graph, records, s.name)
        assert fr.best[s.name] is not None and fr.best[s.name].value == value
        assert _dp_epochs(fr, graph, s.name) == epochs
    plan = build_plan(graph, records)
    finals = [_brute(graph, records, f.name) for f in graph.finals]
    best_value = max(v for v, _ in finals)
    assert plan.final_value == best_value
    assert plan.total_epochs == min(e for v, e in finals if v == best_value)


def test_equal_values_prefer_fewer_epochs_over_graph_order() -> None:
    states = [State("start"), State("a", {"x": 1}), State("b", {"x": 2}), State("c", {"x": 3})]
    graph = TransitionGraph(states, [("start", "a"), ("start", "b"), ("a", "c"), ("b", "c")],
                            start="start")

    def rec(a: str, b: str, value: float, epochs: int) -> TransitionRecord:
        return TransitionRecord(a, b, "complete", values=[value] * (epochs + 1),
                                knee_epoch=epochs, checkpoint_epoch=epochs, value=value)

    records = {("start", "a"): rec("start", "a", 0.9, 5),
               ("start", "b"): rec("start", "b", 0.9, 2),
               ("a", "c"): rec("a", "c", 1.0, 1), ("b", "c"): rec("b", "c", 1.0, 3)}
    # Through a: 5 + 1 = 6 epochs; through b: 2 + 3 = 5 epochs, though a is listed first.
    plan = build_plan(graph, records)
    assert [s.state for s in plan.stages] == ["b", "c"]
    assert plan.total_epochs == 5
    # A strictly higher value still beats a cheaper path.
    records[("a", "c")] = rec("a", "c", 1.0 + 1e-9, 1)
    records[("b", "c")] = rec("b", "c", 1.0, 0)
    assert [s.state for s in build_plan(graph, records).stages] == ["a", "c"]
