"""The evidence rule told the learning-rate schedule (``KneeRule(schedule="cosine")``)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from stageplan.knee import KneeRule
from stageplan.knee._rule import ANNEAL_FIT, ANNEALED, anneal_origin


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


def _brute_chance(values: np.ndarray, budget: int, tolerance: float) -> float:
    """The hinted rule's chance of a gain, computed directly: a quadratic in the cosine LR
    fitted to the epochs whose LR is at most ANNEAL_FIT of the start, its curve's standard
    deviation ahead, the largest chance over the epochs left of beating the best by
    ``tolerance`` residual sds (continuous values: no resolution)."""
    from scipy.stats import norm

    def lr(t: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.cos(np.pi * t / budget))  # type: ignore[no-any-return]

    t = values.size - 1
    start = next(k for k in range(budget + 1) if lr(np.array(float(k))) <= ANNEAL_FIT + 1e-12)
    seen = np.arange(start, t + 1, dtype=np.float64)
    y = values[start:]
    coef, cov = np.polyfit(lr(seen), y, 2, cov="unscaled")
    s = float(np.sqrt(np.sum((np.polyval(coef, lr(seen)) - y) ** 2) / (y.size - 3)))
    ahead = np.arange(t + 1, budget + 1, dtype=np.float64)
    x = np.vander(lr(ahead), 3)
    sd = s * np.sqrt(np.einsum("ij,jk,ik->i", x, cov, x))
    level = float(values.max()) + tolerance * s
    return float(np.max(norm.sf((level - x @ coef) / sd)))


@settings(max_examples=15, deadline=None)
@given(
    st.integers(40, 120),
    st.integers(0, 10_000),
    st.floats(0.05, 1.0),
    st.sampled_from([0.5, 1.0, 2.0]),
)
def test_cosine_evidence_is_a_quadratic_in_the_lr_checked_by_brute_force(
    budget: int, seed: int, noise: float, tolerance: float
) -> None:
    """Brute force (numpy's polyfit and scipy's normal): the hinted rule's chance and its
    decision (stop iff the chance is below ``risk``) from the annealed window on."""
    origin = anneal_origin(budget)
    values = _cosine_curve(budget, seed)
    values[origin:] += np.random.default_rng(seed + 1).normal(0.0, noise, budget + 1 - origin)
    rule = KneeRule(max_epochs=budget, schedule="cosine", tolerance=tolerance)
    for end in range(origin + rule.delay, budget, 4):
        d = rule.decide(values[: end + 1])
        assert d.gain_chance is not None
        brute = _brute_chance(values[: end + 1], budget, tolerance)
        assert d.gain_chance == pytest.approx(brute, rel=1e-6, abs=1e-9)
        assert d.stop == (brute < rule.risk)
        assert d.knee_epoch == int(np.argmax(values[: end + 1]))


def test_the_hinted_rule_saves_the_last_epochs_of_a_converged_anneal() -> None:
    """A curve whose climb is over before the end (a quadratic in the LR with its top at
    LR 0.02) stops at the first epoch the window allows, losing less than 3 noise sds; one
    still climbing to the end (linear in the LR) runs until its remaining gain is about the
    noise, in the last few epochs."""
    budget = 200
    t = np.arange(budget + 1, dtype=np.float64)
    lr = 0.5 * (1.0 + np.cos(np.pi * t / budget))
    rule = KneeRule(max_epochs=budget, schedule="cosine")
    done_epochs, steep_epochs = [], []
    for seed in range(6):
        noise = np.random.default_rng(seed).normal(0.0, 0.05, t.size)
        done = 90.0 - 40.0 * np.maximum(lr - 0.02, 0.0) ** 2 + noise
        d = rule.replay(done)
        assert d.stop and d.reason == "converged"
        assert float(done.max() - done[d.knee_epoch]) < 3 * 0.05
        done_epochs.append(d.epoch)
        steep = 90.0 - 60.0 * lr + noise
        d = rule.replay(steep)
        assert float(steep.max() - steep[d.knee_epoch]) < 3 * 0.05
        steep_epochs.append(d.epoch)
    assert max(done_epochs) < budget - 20
    assert min(steep_epochs) >= budget - 6


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


def test_a_cosine_loss_curve_decides_like_its_negated_accuracy() -> None:
    budget = 120
    values = _cosine_curve(budget, 3)
    rule = KneeRule(max_epochs=budget, schedule="cosine")
    up = rule.replay(values)
    down = rule.replay(-values, mode="min")
    assert (down.epoch, down.reason, down.knee_epoch) == (up.epoch, up.reason, up.knee_epoch)
    assert down.gain_chance == pytest.approx(up.gain_chance)


def test_a_flat_annealed_window_stops_at_the_first_epoch_allowed() -> None:
    budget = 100
    origin, fit_start = anneal_origin(budget), anneal_origin(budget, ANNEAL_FIT)
    values = np.concatenate(
        (np.linspace(10.0, 70.0, fit_start), np.full(budget + 1 - fit_start, 70.0))
    )
    d = KneeRule(max_epochs=budget, schedule="cosine").replay(values)
    assert d.stop and d.reason == "converged" and d.epoch == origin + 10
