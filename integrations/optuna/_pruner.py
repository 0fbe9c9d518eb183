"""KneePruner: stop a plain Optuna trial once the knee rule says its curve is done."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from stageplan.knee import KneeDecision, KneeRule

__all__ = ["KneePruner", "curve_of", "knee_value", "tell_knee"]

_RULE_OPTIONS = (
    "min_epochs",
    "max_epochs",
    "method",
    "risk",
    "tolerance",
    "resolution",
    "ceiling",
    "patience",
    "min_delta",
    "smooth",
    "keep",
    "max_noise",
    "schedule",
)


def curve_of(trial: FrozenTrial) -> list[float]:
    """The trial's intermediate values in step order (the i-th reported value is epoch i)."""
    items = sorted(trial.intermediate_values.items())
    return [float(v) for _, v in items]


def _mode(study: optuna.Study) -> str:
    if len(study.directions) != 1:
        raise ValueError(
            "KneePruner supports single-objective studies only; this study has "
            f"{len(study.directions)} directions"
        )
    return "min" if study.direction == StudyDirection.MINIMIZE else "max"


class KneePruner(BasePruner):
    """Prune a trial once the knee rule (:class:`stageplan.knee.KneeRule`) says to stop.

    After each report the pruner applies the rule to the trial's intermediate values (the
    study's direction decides whether the curve is maximised or minimised). By default that is
    the evidence rule, ``KneeRule()``: prune once a fitted curve with its uncertainty says a
    gain over the best value so far is unlikely in the steps left (``max_epochs``, or as many
    steps again as seen). ``method="paper"`` gives the rule of *Optimization Planning for 3D
    ConvNets* (Qiu et al., 2021): prune once ``t >= t* + delay`` past the fitted peak ``t*``.
    The values are taken in step order: the i-th reported value is epoch ``i`` (the first
    should be the model before training, or the first epoch; gaps in the steps are ignored).
    Other trials are never looked at, so the first trial is pruned like any other.

    The pruner keeps no state: every decision is recomputed from the stored values (Optuna
    rebuilds pruners in every process).

    NaN policy: NaN and inf values are left out of the fit and are never kept; a trial whose
    last ``delay`` values are all NaN/inf is pruned (it diverged). A single NaN does not prune.

    A pruned trial's value is its *last* intermediate value, not the kept one. To record the
    kept value, return :func:`knee_value` from the objective instead of raising
    ``TrialPruned`` (the trial completes with it), or call :func:`tell_knee` with ask-and-tell.

    Args:
        family: Curve family: ``"exp"`` (default), ``"power"``, ``"multi_power"`` or
            ``"multi_exp"``.
        delay: Steps before the first fit (>= 1); the paper's rule also waits ``delay`` steps
            past the knee.
        horizon: Steps over which the knee is sought (> ``delay``).
        n_warmup_steps: Keyword-only: never prune before this step (>= 0).
        min_epochs, max_epochs: Keyword-only: never fit before this many values; the trial's
            step budget (the evidence rule forecasts up to it).
        method, risk, tolerance, resolution, ceiling, patience, min_delta, smooth, keep,
            max_noise, schedule: Keyword-only options of :class:`stageplan.knee.KneeRule`
            (``schedule="cosine"`` with ``max_epochs`` when each trial anneals its LR to 0
            over ``max_epochs`` steps: no prune while the LR is above a tenth of its start).
        rule: Keyword-only: a ready :class:`~stageplan.knee.KneeRule` (then no other rule
            option may be given).

    Example:
        >>> import optuna
        >>> from stageplan.integrations.optuna import KneePruner, knee_value
        >>> def objective(trial):
        ...     lr = trial.suggest_float("lr", 0.01, 0.1)
        ...     acc = 0.0
        ...     for step in range(100):
        ...         acc = 0.9 - 0.8 * 0.8**step - lr * 0.004 * step
        ...         trial.report(acc, step)
        ...         if trial.should_prune():
        ...             return knee_value(trial.study, trial)
        ...     return acc
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize", pruner=KneePruner(delay=5))
        >>> study.optimize(objective, n_trials=2)
        >>> len(study.trials[0].intermediate_values) < 100
        True
    """

    def __init__(
        self,
        family: str = "exp",
        delay: int = 10,
        horizon: int = 1000,
        *,
        n_warmup_steps: int = 0,
        rule: KneeRule | None = None,
        **options: Any,
    ) -> None:
        if rule is not None:
            if not isinstance(rule, KneeRule):
                raise ValueError(f"rule must be a KneeRule, got {rule!r}.")
            if options or (family, delay, horizon) != ("exp", 10, 1000):
                raise ValueError(
                    "give either rule= or the rule's options, not both; got rule="
                    f"{rule!r} with family={family!r}, delay={delay!r}, horizon={horizon!r}, "
                    f"options {sorted(options)}."
                )
            self._rule = rule
        else:
            unknown = sorted(set(options) - set(_RULE_OPTIONS))
            if unknown:
                raise ValueError(
                    f"Unknown KneePruner options {unknown}; expected n_warmup_steps, rule or "
                    f"KneeRule options {list(_RULE_OPTIONS)}."
                )
            # KneeRule validates every rule option eagerly.
            self._rule = KneeRule(family, delay=delay, horizon=horizon, **options)
        if isinstance(n_warmup_steps, bool) or not isinstance(n_warmup_steps, int):
            raise ValueError(f"n_warmup_steps must be an integer >= 0, got {n_warmup_steps!r}.")
        if n_warmup_steps < 0:
            raise ValueError(f"n_warmup_steps must be >= 0, got {n_warmup_steps!r}.")
        self._n_warmup_steps = n_warmup_steps

    @property
    def rule(self) -> KneeRule:
        """The knee rule applied to each trial's curve."""
        return self._rule

    def __repr__(self) -> str:
        return f"KneePruner(n_warmup_steps={self._n_warmup_steps}, rule={self._rule!r})"

    def decide(self, study: optuna.Study, trial: FrozenTrial) -> KneeDecision | None:
        """The knee rule's decision on ``trial``'s curve (``None`` without values)."""
        values = curve_of(trial)
        if not values:
            return None
        return self._rule.decide(values, mode=_mode(study))

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        if step < self._n_warmup_steps:
            return False
        decision = self.decide(study, trial)
        if decision is None:
            return False
        return decision.stop


