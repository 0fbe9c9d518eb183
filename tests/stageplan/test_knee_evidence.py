"""The evidence rule (the default ``KneeRule()``) and its pure helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy.stats import norm

from stageplan.knee import KneeDecision, KneeRule
from stageplan.knee._evidence import (
    bic_weight,
    exceed_chance,
    fit_covariance,
    prediction_sd,
    tie_resolution,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "real_curves_subset.json"
SATURATED = [0.9907, 0.9907, 0.9907, 0.9907, 1.0, 1.0, 1.0, 1.0, 1.0]  # the main job's curve




# -- pure helpers, against brute force ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(0.01, 3)), min_size=1, max_size=12),
    st.floats(-5, 5),
)
def test_exceed_chance_is_one_minus_the_chance_that_none_exceeds(
    draws: list[tuple[float, float]], threshold: float
) -> None:
    mean = np.array([m for m, _ in draws])
    sd = np.array([s for _, s in draws])
    none = math.prod(float(norm.cdf(threshold, loc=m, scale=s)) for m, s in draws)
    assert exceed_chance(mean, sd, threshold) == pytest.approx(1.0 - none, abs=1e-9)
    # a higher bar is never easier to clear
    assert exceed_chance(mean, sd, threshold + 0.5) <= exceed_chance(mean, sd, threshold) + 1e-12


def test_exceed_chance_edge_cases() -> None:
    assert exceed_chance(np.array([]), np.array([]), 0.0) == 0.0
    assert exceed_chance(np.array([1.0]), np.array([0.0]), 0.5) == 1.0
    assert exceed_chance(np.array([0.5]), np.array([0.0]), 0.5) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 30), st.floats(0.1, 3.0), st.integers(0, 1000))
def test_fit_covariance_of_a_line_is_the_ols_covariance(n: int, sigma: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 100, n))
    jac = np.column_stack((np.ones(n), t, t * t))
    if np.linalg.matrix_rank(jac) < 3:
        return
    want = sigma**2 * np.linalg.inv(jac.T @ jac)
    got = fit_covariance(jac, sigma, np.array([True, True, True]))
    assert np.allclose(got, want, rtol=1e-6, atol=1e-12)
    rows = jac[:3]
    assert np.allclose(prediction_sd(rows, got), np.sqrt(np.diag(rows @ want @ rows.T)))
    # a parameter held on its bound has no variance
    pinned = fit_covariance(jac, sigma, np.array([True, True, False]))
    assert np.all(pinned[2] == 0) and np.all(pinned[:, 2] == 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=3, max_size=25), st.sampled_from([0.25, 1 / 108]))
def test_tie_resolution_is_the_step_of_a_quantized_metric(steps: list[int], unit: float) -> None:
    values = np.array(steps, dtype=np.float64) * unit
    diffs = np.diff(values)
    got = tie_resolution(values)
    levels = sorted(set(steps))
    if np.count_nonzero(diffs == 0) * 3 < diffs.size or len(levels) < 2:
        assert got == 0.0
    else:
        gap = min(b - a for a, b in zip(levels, levels[1:], strict=False))
        assert got == pytest.approx(gap * unit)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-3, 10), st.integers(1, 8), st.floats(1e-3, 10), st.integers(1, 8),
       st.integers(10, 300))
def test_bic_weights_of_two_fits_sum_to_one(
    s1: float, k1: int, s2: float, k2: int, n: int
) -> None:
    w = bic_weight((s1, k1), (s2, k2), n)
    assert 0.0 <= w <= 1.0
    assert w + bic_weight((s2, k2), (s1, k1), n) == pytest.approx(1.0)


# -- the rule -------------------------------------------------------------------------------------


def test_default_rule_is_the_evidence_rule_and_paper_is_the_authors() -> None:
    rule = KneeRule()
    assert (rule.method, rule.family, rule.delay, rule.horizon, rule.keep) == (
        "evidence", "exp", 10, 1000, "best"
    )
    paper = KneeRule.paper()
    assert (paper.method, paper.family, paper.delay, paper.horizon, paper.keep) == (
        "paper", "exp", 10, 1000, "knee"
    )
    # the paper's dict has no method key (as before the evidence rule); such dicts are paper
    assert "method" not in paper.to_dict()
    assert KneeRule.from_dict(paper.to_dict()) == paper
    assert KneeRule.from_dict({"delay": 5}) == KneeRule.paper(delay=5)
    custom = KneeRule("power", 5, max_epochs=40, risk=0.05, tolerance=2.0, resolution=0.01,
                      ceiling=1.0, keep="auto", patience=3)
    data = json.loads(json.dumps(custom.to_dict()))
    assert KneeRule.from_dict(data) == custom and hash(KneeRule.from_dict(data)) == hash(custom)
    assert custom != KneeRule("power", 5, max_epochs=40, risk=0.05, tolerance=2.0,
                              resolution=0.01, ceiling=1.0, patience=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "bayes"}, "method must be one of"),
        ({"risk": 0.0}, r"risk must lie in \(0, 1\), got 0.0"),
        ({"risk": 1.0}, r"risk must lie in \(0, 1\), got 1.0"),
        ({"risk": "low"}, "risk must be a number >= 0, got 'low'"),
        ({"tolerance": -1.0}, "tolerance must be a finite number >= 0, got -1.0"),
        ({"resolution": math.nan}, "resolution must be a finite number >= 0, got nan"),
        ({"ceiling": "top"}, "ceiling must be a finite number or None, got 'top'"),
        ({"ceiling": math.inf}, "ceiling must be a finite number or None, got inf"),
        ({"keep": "last"}, "keep must be one of"),
        ({"method": "paper", "keep": "auto"}, "keep='auto' needs method='evidence'"),
        ({"method": "paper", "risk": 0.5}, "belong to method='evidence'"),
    ],
)
def test_constructor_rejects_bad_evidence_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        KneeRule(**kwargs)


def test_flat_curve_stops_as_soon_as_the_evidence_can_be_read() -> None:
    # exp has 5 parameters: the evidence needs 5 + 2 values, i.e. epoch 6
    d = KneeRule(delay=3, max_epochs=50).replay([0.7] * 50)
    assert (d.stop, d.reason, d.epoch, d.knee_epoch) == (True, "converged", 6, 0)
    assert d.gain_chance is not None and d.gain_chance < 0.2


def test_saturated_curve_of_the_main_job_stops_before_the_cap() -> None:
    """The curve that ran to the 8-epoch cap in the main job under the paper's rule."""
    paper = KneeRule.paper(delay=3, max_epochs=8).replay(SATURATED)
    assert (paper.reason, paper.epoch) == ("max_epochs", 8)
    d = KneeRule(delay=3, max_epochs=8).replay(SATURATED)
    assert d.stop and d.reason == "converged" and d.epoch <= 6
    assert SATURATED[d.knee_epoch] == 1.0  # keeps a checkpoint at the ceiling
    # told the metric's ceiling, it stops the first epoch that reaches it
    d = KneeRule(delay=3, max_epochs=8, ceiling=1.0).replay(SATURATED)
    assert (d.reason, d.epoch, d.knee_epoch) == ("ceiling", 4, 4)
    # a loss at its floor, in min mode
    d = KneeRule(delay=3, max_epochs=8, ceiling=0.0).replay([0.5, 0.2, 0.0, 0.0], mode="min")
    assert (d.reason, d.epoch, d.knee_epoch) == ("ceiling", 2, 2)


