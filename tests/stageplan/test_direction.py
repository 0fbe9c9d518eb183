"""Direction: the one place that knows which way a metric improves."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stageplan._direction import Direction

values = st.lists(
    st.one_of(st.floats(-5, 5), st.sampled_from([math.nan, math.inf, -math.inf])), max_size=30
)


@given(values=values, mode=st.sampled_from(["max", "min"]))
def test_best_epoch_is_the_earliest_best_finite_value(values: list[float], mode: str) -> None:
    finite = [(v, e) for e, v in enumerate(values) if math.isfinite(v)]
    d = Direction.of(mode)
    if not finite:
        assert d.best_epoch(values) is None
        return
    best = max(v for v, _ in finite) if mode == "max" else min(v for v, _ in finite)
    assert d.best_epoch(values) == min(e for v, e in finite if v == best)


def test_sign_and_better() -> None:
    assert Direction.of("max").sign == 1.0 and Direction.of("min").sign == -1.0
    assert Direction.of("max").better(2, 1) and not Direction.of("max").better(1, 1)
    assert Direction.of(Direction("min")) == Direction("min")


@pytest.mark.parametrize("bad", ["maximize", "", None, 1])
def test_a_bad_mode_names_itself(bad: object) -> None:
    with pytest.raises(ValueError, match=f"mode must be 'max' or 'min', got {bad!r}"):
        Direction.of(bad)  # type: ignore[arg-type]
