"""The knee stopping rule and its warm-starting tracker."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stageplan._direction import Direction
from stageplan.knee._decision import KneeDecision
from stageplan.knee._evidence import (
    Evidence,
    anneal_forecast,
    bic_weight,
    cosine_lr,
    curve_chance,
    fit_monotone,
    forecast,
    shrunk,
    tie_resolution,
)
from stageplan.knee._families import (
    MONOTONE,
    FloatArray,
    curve,
    get_family,
    knee_of,
    resolve_family,
)
from stageplan.knee._fit import fit_curve

_RULE_KEYS = (
    "family",
    "delay",
    "horizon",
    "min_epochs",
    "max_epochs",
    "patience",
    "method",
    "risk",
    "tolerance",
    "resolution",
    "ceiling",
    "min_delta",
    "smooth",
    "keep",
    "max_noise",
    "schedule",
)
_KEEPS = ("auto", "knee", "best")
_METHODS = ("evidence", "paper")
_DEFAULT_KEEP = {"evidence": "best", "paper": "knee"}
DEFAULT_RISK = 0.2
"""Default ``risk`` of the evidence rule."""
# A gain below this share of the metric's scale never counts: an exactly flat curve is done.
_MIN_GAIN = 1e-4
# Degrees of freedom the evidence needs beyond the fit's parameters: an exact fit (no residual)
# would forecast with no uncertainty at all.
_MIN_DOF = 2
DEFAULT_TOLERANCE = 1.0
"""Default ``tolerance`` (noise standard deviations) of the evidence rule."""
SCHEDULES = ("constant", "cosine")
"""The learning-rate schedules the evidence rule knows (``schedule=``)."""
ANNEALED = 0.1
"""Under ``schedule="cosine"`` the evidence is drawn from the epochs whose learning rate is at
most this share of the starting one: the regime of a stage after a step drop (a tenth of the
starting LR), on which the evidence rule was tuned."""
ANNEAL_FIT = 0.3
"""Under ``schedule="cosine"`` the evidence fits the value as a quadratic in the LR over the
epochs whose LR is at most this share of the starting one (epoch 127 of 200 on): the quadratic
needs a stretch of the anneal to see its curvature (see :func:`_evidence.anneal_forecast`)."""


def anneal_origin(max_epochs: int, share: float = ANNEALED) -> int:
    """First epoch of a cosine schedule over ``max_epochs`` whose LR is at most ``share``.

    The LR after epoch ``t`` is ``(1 + cos(pi t / max_epochs)) / 2`` of the start, so this is
    the first integer ``t >= max_epochs * acos(2 share - 1) / pi``.

    Example:
        >>> anneal_origin(200), anneal_origin(10), anneal_origin(200, ANNEAL_FIT)
        (160, 8, 127)
    """
    x = max_epochs * math.acos(2.0 * share - 1.0) / math.pi
    return min(max_epochs, math.ceil(x - 1e-9))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value)


def _check_optional_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer or None, got {value!r}.")
    return _check_int(name, value, minimum)


def _check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _check_mode(mode: str) -> str:
    return Direction.of(mode).mode


def _oriented(values: Sequence[float] | FloatArray, mode: str) -> FloatArray:
    """Values as a float array in the "larger is better" orientation."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be a sequence of numbers, got {values!r}.") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            "values must be a non-empty 1-D sequence (values[0] = epoch 0), "
            f"got shape {arr.shape}."
        )
    return Direction.of(mode).sign * arr


def best_observed_epoch(z: FloatArray) -> int:
    """Epoch of the best finite value of ``z`` (larger is better; earliest on ties), else 0."""
    finite = np.isfinite(z)
    if not finite.any():
        return 0
    return int(np.argmax(np.where(finite, z, -np.inf)))


