"""Optuna objects handed to the adapter: live trials, studies and storage objects.

The adapter reads them through Optuna's public API (trial numbers, ``Study.get_trials``,
``BaseStorage.get_trial_id_from_study_id_trial_number``); these tests pin what that must find.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from stageplan.integrations.optuna import OptunaStorage, knee_value
from stageplan.integrations.optuna._pruner import frozen_trial

from stageplan import KneeRule, TransitionGraph, plan

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_live_trial_is_found_among_many() -> None:
    study = optuna.create_study(direction="maximize")
    for i in range(5):  # finished trials before it, and one running beside it
        study.add_trial(optuna.trial.create_trial(value=float(i), intermediate_values={0: i}))
    other = study.ask()
    other.report(-1.0, 0)
    trial = study.ask()
    for step in range(4):
        trial.report(10.0 + step, step)
    frozen = frozen_trial(study, trial)
    assert frozen.number == trial.number == 6
    assert frozen.intermediate_values == {0: 10.0, 1: 11.0, 2: 12.0, 3: 13.0}
    assert knee_value(study, trial) == knee_value(study, frozen)
    assert frozen_trial(study, frozen) is frozen
    with pytest.raises(TypeError, match="optuna Trial or FrozenTrial"):
        frozen_trial(study, optuna.trial.FixedTrial({}))


def test_trial_ids_come_from_the_public_number_lookup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    optuna.create_study(storage=url, study_name="other").optimize(lambda t: 0.0, n_trials=3)
    graph = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.5, 0.1]))

    def fn(trial: Any) -> None:
        for epoch in trial.epochs():
            trial.report(trial.params["size"] * min(epoch, 3))

    store = OptunaStorage(url)
    plan(graph, fn, storage=store, rule=KneeRule(delay=2, max_epochs=5), progress=False)
    study = store.load_study()
    ids = [store._trial_id(t) for t in study.trials]
    assert ids == [t._trial_id for t in study.trials]  # the private value, for comparison
    assert ids != [t.number for t in study.trials]  # ids are global: the other study's first
    for t in study.trials:
        assert optuna.trial.Trial(study, store._trial_id(t)).number == t.number


@pytest.mark.skipif(
    importlib.util.find_spec("optuna_dashboard") is None, reason="needs optuna-dashboard"
)
def test_publish_plan_takes_the_study_object(tmp_path: Path) -> None:
    from optuna_dashboard import get_note
    from stageplan.integrations.optuna import PLAN_ATTR, publish_plan

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    graph = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.5, 0.1]))

    def fn(trial: Any) -> None:
        for epoch in trial.epochs():
            trial.report(trial.params["size"] * (1 - trial.params["lr"]) * min(epoch, 3))

    result = plan(graph, fn, storage=url, rule=KneeRule(delay=2, max_epochs=5), progress=False)
    study = optuna.load_study(study_name="stageplan", storage=url)
    info = publish_plan(study, result)
    assert study.user_attrs[PLAN_ATTR] == info
    chosen = {s["trial"] for s in info["stages"]}
    store = OptunaStorage(url)
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        note = get_note(optuna.trial.Trial(study, store._trial_id(t)))
        assert ("Chosen by the plan" in note) == (t.number in chosen)
    assert chosen and "stages" in get_note(study)