def test_a_curve_still_climbing_is_not_stopped() -> None:
    t = np.arange(101)
    values = 80 - 60 * np.exp(-0.02 * t)  # a third of the rise still to come at epoch 60
    d = KneeRule(max_epochs=100).replay(values)
    assert (d.reason, d.epoch) == ("max_epochs", 100)
    # the paper's rule, without a budget, is not told that the run is short either
    assert KneeRule(max_epochs=100).decide(values[:40]).gain_chance == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_plateau_stops_well_before_the_budget_and_keeps_the_best(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(201)
    values = 90 - 20 * np.exp(-0.3 * t) + rng.normal(0, 0.3, t.size)
    d = KneeRule(max_epochs=200).replay(values)
    assert d.stop and d.reason == "converged"
    assert d.epoch < 150  # the plateau starts near epoch 20; measured stops at 64-105
    seen = values[: d.epoch + 1]
    assert d.knee_epoch == int(np.argmax(seen))
    assert values.max() - seen.max() < 1.0  # within about three noise sd of the run's best


def test_min_mode_mirrors_max_mode() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(80)
    acc = 70 - 30 * np.exp(-0.15 * t) + rng.normal(0, 0.4, t.size)
    up = KneeRule(max_epochs=79).replay(acc)
    down = KneeRule(max_epochs=79).replay(-acc, mode="min")
    assert (up.stop, up.reason, up.epoch, up.knee_epoch) == (
        down.stop, down.reason, down.epoch, down.knee_epoch
    )
    assert down.fitted_value == pytest.approx(-up.fitted_value)  # type: ignore[operator]


def test_tracker_matches_cold_decisions() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(60)
    values = 80 - 60 * np.exp(-0.2 * t) + rng.normal(0, 0.5, t.size)
    rule = KneeRule(max_epochs=59)
    tracker = rule.tracker()
    for i, v in enumerate(values):
        warm = tracker.update(v)
        cold = rule.decide(values[: i + 1])
        assert warm.stop == cold.stop and warm.reason == cold.reason
        if warm.stop:
            break


def test_evidence_decision_round_trips_with_its_chance() -> None:
    rng = np.random.default_rng(0)
    values = 50 - 40 * np.exp(-0.3 * np.arange(30)) + rng.normal(0, 0.2, 30)
    d = KneeRule(max_epochs=100).decide(values)
    assert d.gain_chance is not None and 0.0 <= d.gain_chance <= 1.0
    assert KneeDecision.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert KneeRule.paper().decide(values).gain_chance is None


def test_nan_values_are_never_kept_and_diverged_still_stops() -> None:
    values = [0.0, 5.0, 7.0, 8.0, math.nan, 8.5, 8.6, 8.6, 8.6, 8.6, 8.6, 8.6, 8.6, 8.6, 8.6]
    d = KneeRule(delay=3, max_epochs=14).replay(values)
    assert d.knee_epoch is not None and math.isfinite(values[d.knee_epoch])
    d = KneeRule(delay=3).replay([1.0, 2.0, math.nan, math.nan, math.nan])
    assert (d.reason, d.knee_epoch) == ("diverged", 1)


def _fixture_stages(kind: str) -> list[tuple[str, np.ndarray, str]]:
    out = []
    for entry in json.loads(FIXTURE.read_text()):
        values = np.asarray(entry["values"], dtype=np.float64)
        drops = entry.get("lr_drop_epochs") or []
        if kind == "post_drop" and drops and entry["mode"] == "max":
            end = drops[1] - 1 if len(drops) > 1 else values.size
            out.append((entry["id"], values[drops[0] - 2 : end], entry["mode"]))
        if kind == "cosine" and not drops:
            out.append((entry["id"], values, entry["mode"]))
    return out


@pytest.mark.parametrize("stage", _fixture_stages("post_drop"), ids=lambda s: s[0][:32])
def test_post_drop_stage_stops_early_near_the_best(stage: tuple[str, np.ndarray, str]) -> None:
    _, values, mode = stage
    d = KneeRule(max_epochs=values.size - 1).replay(values, mode=mode)
    assert d.stop and d.reason == "converged"
    assert d.epoch < values.size - 1  # measured: stops at 30-89% of the stage
    # measured 0.00-0.82 points below the stage's best (a late noise spike sets the best)
    assert values.max() - values[d.knee_epoch] <= 1.0


def test_cosine_curve_runs_nearly_to_its_end() -> None:
    """A cosine curve rises to the end: the evidence rule waits where the paper's rule did not."""
    _, values, mode = _fixture_stages("cosine")[0]
    paper = KneeRule.paper(max_epochs=values.size - 1).replay(values, mode=mode)
    d = KneeRule(max_epochs=values.size - 1).replay(values, mode=mode)
    assert d.epoch > 0.8 * (values.size - 1) > paper.epoch
    assert values.max() - values[d.knee_epoch] <= 1.0


def test_cli_and_video3d_build_the_same_rule() -> None:
    from stageplan.cli import _parser, _rule_of

    base = ["plan", "--graph", "g.json", "--fn", "m:f", "--storage", "s", "--delay", "3"]
    args = _parser().parse_args([*base, "--max-epochs", "8", "--ceiling", "1", "--risk", "0.1"])
    assert _rule_of(args) == KneeRule(delay=3, max_epochs=8, ceiling=1.0, risk=0.1)
    assert _rule_of(_parser().parse_args([*base, "--rule", "paper"])) == KneeRule.paper(delay=3)
    with pytest.raises(ValueError, match="belong to method='evidence'"):
        _rule_of(_parser().parse_args([*base, "--rule", "paper", "--ceiling", "1"]))
    video3d = pytest.importorskip("video3d.trainer._config")
    cfg = video3d.PRESETS["synthetic"]
    assert cfg.knee_rule() == KneeRule(cfg.knee_family, cfg.knee_delay,
                                       max_epochs=cfg.max_epochs, ceiling=1.0)
    paper = video3d.TrainConfig(knee_method="paper", knee_delay=5, max_epochs=40)
    assert paper.knee_rule() == KneeRule.paper(delay=5, max_epochs=40)
    with pytest.raises(ValueError, match="knee_method"):
        video3d.TrainConfig(knee_method="bayes")
