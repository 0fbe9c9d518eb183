"""The knee rule's opt-in guards: ``max_noise``, patience with ``min_delta`` and ``smooth``,
and ``keep``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from stageplan.knee import KneeRule
from stageplan.knee._rule import (
    best_observed_epoch,
    last_improvement_epoch,
    local_noise,
    trailing_mean,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "real_curves_subset.json"

# the setting benchmarks/stopping_stages.py recommends for accuracy in percent
GUARD: dict[str, Any] = {
    "max_noise": 1.0, "patience": 20, "min_delta": 0.5, "smooth": 5, "keep": "best"
}

finite_or_nan = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), st.just(math.nan)
)




@settings(max_examples=60, deadline=None)
@given(st.lists(finite_or_nan, min_size=1, max_size=30), st.integers(1, 6))
def test_trailing_mean_matches_brute_force(values: list[float], window: int) -> None:
    z = np.asarray(values)
    got = trailing_mean(z, window)
    for t in range(z.size):
        part = [v for v in values[max(0, t - window + 1) : t + 1] if math.isfinite(v)]
        want = sum(part) / len(part) if part else -math.inf
        assert got[t] == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite_or_nan, min_size=1, max_size=30))
def test_default_guard_is_the_best_observed_epoch(values: list[float]) -> None:
    z = np.asarray(values)
    assert last_improvement_epoch(z) == best_observed_epoch(z)


@pytest.mark.parametrize(
    ("values", "min_delta", "smooth", "expected"),
    [
        ([0, 5, 5.1, 5.2, 5.3, 7, 7.05], 0.0, 1, 6),
        ([0, 5, 5.1, 5.2, 5.3, 7, 7.05], 0.5, 1, 5),
        # creep: each step +0.1 never beats best + 0.25 at once, but the sum does
        ([0, 1, 1.1, 1.2, 1.3, 1.4, 1.5], 0.25, 1, 4),
        # a lone spike at epoch 2 is the raw best; the 3-epoch mean peaks at the end
        ([0, 1, 9, 1, 3, 4, 5, 6], 0.0, 1, 2),
        ([0, 1, 9, 1, 3, 4, 5, 6], 0.0, 3, 7),
        ([math.nan, math.nan], 0.0, 1, 0),
    ],
)
def test_last_improvement_epoch_examples(
    values: list[float], min_delta: float, smooth: int, expected: int
) -> None:
    assert last_improvement_epoch(np.asarray(values, float), min_delta, smooth) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 5, "min_delta": -0.1}, "min_delta must be a finite number >= 0, got -0.1"),
        ({"patience": 5, "min_delta": math.nan}, "min_delta must be a finite number >= 0"),
        ({"patience": 5, "min_delta": "0.1"}, "min_delta must be a number >= 0, got '0.1'"),
        ({"patience": 5, "smooth": 0}, "smooth must be >= 1, got 0"),
        ({"patience": 5, "smooth": 2.5}, "smooth must be an integer, got 2.5"),
        ({"keep": "last"}, "keep must be one of"),
        ({"min_delta": 0.5}, "min_delta and smooth refine the patience guard and need patience"),
        ({"smooth": 3}, "need patience; got patience=None, min_delta=0.0, smooth=3"),
        ({"max_noise": -1.0}, "max_noise must be a finite number >= 0, got -1.0"),
        ({"max_noise": "1"}, "max_noise must be a number >= 0, got '1'"),
    ],
)
def test_bad_guard_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        KneeRule.paper("exp", 10, **kwargs)


def test_guard_options_round_trip_and_default_dict_is_unchanged() -> None:
    assert set(KneeRule.paper().to_dict()) == {
        "family", "delay", "horizon", "min_epochs", "max_epochs", "patience",
    }
    rule = KneeRule.paper(
        "power", 5, patience=20, min_delta=0.25, smooth=5, keep="best", max_noise=2
    )
    data = json.loads(json.dumps(rule.to_dict()))
    assert data["min_delta"] == 0.25 and data["smooth"] == 5 and data["keep"] == "best"
    assert data["max_noise"] == 2.0
    again = KneeRule.from_dict(data)
    assert again == rule and hash(again) == hash(rule)
    assert (again.min_delta, again.smooth, again.keep, again.max_noise) == (0.25, 5, "best", 2)
    assert rule != KneeRule.paper("power", 5, patience=20, min_delta=0.25, smooth=5, keep="best")
    assert "keep='best'" in repr(rule)


def test_keep_best_keeps_the_best_observed_epoch_and_reports_the_fitted_peak() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(80)
    values = 80 - 60 * np.exp(-0.2 * t) - 0.01 * t**2 + rng.normal(0, 0.3, t.size)
    knee = KneeRule.paper("exp", delay=10).replay(values)
    best = KneeRule.paper("exp", delay=10, keep="best").replay(values)
    assert knee.stop and best.stop and knee.epoch == best.epoch
    assert best.peak_epoch == knee.peak_epoch
    assert best.knee_epoch == int(np.argmax(values[: best.epoch + 1]))


def test_local_noise_is_the_epoch_to_epoch_noise_of_the_window() -> None:
    rng = np.random.default_rng(1)
    z = 5.0 + 0.01 * np.arange(4000) + rng.normal(0, 2.0, 4000)
    assert local_noise(z, 4000) == pytest.approx(2.0, rel=0.05)  # the trend hardly counts
    assert local_noise(np.array([1.0, np.nan, 2.0, 4.0]), 10) == pytest.approx(0.5 / math.sqrt(2))
    assert math.isnan(local_noise(np.array([1.0, np.nan, 2.0]), 10))


@pytest.mark.parametrize(("max_noise", "stops"), [(None, True), (5.0, True), (0.5, False)])
def test_max_noise_holds_a_knee_on_a_noisy_curve(max_noise: float | None, stops: bool) -> None:
    rng = np.random.default_rng(2)
    t = np.arange(60)
    values = 80 - 60 * np.exp(-0.2 * t) - 0.01 * t**2 + rng.normal(0, 1.5, t.size)
    d = KneeRule.paper("exp", 10, max_noise=max_noise).decide(values)
    assert d.stop is stops
    if not stops:
        assert d.reason == "continue" and "exceeds max_noise=0.5" in d.message
    # the bound on the epochs still applies
    assert KneeRule.paper("exp", 10, max_epochs=59, max_noise=0.5).decide(values).stop


def _cosine_like(n: int, seed: int) -> np.ndarray:
    """Noisy at a high LR, then climbing to the very end as a cosine LR decays."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lr = 0.5 * (1 + np.cos(np.pi * t / n))
    clean = 55 - 40 * np.exp(-t / 8) + 28 * (1 - lr) ** 2
    return clean + rng.normal(0, 3.0, n) * lr


