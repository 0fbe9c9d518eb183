"""The evidence rule told the learning-rate schedule (``KneeRule(schedule="cosine")``)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from stageplan.knee import KneeRule
from stageplan.knee._rule import ANNEALED, anneal_origin


def _cosine_curve(budget: int, seed: int) -> np.ndarray:
    """A curve trained under a cosine schedule: a fast rise to a flat, noisy plateau while the
    LR is high, then a climb of ~28 points as the LR anneals (like the NAS-Bench-201 curves)."""
    t = np.arange(budget + 1, dtype=np.float64)
    lr = 0.5 * (1.0 + np.cos(np.pi * t / budget))
    true = (62.0 + 28.0 * (1.0 - lr) ** 2) * (1.0 - np.exp(-(t + 1.0) / 4.0))
    noise = np.random.default_rng(seed).normal(0.0, 0.1 + 1.5 * lr)
    return true + noise  # type: ignore[no-any-return]




@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000))
def test_anneal_origin_is_the_first_epoch_at_or_below_the_annealed_lr(budget: int) -> None:
    def lr(t: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * t / budget))

    brute = next(t for t in range(budget + 1) if lr(t) <= ANNEALED + 1e-12)
    assert anneal_origin(budget) == brute


def test_schedule_is_validated_eagerly() -> None:
    with pytest.raises(ValueError, match="'linear'"):
        KneeRule(max_epochs=50, schedule="linear")
    with pytest.raises(ValueError, match="max_epochs=None"):
        KneeRule(schedule="cosine")
    with pytest.raises(ValueError, match="method='paper'"):
        KneeRule(max_epochs=50, method="paper", schedule="cosine")
    with pytest.raises(ValueError, match="method='paper'"):
        KneeRule.paper(max_epochs=50, schedule="cosine")


def test_schedule_round_trips_and_the_default_writes_nothing() -> None:
    rule = KneeRule(max_epochs=200, schedule="cosine")
    assert rule.schedule == "cosine" and rule.evidence_origin() == 160
    assert KneeRule.from_dict(rule.to_dict()) == rule
    assert "schedule" not in KneeRule(max_epochs=200).to_dict()
    assert KneeRule(max_epochs=200).evidence_origin() == 0
    assert rule != KneeRule(max_epochs=200)


def test_no_stop_on_the_evidence_while_the_cosine_lr_is_high() -> None:
    budget = 150
    origin = anneal_origin(budget)
    hinted = KneeRule(max_epochs=budget, schedule="cosine")
    early_stops = 0
    for seed in range(8):
        values = _cosine_curve(budget, seed)
        d = hinted.replay(values)
        assert d.epoch >= origin + hinted.delay
        assert d.knee_epoch is not None
        assert float(values.max() - values[d.knee_epoch]) < 0.5
        for t in range(origin + hinted.delay):
            warm = hinted.decide(values[: t + 1])
            assert warm.reason == "warmup" and not warm.stop
        # without the hint the same rule can stop on the flat, noisy high-LR phase
        blind = KneeRule(max_epochs=budget).replay(values)
        early_stops += blind.epoch < origin
    assert early_stops >= 1


@settings(max_examples=25, deadline=None)
@given(
    st.integers(40, 120),
    st.integers(0, 10_000),
    st.floats(0.05, 1.0),
)
def test_cosine_decides_like_the_constant_rule_on_the_annealed_window(
    budget: int, seed: int, noise: float
) -> None:
    """Brute force: the hinted rule is the plain rule applied to the epochs from the origin on
    (the earlier epochs only lower: the best is in the window), shifted by the origin."""
    origin = anneal_origin(budget)
    rng = np.random.default_rng(seed)
    t = np.arange(budget + 1 - origin, dtype=np.float64)
    window = 80.0 - 10.0 * np.exp(-0.3 * t) + rng.normal(0.0, noise, t.size)
    prefix = rng.uniform(10.0, 60.0, origin)
    values = np.concatenate((prefix, window))
    hinted = KneeRule(max_epochs=budget, schedule="cosine")
    plain = KneeRule(max_epochs=budget - origin)
    for end in range(origin, budget + 1, 3):
        a = hinted.decide(values[: end + 1])
        b = plain.decide(window[: end + 1 - origin])
        assert (a.stop, a.reason) == (b.stop, b.reason)
        if b.knee_epoch is not None:
            assert a.knee_epoch == b.knee_epoch + origin
        if b.gain_chance is not None:
            assert a.gain_chance == pytest.approx(b.gain_chance, rel=1e-9, abs=1e-12)


def test_a_cosine_curve_that_diverges_in_its_high_lr_phase_still_stops() -> None:
    values = [30.0, 40.0] + [math.nan] * 12
    d = KneeRule(max_epochs=100, schedule="cosine").decide(values)
    assert d.stop and d.reason == "diverged" and d.knee_epoch == 1


def test_a_best_epoch_before_the_annealed_window_is_kept_without_a_fitted_value() -> None:
    budget = 60
    origin = anneal_origin(budget)
    values = [50.0] * origin
    values[5] = 95.0  # a spike in the high-LR phase, never reached again
    values += [60.0 + 0.01 * (-1) ** k for k in range(budget + 1 - origin)]
    d = KneeRule(max_epochs=budget, schedule="cosine").replay(np.asarray(values))
    assert d.stop and d.knee_epoch == 5 and d.fitted_value is None
    assert d.epoch >= origin + 10