def trailing_mean(z: FloatArray, window: int) -> FloatArray:
    """Mean of the finite values in ``z[t - window + 1 .. t]`` for each ``t`` (``-inf`` if none).

    Example:
        >>> trailing_mean(np.array([0.0, 2.0, np.nan, 4.0]), 2).tolist()
        [0.0, 1.0, 2.0, 4.0]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window!r}.")
    padded = np.concatenate((np.full(window - 1, np.nan), np.asarray(z, dtype=np.float64)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    finite = np.isfinite(windows)
    n = finite.sum(axis=1)
    total = np.where(finite, windows, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), -np.inf)


def last_improvement_epoch(z: FloatArray, min_delta: float = 0.0, smooth: int = 1) -> int:
    """Last epoch at which the (smoothed) curve beat its running best by more than ``min_delta``.

    ``z`` is oriented so that larger is better. The curve is first replaced by its trailing mean
    over ``smooth`` epochs; the running best is updated only by a value that exceeds it by more
    than ``min_delta`` (as in Keras' ``EarlyStopping``). With ``min_delta=0`` and ``smooth=1``
    this is the epoch of the best finite value (earliest on ties), and 0 when none is finite.

    Example:
        >>> z = np.array([0.0, 5.0, 5.1, 5.2, 5.3, 7.0, 7.05])
        >>> last_improvement_epoch(z), last_improvement_epoch(z, min_delta=0.5)
        (6, 5)
    """
    s = trailing_mean(z, smooth)
    best = -np.inf
    last = 0
    for e, value in enumerate(s.tolist()):
        if value > best + min_delta and np.isfinite(value):
            best, last = value, e
    return last


def local_noise(z: FloatArray, window: int) -> float:
    """Epoch-to-epoch noise of the last ``window`` values: ``std(diff) / sqrt(2)``.

    Differences are taken between consecutive finite values; ``nan`` with fewer than three.

    Example:
        >>> round(local_noise(np.array([0.0, 1.0, 0.0, 1.0, 0.0]), 5), 3)
        0.707
    """
    recent = z[-window:]
    recent = recent[np.isfinite(recent)]
    if recent.size < 3:
        return math.nan
    return float(np.std(np.diff(recent)) / math.sqrt(2.0))


def nearest_finite_epoch(family: str, params: tuple[float, ...], epoch: int, z: FloatArray) -> int:
    """``epoch`` if ``z[epoch]`` is finite, else the finite epoch with the highest fitted value."""
    if np.isfinite(z[epoch]):
        return epoch
    finite = np.flatnonzero(np.isfinite(z))
    fitted = curve(family, params, finite.astype(np.float64))
    return int(finite[int(np.argmax(fitted))])


class KneeRule:
    """When to stop a transition and which of its checkpoints to keep.

    After every epoch ``t`` of a transition a curve ``f`` of one of the Table-1 families (see
    :mod:`stageplan.knee._families`) is fitted to the values ``y_0..y_t`` by bounded least
    squares. ``values[0]`` is the start checkpoint evaluated under the new settings,
    ``values[t]`` the value after epoch ``t``. Two stopping tests are available:

    - ``method="evidence"`` (the default): stop once the fitted curve, with its uncertainty,
      says that the chance of *any* epoch left in the budget beating the best observed value by
      more than ``max(resolution, tolerance * noise)`` is below ``risk``. The forecast of epoch
      ``tau`` is normal with mean ``f(tau)`` and variance ``var_f(tau) + noise^2``: ``var_f``
      is the delta-method variance of the fit (parameter covariance ``s^2 (J^T J)^-1``),
      ``noise`` the fit's residual standard deviation (see :mod:`stageplan.knee._evidence`).
      The budget is ``max_epochs``, or ``2 t`` without one. A flat or saturated curve (no
      residual noise, no trend) stops as soon as the fit is made; a metric at its ``ceiling``
      stops at once. The kept checkpoint (``keep="auto"``) is the observed epoch with the
      highest estimated true value: each observation shrunk toward the fitted curve by their
      precisions, so the best observed epoch where the noise is small and the fitted peak where
      the noise dominates.
    - ``method="paper"``: the rule of Qiu et al. (ICML 2021): take ``t* = argmax f`` over
      ``[0, horizon)`` and stop once ``t >= t* + delay``, keeping epoch ``t*``.
      :meth:`paper` builds it with the authors' settings.

    The decision is a short chain of guards, in this order:

    1. ``"diverged"``: ``t >= delay`` and the last ``delay`` values are all NaN/inf: stop and keep
       the best finite epoch (or 0). This overrides ``min_epochs``.
    2. ``"ceiling"`` (evidence only, ``t >= 1``): the best value reached ``ceiling`` (within half
       the ``resolution``): nothing is left to gain; keep the best observed epoch.
    3. ``"warmup"``: ``t < delay`` or ``t < min_epochs`` (under ``schedule="cosine"``:
       ``t < origin + delay``, see ``schedule``): no fit yet (unless ``max_epochs`` is
       reached: then ``"max_epochs"`` with the best observed epoch).
    4. ``"fit_failed"``: the fit raised or did not converge; training goes on (again unless
       ``max_epochs`` is reached, which keeps the best observed epoch).
    5. ``"converged"`` (evidence) or ``"knee"`` (paper: ``t >= t* + delay``): stop, unless a
       guard (``max_noise``, ``patience``) holds the stop back.
    6. ``"max_epochs"``: ``t >= max_epochs``.
    7. ``"continue"``.

    NaN/inf policy: non-finite values are left out of the fit and can never be kept; when
    ``t*`` falls on one, the finite epoch with the highest fitted value is kept instead.

    Args:
        family: Curve family: ``"exp"`` (default), ``"power"``, ``"multi_power"`` or
            ``"multi_exp"`` (aliases such as ``"exponential"`` accepted).
        delay: ``T``: epochs before the first fit (>= 1); the paper's rule also waits ``T``
            epochs past the peak.
        horizon: Epochs over which ``t*`` is sought, ``[0, horizon)``; must exceed ``delay``.
            The evidence rule never looks past it either.
        min_epochs: Never fit (so never stop on the fit) before this epoch.
        max_epochs: Always stop at this epoch (``>= min_epochs`` and ``>= 1``); the evidence
            rule's budget.
        method: Keyword-only: ``"evidence"`` (default) or ``"paper"``.
        risk: Keyword-only, evidence: stop once the chance of a gain is below this, in (0, 1).
        tolerance: Keyword-only, evidence: a gain counts when it exceeds ``tolerance`` times
            the noise of one observation (>= 0).
        resolution: Keyword-only, evidence: the smallest change the metric can show (e.g.
            ``1 / n`` for an accuracy over ``n`` validation videos; 0: continuous). A gain
            counts only when it exceeds it.
        ceiling: Keyword-only, evidence: the best value the metric can take (1.0 for an
            accuracy fraction, 0 for an error), or ``None``.
        patience: Keyword-only guard: do not stop while the curve improved within the last
            ``patience`` epochs (``None``: no guard). By default an improvement is a new best
            observed value.
        min_delta: Keyword-only, needs ``patience``: only a gain larger than ``min_delta``
            (in the metric's units) over the running best counts as an improvement (default
            0). Keeps slow creep after a learning-rate drop from holding the stop back.
        smooth: Keyword-only, needs ``patience``: judge improvements on the trailing mean of
            the last ``smooth`` values (default 1: the raw values).
        keep: Keyword-only: the checkpoint a stop keeps: ``"auto"`` (the evidence rule's
            default, see above), ``"knee"`` (the paper's ``t*``, its default) or ``"best"``
            (the best observed epoch so far).
        max_noise: Keyword-only: do not stop while the epoch-to-epoch noise of the last
            ``2 * delay`` values (``std(diff) / sqrt(2)``, in the metric's units) exceeds
            ``max_noise`` (``None``: off).
        schedule: Keyword-only, evidence: the learning-rate schedule within the budget.
            ``"constant"`` (default): the LR the curve was trained at holds to ``max_epochs``
            (a stage of a step schedule), so the curve so far speaks for the epochs left.
            ``"cosine"``: the LR anneals to 0 at ``max_epochs`` (required), so a flat phase at
            a high LR says nothing about the epochs left. The rule never stops on the
            evidence before ``origin + delay``, ``origin`` the first epoch whose LR is at most
            ``ANNEALED`` (a tenth) of the start (epoch 160 of 200); the family is fitted to the
            epochs from ``origin`` on (``KneeDecision.params`` are those of that window, its
            epoch 0 is ``origin``). The evidence models the value as a quadratic in the LR
            over the epochs whose LR is at most ``ANNEAL_FIT`` of the start, and stops once the
            chance that the *curve* (not one noisy epoch) beats the best observed value by
            more than the threshold before the budget ends is below ``risk``; it keeps the
            best observed epoch.

    The guarded variant of the paper's rule measured in ``benchmarks/RESULTS.md`` is
    ``KneeRule.paper(max_noise=1.0, patience=20, min_delta=0.5, smooth=5, keep="best")``
    (thresholds in points of accuracy %).

    Example:
        >>> import numpy as np
        >>> t = np.arange(60)
        >>> values = 80 - 60 * np.exp(-0.2 * t) + 0.4 * t - 0.01 * t**2
        >>> paper = KneeRule.paper("exp", delay=10)
        >>> d = paper.decide(values[:30])
        >>> d.stop, d.reason, d.knee_epoch
        (False, 'continue', 24)
        >>> d = paper.decide(values[:35])
        >>> d.stop, d.reason, d.knee_epoch
        (True, 'knee', 24)
        >>> d = KneeRule(max_epochs=60).decide(values[:30])
        >>> d.stop, d.reason, d.knee_epoch
        (True, 'converged', 24)
    """

    def __init__(
        self,
        family: str = "exp",
        delay: int = 10,
        horizon: int = 1000,
        min_epochs: int | None = None,
        max_epochs: int | None = None,
        *,
        method: str = "evidence",
        risk: float = DEFAULT_RISK,
        tolerance: float = DEFAULT_TOLERANCE,
        resolution: float = 0.0,
        ceiling: float | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        smooth: int = 1,
        keep: str | None = None,
        max_noise: float | None = None,
        schedule: str = "constant",
    ) -> None:
        self._family = resolve_family(family)
        self._delay = _check_int("delay", delay, 1)
        horizon_ = _check_int("horizon", horizon, 1)
        if horizon_ <= self._delay:
            raise ValueError(f"horizon must be > delay={self._delay}, got {horizon!r}.")
        self._horizon = horizon_
        self._min_epochs = _check_optional_int("min_epochs", min_epochs, 0)
        self._max_epochs = _check_optional_int("max_epochs", max_epochs, 1)
        if (
            self._min_epochs is not None
            and self._max_epochs is not None
            and self._max_epochs < self._min_epochs
        ):
            raise ValueError(
                f"max_epochs must be >= min_epochs={self._min_epochs}, got {max_epochs!r}."
            )
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
        self._method = method
        self._risk = _check_nonnegative("risk", risk)
        if not 0.0 < self._risk < 1.0:
            raise ValueError(f"risk must lie in (0, 1), got {risk!r}.")
        self._tolerance = _check_nonnegative("tolerance", tolerance)
        self._resolution = _check_nonnegative("resolution", resolution)
        if ceiling is not None and (
            isinstance(ceiling, bool)
            or not isinstance(ceiling, (int, float, np.integer, np.floating))
            or not math.isfinite(ceiling)
        ):
            raise ValueError(f"ceiling must be a finite number or None, got {ceiling!r}.")
        self._ceiling = None if ceiling is None else float(ceiling)
        if method == "paper" and (
            self._risk != DEFAULT_RISK
            or self._tolerance != DEFAULT_TOLERANCE
            or self._resolution != 0.0
            or self._ceiling is not None
        ):
            raise ValueError(
                "risk, tolerance, resolution and ceiling belong to method='evidence'; got "
                f"method='paper' with risk={risk!r}, tolerance={tolerance!r}, "
                f"resolution={resolution!r}, ceiling={ceiling!r}."
            )
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
        if schedule != "constant" and (method != "evidence" or self._max_epochs is None):
            raise ValueError(
                f"schedule={schedule!r} needs method='evidence' and the schedule's length as "
                f"max_epochs; got method={method!r}, max_epochs={max_epochs!r}."
            )
        self._schedule = schedule
        self._patience = _check_optional_int("patience", patience, 1)
        self._min_delta = _check_nonnegative("min_delta", min_delta)
        self._smooth = _check_int("smooth", smooth, 1)
        self._max_noise = (
            None if max_noise is None else _check_nonnegative("max_noise", max_noise)
        )
        default_keep = _DEFAULT_KEEP[method]
        keep_ = default_keep if keep is None else keep
        if keep_ not in _KEEPS:
            raise ValueError(f"keep must be one of {_KEEPS}, got {keep!r}.")
        if method == "paper" and keep_ == "auto":
            raise ValueError("keep='auto' needs method='evidence'; the paper's rule keeps "
                             "'knee' or 'best'.")
        self._keep = keep_
        if self._patience is None and (self._min_delta != 0.0 or self._smooth != 1):
            raise ValueError(
                "min_delta and smooth refine the patience guard and need patience; got "
                f"patience=None, min_delta={min_delta!r}, smooth={smooth!r}."
            )

    @classmethod
    def paper(
        cls,
        family: str = "exp",
        delay: int = 10,
        horizon: int = 1000,
        min_epochs: int | None = None,
        max_epochs: int | None = None,
        **guards: Any,
    ) -> KneeRule:
        """The authors' rule: stop once ``t >= t* + delay``, keep ``t*`` (``method="paper"``).

        With the defaults it is exactly the rule of the paper's public code (exp family,
        ``T = 10``, ``t*`` over ``[0, 1000)``). ``guards`` are the keyword-only guard options
        (``patience``, ``min_delta``, ``smooth``, ``keep``, ``max_noise``).

        Example:
            >>> KneeRule.paper().method, KneeRule.paper().keep
            ('paper', 'knee')
        """
        return cls(family, delay, horizon, min_epochs, max_epochs, method="paper", **guards)

    # -- configuration ------------------------------------------------------------------------

    @property
    def family(self) -> str:
        """Canonical family name."""
        return self._family

    @property
    def delay(self) -> int:
        """Epochs before the first fit (and, for the paper's rule, to wait past the peak)."""
        return self._delay

    @property
    def horizon(self) -> int:
        """Epochs ``[0, horizon)`` over which the peak is sought."""
        return self._horizon

    @property
    def min_epochs(self) -> int | None:
        """No fit before this epoch."""
        return self._min_epochs

    @property
    def max_epochs(self) -> int | None:
        """Hard bound on the epochs of a transition."""
        return self._max_epochs

    @property
    def method(self) -> str:
        """``"evidence"`` (default) or ``"paper"``."""
        return self._method

    @property
    def risk(self) -> float:
        """The evidence rule stops once the chance of a gain is below this."""
        return self._risk

    @property
    def tolerance(self) -> float:
        """A gain counts when it exceeds this many noise standard deviations."""
        return self._tolerance

    @property
    def resolution(self) -> float:
        """The smallest change the metric can show (0: continuous)."""
        return self._resolution

    @property
    def ceiling(self) -> float | None:
        """The best value the metric can take, or ``None``."""
        return self._ceiling

    @property
    def patience(self) -> int | None:
        """Guard against stopping while the observed best is recent."""
        return self._patience

    @property
    def min_delta(self) -> float:
        """Smallest gain over the running best that counts as an improvement."""
        return self._min_delta

    @property
    def smooth(self) -> int:
        """Trailing-mean window of the values the patience guard looks at."""
        return self._smooth

    @property
    def max_noise(self) -> float | None:
        """No stop while the recent epoch-to-epoch noise exceeds this (``None``: off)."""
        return self._max_noise

    @property
    def schedule(self) -> str:
        """The learning-rate schedule within the budget: ``"constant"`` or ``"cosine"``."""
        return self._schedule

    def evidence_origin(self) -> int:
        """First epoch the evidence is drawn from: 0, or under ``schedule="cosine"`` the first
        epoch whose LR is at most ``ANNEALED`` of the start (see :func:`anneal_origin`)."""
        if self._schedule == "cosine" and self._max_epochs is not None:
            return anneal_origin(self._max_epochs)
        return 0

    @property
    def keep(self) -> str:
        """Which checkpoint a stop keeps: ``"auto"``, ``"knee"`` (``t*``) or ``"best"``."""
        return self._keep

    def to_dict(self) -> dict[str, Any]:
        """Return the rule's configuration as a JSON-safe dict.

        The paper's rule (``method="paper"``) writes no ``method`` key, and its guard options
        only when they differ from their defaults, so its dict is the same as before the
        evidence rule existed; :meth:`from_dict` reads a dict without ``method`` as the paper's
        rule. The evidence rule writes all of its options.
        """
        data: dict[str, Any] = {
            "family": self._family,
            "delay": self._delay,
            "horizon": self._horizon,
            "min_epochs": self._min_epochs,
            "max_epochs": self._max_epochs,
            "patience": self._patience,
        }
        if self._method == "evidence":
            data.update(
                method="evidence",
                risk=self._risk,
                tolerance=self._tolerance,
                resolution=self._resolution,
                ceiling=self._ceiling,
            )
        if self._min_delta != 0.0:
            data["min_delta"] = self._min_delta
        if self._smooth != 1:
            data["smooth"] = self._smooth
        if self._keep != _DEFAULT_KEEP[self._method]:
            data["keep"] = self._keep
        if self._max_noise is not None:
            data["max_noise"] = self._max_noise
        if self._schedule != "constant":
            data["schedule"] = self._schedule
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KneeRule:
        """Rebuild a rule from :meth:`to_dict` output (validated like the constructor).

        A dict without ``method`` is the paper's rule (dicts written before the evidence rule).

        Raises:
            ValueError: Unknown keys or invalid values.
        """
        unknown = sorted(set(data) - set(_RULE_KEYS))
        if unknown:
            raise ValueError(
                f"Unknown KneeRule keys {unknown}; expected a subset of {_RULE_KEYS}."
            )
        kwargs = dict(data)
        kwargs.setdefault("method", "paper")
        keyword_only = (
            "method", "risk", "tolerance", "resolution", "ceiling",
            "patience", "min_delta", "smooth", "keep", "max_noise", "schedule",
        )
        extra = {k: kwargs.pop(k) for k in keyword_only if k in kwargs}
        return cls(**kwargs, **extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KneeRule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"KneeRule({args})"

    # -- decisions ----------------------------------------------------------------------------

    def tracker(self, mode: str = "max") -> KneeTracker:
        """Return a :class:`KneeTracker` that feeds values one epoch at a time (warm starts)."""
        return KneeTracker(self, mode=mode)

    def replay(self, values: Sequence[float] | FloatArray, *, mode: str = "max") -> KneeDecision:
        """What the rule would have done on a recorded curve: ``values`` are fed to a fresh
        :meth:`tracker` one epoch at a time until it says stop.

        Returns:
            The decision at the first stop, or after the last value if it never stops.

        Raises:
            ValueError: ``mode`` is not "max"/"min" or ``values`` is empty.

        Example:
            >>> curve = [0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
            >>> d = KneeRule(delay=2).replay(curve)
            >>> d.stop, d.reason, d.epoch, d.knee_epoch
            (True, 'converged', 6, 2)
            >>> KneeRule(delay=2, ceiling=1.0).replay(curve).epoch  # told the metric's best
            2
        """
        tracker = self.tracker(mode=mode)
        decision: KneeDecision | None = None
        for value in values:
            decision = tracker.update(float(value))
            if decision.stop:
                break
        if decision is None:
            raise ValueError("values must hold at least one epoch's value, got none")
        return decision

    def decide(
        self,
        values: Sequence[float] | FloatArray,
        *,
        mode: str = "max",
        init: Sequence[float] | None = None,
    ) -> KneeDecision:
        """Decide whether to stop after epoch ``t = len(values) - 1``.

        Args:
            values: ``values[0]`` is the epoch-0 value (start checkpoint under the new
                settings), ``values[t]`` the value after epoch ``t``.
            mode: ``"max"`` for accuracies, ``"min"`` for losses/perplexity (the negated curve
                is fitted; ``fitted_value`` is reported in the original orientation).
            init: Parameters to warm-start the fit from (``KneeDecision.params`` of the last
                epoch); a failed warm fit falls back to a cold start.

        Returns:
            A :class:`KneeDecision`.

        Raises:
            ValueError: ``mode`` is not "max"/"min", ``values`` is empty or not 1-D, or
                ``init`` has the wrong length.
        """
        z = _oriented(values, _check_mode(mode))
        sign = Direction.of(mode).sign
        t = int(z.size - 1)
        at_max = self._max_epochs is not None and t >= self._max_epochs
        best = best_observed_epoch(z)

        if t >= self._delay and not np.isfinite(z[-self._delay :]).any():
            return KneeDecision(
                True,
                "diverged",
                t,
                knee_epoch=best,
                message=f"the last {self._delay} values are all NaN/inf",
            )
        if self._method == "evidence" and self._ceiling is not None and t >= 1:
            top = sign * self._ceiling
            if np.isfinite(z[best]) and z[best] >= top - self._resolution / 2.0:
                return KneeDecision(
                    True,
                    "ceiling",
                    t,
                    knee_epoch=best,
                    message=f"epoch {best} reached the metric's ceiling {self._ceiling:g}",
                )
        # The fit and the evidence see the epochs from ``origin`` on (0 unless the schedule says
        # the LR still falls), counted from there.
        origin = self.evidence_origin()
        if t - origin < self._delay or (self._min_epochs is not None and t < self._min_epochs):
            if at_max:
                return KneeDecision(True, "max_epochs", t, knee_epoch=best, message="no fit yet")
            message = (
                f"the cosine schedule's LR is above {ANNEALED:g} of its start before epoch "
                f"{origin}"
                if t < origin
                else ""
            )
            return KneeDecision(False, "warmup", t, message=message)

        zw = z[origin:]
        epochs = np.arange(zw.size, dtype=np.float64)
        fit = fit_curve(epochs, zw, self._family, init=init)
        found: int | None = None
        fit_message = fit.message
        if fit.success:
            try:
                found = knee_of(self._family, fit.params, self._horizon)
            except ValueError as exc:
                fit_message = f"{fit.message}; {exc}"
        if found is None:
            if at_max:
                return KneeDecision(
                    True, "max_epochs", t, knee_epoch=best, message=f"fit failed: {fit_message}"
                )
            return KneeDecision(False, "fit_failed", t, message=fit_message)

        peak = origin + found
        params = fit.params
        knee = origin + nearest_finite_epoch(self._family, params, min(found, t - origin), zw)
        evidence = None
        n_finite = int(np.count_nonzero(np.isfinite(zw)))
        n_needed = get_family(self._family).n_params + _MIN_DOF
        if self._method == "evidence" and n_finite >= n_needed:
            evidence = (
                self._anneal_evidence(z, float(z[best]))
                if self._schedule == "cosine"
                else self._evidence(zw, params, float(z[best]), origin)
            )
            if self._keep == "auto":
                knee = evidence.keep
        if self._keep == "best":
            knee = best

        def make(stop: bool, reason: str, knee_epoch: int | None, message: str) -> KneeDecision:
            at = knee_epoch if knee_epoch is not None else peak
            # the fit covers the epochs from ``origin`` on; none is claimed for earlier ones
            fitted = (
                sign * float(curve(self._family, params, float(at - origin)))
                if at >= origin
                else None
            )
            return KneeDecision(
                stop,
                reason,
                t,
                knee_epoch=knee_epoch,
                peak_epoch=peak,
                fitted_value=fitted,
                params=params,
                rmse=fit.rmse,
                message=message,
                gain_chance=None if evidence is None else evidence.chance,
            )

        if self._method == "evidence" and evidence is None:
            if at_max:
                return make(True, "max_epochs", knee, f"max_epochs={self._max_epochs} reached")
            return make(
                False,
                "continue",
                knee,
                f"{n_finite} finite values; the evidence needs {n_needed} (the family's "
                f"parameters + {_MIN_DOF})",
            )
        if evidence is not None:
            ready = evidence.chance < self._risk
            reason = "converged"
            why = (
                f"chance {evidence.chance:.3g} < risk={self._risk:g} of a gain over "
                f"{evidence.threshold:.3g} by epoch {evidence.end}"
            )
        else:
            ready = t >= peak + self._delay
            reason = "knee"
            why = f"t={t} >= t*={peak} + delay={self._delay}"
        held = self._held_back(z) if ready else None
        if evidence is not None and at_max:
            ready = False  # no epoch is left to forecast: the budget, not the evidence, stops
        if ready and held is None:
            return make(True, reason, knee, why)
        if at_max:
            return make(True, "max_epochs", knee, f"max_epochs={self._max_epochs} reached")
        if held is not None:
            return make(False, "continue", knee, f"{why}, but {held}")
        if evidence is not None:
            return make(
                False,
                "continue",
                knee,
                f"chance {evidence.chance:.3g} >= risk={self._risk:g} of a gain over "
                f"{evidence.threshold:.3g} by epoch {evidence.end}",
            )
        if peak > t:
            return make(False, "continue", None, f"fitted peak t*={peak} lies ahead")
        return make(False, "continue", knee, f"waiting for t*={peak} + delay={self._delay}")

    def _held_back(self, z: FloatArray) -> str | None:
        """Why a guard holds a stop back (``None``: no guard does)."""
        if self._max_noise is not None:
            noise = local_noise(z, 2 * self._delay)
            if noise > self._max_noise:
                return (
                    f"the noise {noise:.3g} of the last {2 * self._delay} values exceeds "
                    f"max_noise={self._max_noise}"
                )
        if self._patience is not None:
            improved = last_improvement_epoch(z, self._min_delta, self._smooth)
            if z.size - 1 - improved < self._patience:
                return (
                    f"the last improvement at epoch {improved} is within "
                    f"patience={self._patience}"
                )
        return None

    def _evidence(
        self, z: FloatArray, params: tuple[float, ...], top: float, origin: int
    ) -> Evidence:
        """The forecast of the epochs left by two fitted curves (see :mod:`._evidence`).

        ``z`` holds the epochs from ``origin`` on (epoch ``origin + i`` is ``z[i]``), ``top``
        is the best value observed so far. The rule's family and the monotone
        ``a1 + a2 (t+1)^a3`` are weighted by their Schwarz (BIC) weights: the family wins where
        the data show a knee or a decline, the monotone curve where they show a slow,
        heavy-tailed rise.
        """
        t = z.size - 1
        finite = np.flatnonzero(np.isfinite(z))
        tf = finite.astype(np.float64)
        y = z[finite]
        end = self._budget_end(origin + t) - origin
        ahead = np.arange(t + 1, end + 1, dtype=np.float64)
        fam = get_family(self._family)
        auto = self._keep == "auto"
        main = forecast(fam, np.asarray(params), tf, y, ahead, fitted_sd=auto)
        threshold = self._gain_threshold(y, top, main.noise)
        level = top + threshold
        chance = main.chance(level)
        if finite.size >= MONOTONE.n_params + _MIN_DOF:
            other = forecast(MONOTONE, fit_monotone(tf, y), tf, y, ahead, fitted_sd=False)
            w = bic_weight(
                (main.noise, fam.n_params), (other.noise, MONOTONE.n_params), finite.size
            )
            chance = (1.0 - w) * chance + w * other.chance(level)
        keep = origin + best_observed_epoch(z)
        if auto:
            est = shrunk(y, main.fitted, main.fitted_sd, main.noise)
            if np.any(np.isfinite(est)):
                keep = origin + int(finite[int(np.argmax(est))])
        return Evidence(chance, threshold, main.noise, origin + end, keep)

    def _gain_threshold(self, y: FloatArray, top: float, noise: float) -> float:
        """The gain over ``top`` that counts, for fitted values ``y`` with residual ``noise``:
        ``max(resolution, tolerance * noise)`` (the resolution read off ``y`` when not given),
        and never below ``_MIN_GAIN`` of the metric's scale."""
        resolution = self._resolution if self._resolution > 0 else tie_resolution(y)
        scale = max(abs(top), float(np.ptp(y)))
        return max(resolution, self._tolerance * noise, _MIN_GAIN * scale)

    def _anneal_evidence(self, z: FloatArray, top: float) -> Evidence:
        """The evidence under ``schedule="cosine"``: the value as a quadratic in the LR over
        the epochs from ``anneal_origin(max_epochs, ANNEAL_FIT)`` on (:func:`anneal_forecast`),
        and the chance that the curve, at its best epoch ahead, beats ``top`` by more than
        ``max(resolution, tolerance * noise)`` (:func:`curve_chance`). The best observed epoch
        is kept (``keep="auto"`` too: the quadratic has no peak to prefer).
        """
        assert self._max_epochs is not None  # checked in __init__ for schedule="cosine"
        budget = self._max_epochs
        t = z.size - 1
        start = anneal_origin(budget, ANNEAL_FIT)
        epochs = np.arange(start, t + 1, dtype=np.float64)
        window = z[start:]
        finite = np.isfinite(window)
        epochs, y = epochs[finite], window[finite]
        if y.size < 3 + _MIN_DOF:  # too few values for a quadratic with residual noise
            return Evidence(1.0, math.nan, math.nan, budget, best_observed_epoch(z))
        ahead = np.arange(t + 1, budget + 1, dtype=np.float64)
        f = anneal_forecast(cosine_lr(epochs, budget), y, cosine_lr(ahead, budget))
        threshold = self._gain_threshold(y, top, f.noise)
        chance = curve_chance(f.mean, f.sd, top + threshold)
        return Evidence(chance, threshold, f.noise, budget, best_observed_epoch(z))

    def _budget_end(self, t: int) -> int:
        """Last epoch the evidence rule looks at: ``max_epochs``, or ``2 t`` without one."""
        end = self._max_epochs if self._max_epochs is not None else 2 * t
        return max(min(end, self._horizon - 1), t)


class KneeTracker:
    """Feeds a :class:`KneeRule` one value per epoch, warm-starting each fit from the last.

    A warm fit that fails falls back to the cold starts. On short prefixes (a few epochs past
    ``delay``) a warm start can settle in a neighbouring local minimum of the least-squares
    problem; its decisions matched cold ``decide`` calls in the tests, its RMSE within 3%.

    Args:
        rule: The rule to apply.
        mode: ``"max"`` or ``"min"``.

    Example:
        >>> tracker = KneeRule("exp", delay=3).tracker()
        >>> [tracker.update(v).reason for v in (10.0, 50.0, 60.0)]
        ['warmup', 'warmup', 'warmup']
    """

    def __init__(self, rule: KneeRule, mode: str = "max") -> None:
        if not isinstance(rule, KneeRule):
            raise ValueError(f"rule must be a KneeRule, got {rule!r}.")
        self._rule = rule
        self._mode = _check_mode(mode)
        self._values: list[float] = []
        self._params: tuple[float, ...] | None = None
        self._decision: KneeDecision | None = None

    @property
    def rule(self) -> KneeRule:
        """The rule being applied."""
        return self._rule

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``."""
        return self._mode

    @property
    def values(self) -> tuple[float, ...]:
        """Every value fed so far (``values[0]`` is epoch 0)."""
        return tuple(self._values)

    @property
    def decision(self) -> KneeDecision | None:
        """The last decision, or ``None`` before the first update."""
        return self._decision

    def update(self, value: float) -> KneeDecision:
        """Record the value of the next epoch and return the rule's decision."""
        try:
            self._values.append(float(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"value must be a number, got {value!r}.") from exc
        decision = self._rule.decide(self._values, mode=self._mode, init=self._params)
        if decision.params is not None:
            self._params = decision.params
        self._decision = decision
        return decision
