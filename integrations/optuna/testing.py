"""A reusable contract test suite for Optuna pruners.

Subclass :class:`PrunerContract` in a test module, override the ``pruner`` fixture (it may
depend on the ``direction`` fixture, ``"maximize"`` or ``"minimize"``) and the fixtures that
state your pruner's policies; pytest collects the inherited tests.

Example (in ``tests/test_my_pruner.py``)::

    import pytest
    from stageplan.integrations.optuna.testing import PrunerContract

    class TestMyPruner(PrunerContract):
        @pytest.fixture
        def pruner(self, direction):
            return MyPruner(patience=3)

        @pytest.fixture
        def prunes_all_nan(self):
            return False          # stated policy: NaN never prunes

        @pytest.fixture
        def bad_constructors(self):
            return [lambda: MyPruner(patience=-1)]

What is checked, for both directions: a trial without values is never pruned; a first trial
with a healthy curve is not pruned; nothing is pruned during the stated warm-up; a hopeless
trial is pruned by the stated step while a trial better than every other is not (a pruner
that ignores the direction fails here); the stated NaN policy (an all-NaN trial, a NaN after
healthy values); eager constructor validation; determinism and statelessness (a copy, a
pickled copy and repeated calls decide alike, as Optuna rebuilds pruners in every process).

Also here, for tests of plans on PostgreSQL: :func:`new_postgres_database` and
:func:`drop_postgres_database` (a new, uniquely named database per run: one that already has
the schema hides the bugs of a first start).

The curves are accuracy-like for ``"maximize"`` and ``1 - accuracy`` for ``"minimize"``:
:func:`good_curve` rises from 0.5 towards 0.9, :func:`bad_curve` sits near 0.1 and slowly
falls, so ``ThresholdPruner(lower=0.2)`` / ``ThresholdPruner(upper=0.8)`` separate them.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import pytest
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState
from stageplan.integrations.optuna._databases import drop_postgres_database, new_postgres_database
from stageplan.integrations.optuna._pruner import frozen_trial

__all__ = [
    "N_STEPS",
    "PrunerContract",
    "bad_curve",
    "decisions",
    "drop_postgres_database",
    "good_curve",
    "new_postgres_database",
    "reference_study",
]

N_STEPS = 20
"""Steps every curve of the suite is reported for (0 .. N_STEPS - 1)."""


def _direction(direction: str) -> StudyDirection:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return StudyDirection.MAXIMIZE if direction == "maximize" else StudyDirection.MINIMIZE


def _orient(direction: str, acc: float) -> float:
    return acc if direction == "maximize" else 1.0 - acc


def good_curve(direction: str, step: int, offset: float = 0.0) -> float:
    """A healthy curve: accuracy rising from 0.5 towards 0.9 (+ ``offset``)."""
    return _orient(direction, 0.5 + 0.4 * (1.0 - math.exp(-step / 6.0)) + offset)


def bad_curve(direction: str, step: int) -> float:
    """A hopeless curve: accuracy near 0.1, slowly falling."""
    return _orient(direction, 0.1 - 0.001 * step)


def reference_study(
    pruner: BasePruner,
    direction: str,
    *,
    n_trials: int = 8,
    name: str = "pruner-contract",
    call_pruner: bool = True,
) -> optuna.Study:
    """A study with ``n_trials`` finished trials of healthy curves (offsets 0 to 0.07).

    With ``call_pruner`` each is run through ``should_prune`` at every step (so rung-based
    pruners record their rungs); all are told ``COMPLETE`` with their last value whatever the
    pruner said.
    """
    study = optuna.create_study(
        study_name=name,
        direction=_direction(direction),
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for i in range(n_trials):
        trial = study.ask()
        value = 0.0
        for step in range(N_STEPS):
            value = good_curve(direction, step, offset=0.01 * i)
            trial.report(value, step)
            if call_pruner:
                trial.should_prune()
        study.tell(trial, value)
    return study


def decisions(study: optuna.Study, values: Sequence[float]) -> list[bool]:
    """Report ``values`` (step i = values[i]) in a new trial; ``should_prune()`` after each.

    Reporting goes on after a prune decision, so the result shows every step's decision. The
    trial is then told ``PRUNED``.
    """
    trial = study.ask()
    out = []
    for step, value in enumerate(values):
        trial.report(value, step)
        out.append(bool(trial.should_prune()))
    study.tell(trial, state=TrialState.PRUNED)
    return out


class PrunerContract:
    """Contract tests every Optuna pruner should pass; override the fixtures below."""

    # -- fixtures to override --------------------------------------------------------------
    @pytest.fixture(params=["maximize", "minimize"])
    def direction(self, request: pytest.FixtureRequest) -> str:
        """The study direction (both are tested)."""
        return str(request.param)

    @pytest.fixture
    def pruner(self, direction: str) -> BasePruner:
        """The pruner under test (override; may depend on ``direction``)."""
        raise NotImplementedError("override the `pruner` fixture in your PrunerContract")

    @pytest.fixture
    def warmup_steps(self) -> int:
        """Stated policy: no trial is pruned at a step below this."""
        return 0

    @pytest.fixture
    def uses_own_records(self) -> bool:
        """Stated policy: decisions depend on what ``prune`` recorded for earlier trials
        (rung-based pruners). ``False`` builds the reference trials without calling the pruner
        (faster for pruners that look at one trial's values only)."""
        return True

    @pytest.fixture
    def study_for(self, uses_own_records: bool) -> Callable[[BasePruner, str], optuna.Study]:
        """Builds the reference study of a test (see :func:`reference_study`)."""

        def make(pruner: BasePruner, direction: str) -> optuna.Study:
            return reference_study(pruner, direction, call_pruner=uses_own_records)

        return make

    @pytest.fixture
    def prunes_bad_trial_by(self) -> int | None:
        """Stated policy: a hopeless trial is pruned at or before this step (None: no promise)."""
        return 10

    @pytest.fixture
    def prunes_all_nan(self) -> bool:
        """Stated policy: a trial reporting only NaN is pruned within ``N_STEPS`` steps."""
        return True

    @pytest.fixture
    def prunes_last_nan(self) -> bool:
        """Stated policy: a NaN reported after healthy values prunes at that step."""
        return False

    @pytest.fixture
    def bad_constructors(self) -> list[Callable[[], Any]]:
        """Constructions that must raise ``ValueError`` or ``TypeError`` at once."""
        return []

    # -- the contract ----------------------------------------------------------------------
    def test_no_values_never_prunes(
        self, pruner: BasePruner, direction: str, study_for: Any
    ) -> None:
        study = study_for(pruner, direction)
        trial = study.ask()
        frozen = frozen_trial(study, trial)
        assert frozen.intermediate_values == {}
        assert pruner.prune(study, frozen) is False
        assert trial.should_prune() is False

    def test_first_trial_with_a_healthy_curve_is_not_pruned(
        self, pruner: BasePruner, direction: str
    ) -> None:
        study = optuna.create_study(direction=_direction(direction), pruner=pruner)
        got = decisions(study, [good_curve(direction, s) for s in range(N_STEPS)])
        assert not any(got), f"pruned at steps {[s for s, d in enumerate(got) if d]}"

    def test_nothing_is_pruned_during_warmup(
        self, pruner: BasePruner, direction: str, warmup_steps: int, study_for: Any
    ) -> None:
        if warmup_steps == 0:
            pytest.skip("the pruner states no warm-up")
        study = study_for(pruner, direction)
        got = decisions(study, [bad_curve(direction, s) for s in range(N_STEPS)])
        assert not any(got[:warmup_steps]), f"pruned during warm-up: {got[:warmup_steps]}"

    def test_hopeless_trial_is_pruned_and_the_best_is_not(
        self, pruner: BasePruner, direction: str, prunes_bad_trial_by: int | None, study_for: Any
    ) -> None:
        if prunes_bad_trial_by is None:
            pytest.skip("the pruner promises no step by which a hopeless trial is pruned")
        study = study_for(pruner, direction)
        n = min(prunes_bad_trial_by + 1, N_STEPS)
        bad = decisions(study, [bad_curve(direction, s) for s in range(n)])
        assert any(bad), (
            f"a hopeless {direction} trial was not pruned by step {prunes_bad_trial_by}"
        )
        best = decisions(study, [good_curve(direction, s, 0.1) for s in range(n)])
        assert not any(best), (
            f"the best {direction} trial was pruned at steps "
            f"{[s for s, d in enumerate(best) if d]}"
        )

    def test_all_nan_trial_follows_the_stated_policy(
        self, pruner: BasePruner, direction: str, prunes_all_nan: bool, study_for: Any
    ) -> None:
        study = study_for(pruner, direction)
        got = decisions(study, [math.nan] * N_STEPS)
        assert any(got) == prunes_all_nan, f"all-NaN decisions: {got}"

    def test_nan_after_healthy_values_follows_the_stated_policy(
        self,
        pruner: BasePruner,
        direction: str,
        prunes_last_nan: bool,
        warmup_steps: int,
        study_for: Any,
    ) -> None:
        study = study_for(pruner, direction)
        at = max(warmup_steps, 10)
        values = [good_curve(direction, s, 0.1) for s in range(at)] + [math.nan]
        got = decisions(study, values)
        assert got[at] == prunes_last_nan, f"decision at the NaN step {at}: {got[at]}"

    def test_constructor_validates_eagerly(
        self, bad_constructors: list[Callable[[], Any]]
    ) -> None:
        if not bad_constructors:
            pytest.skip("no invalid constructions stated")
        for make in bad_constructors:
            with pytest.raises((ValueError, TypeError)):
                make()

    def test_decisions_are_deterministic_and_stateless(
        self, pruner: BasePruner, direction: str, study_for: Any
    ) -> None:
        study = study_for(pruner, direction)
        trial = study.ask()
        twins = [copy.deepcopy(pruner), pickle.loads(pickle.dumps(pruner))]
        for step in range(N_STEPS):
            value = _orient(direction, 0.45 + 0.3 * math.sin(step / 4.0))
            trial.report(value, step)
            if step % 3 != 2:
                continue  # every third step is enough
            frozen = frozen_trial(study, trial)
            first = pruner.prune(study, frozen)
            again = [pruner.prune(study, frozen) for _ in range(3)]
            others = [twin.prune(study, frozen) for twin in twins]
            assert again == [first] * 3, f"step {step}: repeated calls disagree: {again}"
            assert others == [first] * 2, f"step {step}: copies of the pruner disagree"
