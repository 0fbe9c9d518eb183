from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageplan import GraphError, State, TransitionGraph


def _by_sampling(graph: TransitionGraph, sampling: str) -> list[tuple[State, State]]:
    return [(a, b) for a, b in graph.edges if b["sampling"] == sampling]


@pytest.mark.parametrize(("extended", "per_sampling"), [(False, 14), (True, 18)])
def test_paper_graph_edge_counts_3x3(extended: bool, per_sampling: int) -> None:
    g = TransitionGraph.paper(
        clip_lengths=[16, 32, 64], learning_rates=[0.01, 0.001, 0.0001], extended=extended
    )
    assert len(g.states) == 1 + 18
    for sampling in ("consecutive", "uniform"):
        edges = _by_sampling(g, sampling)
        assert len(edges) == per_sampling
        assert sum(a == g.start for a, _ in edges) == 2
    assert len(g.finals) == 2
    assert {(f["clip_length"], f["learning_rate"]) for f in g.finals} == {(64, 0.0001)}


def test_paper_graph_rules_exactly() -> None:
    clips, lrs = [16, 32, 64], [0.01, 0.001, 0.0001]
    g = TransitionGraph.paper(clip_lengths=clips, learning_rates=lrs)
    for a, b in g.edges:
        if a == g.start:
            assert b["learning_rate"] == lrs[0] and b["clip_length"] in clips[:2]
            continue
        assert a["sampling"] == b["sampling"], "no transition between sampling strategies"
        di = clips.index(b["clip_length"]) - clips.index(a["clip_length"])
        dj = lrs.index(b["learning_rate"]) - lrs.index(a["learning_rate"])
        assert (di, dj) in {(1, 0), (0, 1), (-1, 1)}, (a.name, b.name)


@pytest.mark.parametrize("start", [1, 2, 3])
def test_paper_graph_start_clip_lengths(start: int) -> None:
    clips, lrs = [8, 16, 32], [0.05, 0.005]
    g = TransitionGraph.paper(clip_lengths=clips, learning_rates=lrs, start_clip_lengths=start)
    for sampling in ("consecutive", "uniform"):
        firsts = sorted(b["clip_length"] for a, b in _by_sampling(g, sampling) if a == g.start)
        assert firsts == clips[:start]
    others = [(a, b) for a, b in g.edges if a != g.start]
    default = TransitionGraph.paper(clip_lengths=clips, learning_rates=lrs)
    assert others == [(a, b) for a, b in default.edges if a != default.start]
    # None is the paper's 2 (1 when there is only one clip length)
    assert sum(a == default.start for a, _ in default.edges) == 2 * 2
    one = TransitionGraph.paper(clip_lengths=[16], learning_rates=lrs)
    assert sum(a == one.start for a, _ in one.edges) == 2


def test_paper_graph_2x3_ssv2_setting() -> None:
    g = TransitionGraph.paper(clip_lengths=[16, 32], learning_rates=[0.04, 0.004, 0.0004])
    # basic: 3 clip raises + 4 LR drops; extended adds 2; plus 2 start edges
    assert len(_by_sampling(g, "uniform")) == 3 + 4 + 2 + 2
    assert len(g.finals) == 2


@given(n=st.integers(1, 5), m=st.integers(1, 5), extended=st.booleans())
def test_grid_counts_any_n_by_m(n: int, m: int, extended: bool) -> None:
    g = TransitionGraph.grid(
        ("res", list(range(n))), ("lr", [1.0 / (k + 1) for k in range(m)]), extended=extended
    )
    basic = (n - 1) * m + n * (m - 1)
    diag = (n - 1) * (m - 1) if extended else 0
    assert len(g.edges) == basic + diag + min(2, n)
    assert len(g.finals) == 1
    order = [s.name for s in g.topological_order()]
    for a, b in g.edges:
        assert order.index(a.name) < order.index(b.name)


def test_generic_grid_with_other_axes_and_groups() -> None:
    g = TransitionGraph.grid(
        ("resolution", [112, 160, 224]),
        ("lr", [0.1, 0.01]),
        groups={"augment": ["weak", "strong"]},
    )
    assert g.axes == ("augment", "resolution", "lr")
    assert len(g.finals) == 2
    assert g.successors("start")[0].params == {"augment": "weak", "resolution": 112, "lr": 0.1}


