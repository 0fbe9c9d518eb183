"""KneePruner: stop a plain Optuna trial once its curve has passed its fitted knee."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from stageplan.knee import KneeDecision, KneeRule

__all__ = ["KneePruner", "curve_of", "knee_value", "tell_knee"]


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
    """Prune a trial once its reported curve has passed its fitted knee by ``delay`` steps.

    After each report the pruner fits the knee rule of *Optimization Planning for 3D
    ConvNets* (Qiu et al., 2021; :class:`stageplan.knee.KneeRule`) to the trial's
    intermediate values and prunes once ``t >= t* + delay``, where ``t*`` is the peak of the
    fitted unimodal curve (the study's direction decides whether the curve is maximised or
    minimised). The values are taken in step order: the i-th reported value is epoch ``i``
    (the first should be the model before training, or the first epoch; gaps in the steps are
    ignored). Other trials are never looked at, so the first trial is pruned like any other.

    The pruner keeps no state: every decision is recomputed from the stored values (Optuna
    rebuilds pruners in every process).

    NaN policy: NaN and inf values are left out of the fit and are never the knee; a trial
    whose last ``delay`` values are all NaN/inf is pruned (it diverged). A single NaN does not
    prune.

    A pruned trial's value is its *last* intermediate value, not the knee. To record the knee
    value, return :func:`knee_value` from the objective instead of raising ``TrialPruned``
    (the trial completes with it), or call :func:`tell_knee` with ask-and-tell.

    Args:
        family: Curve family: ``"exp"`` (default), ``"power"``, ``"multi_power"`` or
            ``"multi_exp"``.
        delay: Steps before the first fit and steps to wait past the knee (>= 1).
        horizon: Steps over which the knee is sought (> ``delay``).
        n_warmup_steps: Keyword-only: never prune before this step (>= 0).
        min_epochs: Keyword-only: never fit before this many values.
        patience: Keyword-only: do not prune while the best observed value is among the
            last ``patience`` values.
        min_delta, smooth, keep, max_noise: Keyword-only robustness options of
            :class:`stageplan.knee.KneeRule` (noise guard, smoothed patience, keep the best
            observed epoch); see ``benchmarks/RESULTS.md`` for measured settings.

    Example:
        >>> import optuna
        >>> from integrations.optuna import KneePruner, knee_value
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
        min_epochs: int | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        smooth: int = 1,
        keep: str = "knee",
        max_noise: float | None = None,
    ) -> None:
        # KneeRule validates every rule option eagerly.
        self._rule = KneeRule(
            family,
            delay=delay,
            horizon=horizon,
            min_epochs=min_epochs,
            patience=patience,
            min_delta=min_delta,
            smooth=smooth,
            keep=keep,
            max_noise=max_noise,
        )
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
        r = self._rule
        return (
            f"KneePruner(family={r.family!r}, delay={r.delay}, horizon={r.horizon}, "
            f"n_warmup_steps={self._n_warmup_steps}, min_epochs={r.min_epochs}, "
            f"patience={r.patience}, min_delta={r.min_delta}, smooth={r.smooth}, "
            f"keep={r.keep!r}, max_noise={r.max_noise})"
        )

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


def _frozen(study: optuna.Study, trial: Any) -> FrozenTrial:
    if isinstance(trial, FrozenTrial):
        return trial
    trial_id = getattr(trial, "_trial_id", None)
    if not isinstance(trial_id, int):
        raise TypeError(f"trial must be an optuna Trial or FrozenTrial, got {trial!r}")
    return study._storage.get_trial(trial_id)


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
    frozen = _frozen(study, trial)
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
