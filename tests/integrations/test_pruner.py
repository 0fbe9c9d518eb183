"""KneePruner and Optuna's built-in pruners against the reusable pruner contract."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
    ThresholdPruner,
)
from optuna.trial import TrialState
from stageplan.integrations.optuna import KneePruner, knee_value, tell_knee
from stageplan.integrations.optuna._pruner import curve_of
from stageplan.integrations.optuna.testing import (
    N_STEPS,
    PrunerContract,
    bad_curve,
    reference_study,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TestKneePruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return KneePruner(delay=5)

    @pytest.fixture
    def uses_own_records(self) -> bool:
        return False  # it looks at one trial's values only

    @pytest.fixture
    def prunes_bad_trial_by(self) -> int:
        return 8  # peak at step 0, pruned once t >= 0 + delay

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [
            lambda: KneePruner(delay=0),
            lambda: KneePruner(family="cubic"),
            lambda: KneePruner(delay=5, horizon=5),
            lambda: KneePruner(n_warmup_steps=-1),
            lambda: KneePruner(n_warmup_steps=1.5),  # type: ignore[arg-type]
            lambda: KneePruner(patience=0),
        ]


class TestKneePrunerWithWarmup(TestKneePruner):  # type: ignore[misc]
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return KneePruner(delay=5, n_warmup_steps=12)

    @pytest.fixture
    def warmup_steps(self) -> int:
        return 12

    @pytest.fixture
    def prunes_bad_trial_by(self) -> int:
        return 12


class TestMedianPruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return MedianPruner(n_startup_trials=5, n_warmup_steps=3)

    @pytest.fixture
    def warmup_steps(self) -> int:
        return 3

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [lambda: MedianPruner(n_startup_trials=-1), lambda: MedianPruner(n_warmup_steps=-1)]


class TestPercentilePruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=3)

    @pytest.fixture
    def warmup_steps(self) -> int:
        return 3

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [lambda: PercentilePruner(150.0), lambda: PercentilePruner(25.0, interval_steps=0)]


class TestSuccessiveHalvingPruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [
            lambda: SuccessiveHalvingPruner(min_resource=0),
            lambda: SuccessiveHalvingPruner(reduction_factor=1),
        ]


class TestHyperbandPruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return HyperbandPruner(min_resource=1, max_resource=N_STEPS, reduction_factor=3)

    @pytest.fixture
    def prunes_bad_trial_by(self) -> int:
        return N_STEPS - 1  # the bracket a trial lands in decides its first rung

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        # HyperbandPruner checks little eagerly: max_resource=0 or reduction_factor=1 pass
        # the constructor (found by this suite); a non-int max_resource is refused.
        return [lambda: HyperbandPruner(max_resource="x")]  # type: ignore[arg-type]


class TestThresholdPruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return (
            ThresholdPruner(lower=0.2) if direction == "maximize" else ThresholdPruner(upper=0.8)
        )

    @pytest.fixture
    def prunes_bad_trial_by(self) -> int:
        return 0

    @pytest.fixture
    def prunes_last_nan(self) -> bool:
        return True

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [
            lambda: ThresholdPruner(),
            lambda: ThresholdPruner(lower=1.0, upper=0.0),
            lambda: ThresholdPruner(lower=0.0, n_warmup_steps=-1),
        ]


class TestPatientPruner(PrunerContract):
    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        return PatientPruner(None, patience=3)

    @pytest.fixture
    def prunes_all_nan(self) -> bool:
        return False

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        return [lambda: PatientPruner(None, patience=-1), lambda: PatientPruner(None, 1, -0.5)]


# -- the suite catches broken pruners ---------------------------------------------------------
class _DirectionBlind(KneePruner):
    """Always fits the curve as if it were maximised."""

    def prune(self, study: optuna.Study, trial: Any) -> bool:
        values = curve_of(trial)
        return bool(values) and self.rule.decide(values, mode="max").stop


class _PrunesEmpty(KneePruner):
    def prune(self, study: optuna.Study, trial: Any) -> bool:
        return not trial.intermediate_values or super().prune(study, trial)


class _Stateful(KneePruner):
    calls = 0

    def prune(self, study: optuna.Study, trial: Any) -> bool:
        type(self).calls += 1
        return type(self).calls % 4 == 0


class _IgnoresWarmup(MedianPruner):
    def prune(self, study: optuna.Study, trial: Any) -> bool:
        return MedianPruner(n_startup_trials=5).prune(study, trial)


@pytest.mark.parametrize(
    ("broken", "test", "kwargs"),
    [
        (
            _DirectionBlind(delay=5),
            "test_hopeless_trial_is_pruned_and_the_best_is_not",
            {"direction": "minimize", "prunes_bad_trial_by": 8},
        ),
        (_PrunesEmpty(delay=5), "test_no_values_never_prunes", {"direction": "maximize"}),
        (
            _Stateful(delay=5),
            "test_decisions_are_deterministic_and_stateless",
            {"direction": "maximize"},
        ),
        (
            _IgnoresWarmup(n_warmup_steps=3),
            "test_nothing_is_pruned_during_warmup",
            {"direction": "maximize", "warmup_steps": 3},
        ),
        (  # a wrongly stated policy is caught too
            KneePruner(delay=5),
            "test_all_nan_trial_follows_the_stated_policy",
            {"direction": "maximize", "prunes_all_nan": False},
        ),
    ],
)
def test_the_contract_catches_broken_pruners(
    broken: BasePruner, test: str, kwargs: dict[str, Any]
) -> None:
    def study_for(pruner: BasePruner, direction: str) -> optuna.Study:
        return reference_study(pruner, direction, call_pruner=False)

    with pytest.raises(AssertionError):
        getattr(PrunerContract(), test)(pruner=broken, study_for=study_for, **kwargs)


def test_the_contract_rejects_a_lenient_constructor() -> None:
    with pytest.raises(pytest.fail.Exception):
        PrunerContract().test_constructor_validates_eagerly(
            bad_constructors=[lambda: KneePruner(delay=3)]
        )


# -- KneePruner specifics ---------------------------------------------------------------------
def test_knee_pruner_prunes_past_the_knee_and_reports_the_knee_value() -> None:
    t = range(60)
    curve = [80 - 60 * math.exp(-0.2 * s) + 0.4 * s - 0.01 * s**2 for s in t]

    def objective(trial: optuna.Trial) -> float:
        for step, v in enumerate(curve):
            trial.report(v, step)
            if trial.should_prune():
                trial.set_user_attr("stopped_at", step)
                value = knee_value(trial.study, trial)
                assert value is not None
                return value
        return curve[-1]

    paper = KneePruner(delay=10, method="paper")
    study = optuna.create_study(direction="maximize", pruner=paper)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    stopped = trial.user_attrs["stopped_at"]
    assert trial.state == TrialState.COMPLETE
    knee = paper.rule.decide(curve[: stopped + 1]).knee_epoch
    assert knee is not None and stopped >= knee + 10
    assert trial.value == curve[knee]

    # the default (evidence) rule, told the budget, stops on the same curve and keeps its best
    evidence = KneePruner(max_epochs=59)
    assert evidence.rule.method == "evidence"
    study = optuna.create_study(direction="maximize", pruner=evidence)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    stopped = trial.user_attrs["stopped_at"]
    assert stopped < 59 and trial.value == max(curve[: stopped + 1])
    assert max(curve) - trial.value < 0.01


def test_tell_knee_with_ask_and_tell() -> None:
    study = optuna.create_study(direction="minimize", pruner=KneePruner(delay=4))
    trial = study.ask()
    losses = [0.6 * math.exp(-s / 3) + 0.01 * s for s in range(16)]
    for step, v in enumerate(losses):
        trial.report(v, step)
    value = tell_knee(study, trial)
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == value
    knee = KneePruner(delay=4).rule.decide(losses, mode="min").knee_epoch
    assert knee is not None and value == losses[knee]
    assert value == pytest.approx(min(losses), abs=0.01)  # near the minimum of the loss

    empty = study.ask()
    empty.report(math.nan, 0)
    assert tell_knee(study, empty) is None
    assert study.trials[1].state == TrialState.FAIL


def test_knee_pruner_rejects_multi_objective_studies() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    frozen.intermediate_values = {0: 1.0}
    with pytest.raises(ValueError, match="single-objective"):
        KneePruner().prune(study, frozen)


def test_knee_pruner_repr_and_rule() -> None:
    pruner = KneePruner("power", delay=4, n_warmup_steps=2)
    assert pruner.rule.family == "power" and pruner.rule.delay == 4
    assert "n_warmup_steps=2" in repr(pruner)
    assert bad_curve("maximize", 0) < 0.2  # the suite's curves are what the docs say


def test_knee_pruner_passes_the_robustness_options_to_its_rule() -> None:
    from stageplan.integrations.optuna import KneePruner

    pruner = KneePruner(patience=20, min_delta=0.5, smooth=5, keep="best", max_noise=1.0)
    rule = pruner.rule
    assert (rule.patience, rule.min_delta, rule.smooth, rule.keep, rule.max_noise) == (
        20, 0.5, 5, "best", 1.0)
    assert "max_noise=1.0" in repr(pruner)
    with pytest.raises(ValueError, match="keep"):
        KneePruner(keep="last")


def test_knee_pruner_takes_the_same_rule_and_options_as_the_planner() -> None:
    from stageplan import KneeRule

    rule = KneeRule("power", 6, max_epochs=90, risk=0.1, resolution=0.01, ceiling=1.0)
    assert KneePruner(rule=rule).rule == rule
    options = KneePruner("power", 6, max_epochs=90, risk=0.1, resolution=0.01, ceiling=1.0)
    assert options.rule == rule
    assert KneePruner(method="paper").rule == KneeRule.paper()
    with pytest.raises(ValueError, match="either rule= or the rule's options"):
        KneePruner(rule=rule, risk=0.3)
    with pytest.raises(ValueError, match="either rule= or the rule's options"):
        KneePruner("power", rule=rule)
    with pytest.raises(ValueError, match=r"Unknown KneePruner options \['riks'\]"):
        KneePruner(riks=0.3)
    with pytest.raises(ValueError, match="rule must be a KneeRule"):
        KneePruner(rule="paper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"risk must lie in \(0, 1\)"):
        KneePruner(risk=2.0)


def test_knee_pruner_takes_the_schedule_hint() -> None:
    from stageplan import KneeRule

    pruner = KneePruner(max_epochs=100, schedule="cosine")
    assert pruner.rule == KneeRule(max_epochs=100, schedule="cosine")
    assert pruner.rule.evidence_origin() == 80
    with pytest.raises(ValueError, match="schedule must be one of .* got 'step'"):
        KneePruner(max_epochs=100, schedule="step")
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    for step in range(85):  # flat and noisy while the LR is high: never pruned before 80 + 10
        trial.report(60.0 + (2.0 if step % 2 else -2.0), step)
        assert not trial.should_prune()