def test_accessors() -> None:
    g = TransitionGraph.paper(
        clip_lengths=[16, 32], learning_rates=[0.1, 0.01], samplings=("consecutive",)
    )
    s = g.state("sampling=consecutive,clip_length=32,learning_rate=0.01")
    assert s in g.finals
    assert {p.name for p in g.predecessors(s)} == {
        "sampling=consecutive,clip_length=16,learning_rate=0.01",
        "sampling=consecutive,clip_length=32,learning_rate=0.1",
    }
    assert g.successors(s) == ()
    assert g.topological_order()[0] == g.start
    assert TransitionGraph.from_dict(g.to_dict()) == g
    assert g.fingerprint() == TransitionGraph.from_dict(g.to_dict()).fingerprint()


def _states(*names: str) -> list[State]:
    return [State("start")] + [State(n, {"lr": i}) for i, n in enumerate(names)]


@pytest.mark.parametrize(
    ("states", "edges", "kwargs", "match"),
    [
        (_states("a", "a"), [("start", "a")], {}, "duplicate state names: 'a'"),
        (_states("a"), [("start", "b")], {}, "unknown state 'b'"),
        (
            _states("a", "b"),
            [("start", "a"), ("a", "b"), ("b", "a")],
            {},
            "cycle: 'a' -> 'b' -> 'a'",
        ),
        (_states("a", "b"), [("start", "a")], {}, "unreachable from the start state 'start': 'b'"),
        (_states("a"), [("start", "a"), ("a", "a")], {}, "self-loop on state 'a'"),
        (_states("a"), [("start", "a"), ("start", "a")], {}, "duplicate edge 'start' -> 'a'"),
        (_states("a"), [("start", "a"), ("a", "start")], {}, "enters the start state"),
        (_states("a", "b"), [("start", "a"), ("a", "b"), ("b", "a")], {"finals": []}, "cycle"),
        (
            [State("start"), State("a", {"lr": 1}), State("b", {"clip": 2})],
            [("start", "a"), ("a", "b")],
            {},
            "state 'b' lacks hyper-parameter axes \\['lr'\\]",
        ),
        (_states("a"), [("start", "a")], {"finals": ["start"]}, "cannot be a final state"),
        (_states("a"), [("start", "a")], {"start": "nope"}, "start state: unknown state 'nope'"),
    ],
)
def test_validation_errors_name_the_culprits(states, edges, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    kwargs = {"start": "start", **kwargs}
    with pytest.raises(GraphError, match=match):
        TransitionGraph(states, edges, **kwargs)


def test_no_final_state() -> None:
    # every non-start state has a successor only if there is a cycle, so use finals=[] explicitly
    with pytest.raises(GraphError, match="no final state"):
        TransitionGraph(_states("a"), [("start", "a")], start="start", finals=[])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip_lengths": [32, 16], "learning_rates": [0.1]}, "strictly increasing"),
        ({"clip_lengths": [16], "learning_rates": [0.01, 0.1]}, "strictly decreasing"),
        ({"clip_lengths": [0, 16], "learning_rates": [0.1]}, "positive integers"),
        ({"clip_lengths": [16], "learning_rates": [-1.0]}, "positive numbers"),
        ({"clip_lengths": [16], "learning_rates": [0.1], "samplings": ()}, "at least one"),
        ({"clip_lengths": [16, 32], "learning_rates": [0.1], "start_clip_lengths": 3},
         "start_clip_lengths must be an integer from 1 to 2 .*got 3"),
        ({"clip_lengths": [16, 32], "learning_rates": [0.1], "start_clip_lengths": 0},
         "start_clip_lengths must be an integer from 1 to 2 .*got 0"),
    ],
)
def test_paper_graph_bad_arguments(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GraphError, match=match):
        TransitionGraph.paper(**kwargs)


def test_topological_order_is_deterministic_and_valid() -> None:
    g = TransitionGraph.paper(clip_lengths=[16, 32, 64], learning_rates=[0.01, 0.001, 0.0001])
    order = g.topological_order()
    pos = {s: i for i, s in enumerate(order)}
    assert all(pos[a] < pos[b] for a, b in g.edges)
    again = TransitionGraph.from_dict(g.to_dict()).topological_order()
    assert [s.name for s in again] == [s.name for s in order]
    assert list(itertools.chain(order)) == list(order)
