from __future__ import annotations

import json

import pytest

from stageplan import State


def test_state_is_hashable_ordered_and_json_round_trips() -> None:
    s = State("a", {"clip_length": 16, "learning_rate": 0.01, "sampling": "uniform"})
    assert s.axes == ("clip_length", "learning_rate", "sampling")
    assert {s: 1}[State("a", {"clip_length": 16, "learning_rate": 0.01, "sampling": "uniform"})]
    assert State.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s != State("a", {"clip_length": 32, "learning_rate": 0.01, "sampling": "uniform"})
    assert s["clip_length"] == 16
    params = s.params
    params["clip_length"] = 99
    assert s["clip_length"] == 16, "params is a copy"


@pytest.mark.parametrize(
    ("name", "params", "exc", "match"),
    [
        ("", {}, ValueError, "non-empty string"),
        ("a", {"lr": [1, 2]}, TypeError, "hyper-parameter 'lr' must be a str, int"),
        ("a", {"lr": float("nan")}, ValueError, "'lr' must be finite"),
        ("a", {"": 1}, ValueError, "axis names must be non-empty"),
    ],
)
def test_bad_states(name, params, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        State(name, params)


def test_missing_axis_lookup_names_state() -> None:
    with pytest.raises(KeyError, match="state 'a' has no hyper-parameter 'clip'"):
        State("a", {"lr": 1})["clip"]