def frozen_trial(study: optuna.Study, trial: Any) -> FrozenTrial:
    """``trial`` as a ``FrozenTrial``: itself, or a live ``optuna.Trial``'s current state.

    A live trial is looked up in ``study.get_trials`` by its public ``number`` (Optuna has no
    public call that freezes a live trial).
    """
    if isinstance(trial, FrozenTrial):
        return trial
    if not isinstance(trial, optuna.trial.Trial):
        raise TypeError(f"trial must be an optuna Trial or FrozenTrial, got {trial!r}")
    number = trial.number
    trials = study.get_trials(deepcopy=False)
    if number < len(trials) and trials[number].number == number:
        return trials[number]  # numbers count up from 0 within a study
    for t in trials:
        if t.number == number:
            return t
    raise ValueError(f"trial {number} is not a trial of study {study.study_name!r}")


def knee_value(
    study: optuna.Study, trial: Any, *, pruner: KneePruner | None = None
) -> float | None:
    """The value at the trial's knee (the value the knee rule keeps).

    Uses ``pruner`` (default: the study's pruner when it is a :class:`KneePruner`, else
    ``KneePruner()``). Before the rule can fit, and when the fit fails, it is the best finite
    value so far. ``None`` when the trial reported nothing finite.

    Args:
        study: The trial's study (its direction orients the curve).
        trial: An ``optuna.Trial`` (inside an objective) or a ``FrozenTrial``.
        pruner: The pruner whose rule picks the knee.
    """
    frozen = frozen_trial(study, trial)
    if pruner is None:
        pruner = study.pruner if isinstance(study.pruner, KneePruner) else KneePruner()
    values = curve_of(frozen)
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return None
    decision = pruner.decide(study, frozen)
    if decision is not None and decision.knee_epoch is not None:
        knee = decision.knee_epoch
        if math.isfinite(values[knee]):
            return values[knee]
    sign = -1.0 if _mode(study) == "min" else 1.0
    return values[max(finite, key=lambda i: (sign * values[i], -i))]


def tell_knee(
    study: optuna.Study, trial: Any, *, pruner: KneePruner | None = None
) -> float | None:
    """Finish an ask-and-tell trial as ``COMPLETE`` with its knee value.

    A trial with no finite value is told ``FAIL``. Returns the value told (or ``None``).
    """
    value = knee_value(study, trial, pruner=pruner)
    if value is None:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)
    return value