def test_guard_runs_cosine_like_curves_to_their_end() -> None:
    early = 0
    for seed in range(4):
        values = _cosine_like(200, seed)
        best = values.max()
        paper = KneeRule.paper("exp", delay=10, max_epochs=199).replay(values)
        early += paper.epoch < 120 and best - values[paper.knee_epoch] > 5
        guarded = KneeRule.paper("exp", 10, max_epochs=199, **GUARD).replay(values)
        assert guarded.epoch >= 150 and best - values[guarded.knee_epoch] < 1.0
    # the paper's rule stops far too early on some of them (42% of the real NB201 curves)
    assert early >= 1


def test_guard_still_stops_on_a_plateau_with_creep() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(51)
    values = 90 + 4 * (1 - np.exp(-t / 3)) + 0.004 * t + rng.normal(0, 0.1, t.size)
    values[0] = 89.0
    d = KneeRule.paper("exp", 10, max_epochs=50, **GUARD).replay(values)
    paper = KneeRule.paper("exp", 10, max_epochs=50).replay(values)
    assert d.reason == "knee" and d.epoch <= 40 and d.epoch <= paper.epoch + 5
    assert values.max() - values[d.knee_epoch] <= 0.2


def _fixture(prefix: str) -> dict[str, Any]:
    data = json.loads(FIXTURE.read_text())
    return next(c for c in data if c["id"].startswith(prefix))


def test_guard_on_the_real_nb201_cosine_curve() -> None:
    values = _fixture("nb201_mintal/arch_0")["values"]
    d = KneeRule.paper("exp", 10, max_epochs=len(values) - 1, **GUARD).replay(values)
    assert max(values) - values[d.knee_epoch] <= 1.0
    paper = KneeRule.paper("exp", 10, max_epochs=len(values) - 1).replay(values)
    assert max(values) - values[paper.knee_epoch] > 10


def test_guard_after_a_real_lr_drop_saves_epochs() -> None:
    curve = _fixture("Adabelief-Optimizer/resnet-sgd")
    values = curve["values"][149:]  # epoch 0 = the last epoch before the drop at 151
    d = KneeRule.paper("exp", 10, max_epochs=len(values) - 1, **GUARD).replay(values)
    assert d.reason == "knee" and len(values) - 1 - d.epoch >= 10
    assert max(values) - values[d.knee_epoch] <= 0.3
