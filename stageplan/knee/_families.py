"""The four unimodal curve families of the knee rule (Qiu et al., ICML 2021, Table 1).

Every family is ``f(t) = g(t) + h(t)`` where ``g`` is increasing, concave and bounded and
``h(t) = a_lin * t + a_quad * t**2`` with ``a_quad <= 0``. Both parts are concave, so ``f`` is
concave in ``t`` and therefore unimodal: once it starts to fall it never rises again.

Parameters are always expressed in epochs and in the metric's own units (in the "larger is
better" orientation the rule fits); the order of a family's parameters is ``param_names``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Bounds of the (non-positive) rate/exponent parameters, per epoch. A rate of -10 per epoch is
# already a step at epoch 1, so the bound only keeps the solver away from overflow.
_RATE_LOWER = -10.0


@dataclass(frozen=True)
class Family:
    """One curve family: its formula, Jacobian, bounds and data-driven initial guesses.

    Attributes:
        name: Canonical name ("exp", "power", "multi_power" or "multi_exp").
        param_names: Names of the parameters, in the order of the parameter vector.
        lower: Lower bound of each parameter (``-inf`` where free).
        upper: Upper bound of each parameter (``+inf`` where free).
        value: ``value(params, t)`` evaluates the curve at epochs ``t``.
        jacobian: ``jacobian(params, t)`` is the ``(len(t), n_params)`` derivative matrix.
        linear: Indices of the parameters the curve is linear in (the rest are rates).
    """

    name: str
    param_names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    value: Callable[[FloatArray, FloatArray], FloatArray]
    jacobian: Callable[[FloatArray, FloatArray], FloatArray]
    linear: tuple[int, ...]

    @property
    def n_params(self) -> int:
        """Number of parameters of the family."""
        return len(self.param_names)


# ---------------------------------------------------------------------------------------------
# Formulas. ``p`` is the parameter vector, ``t`` the epochs (float array).


def _exp_value(p: FloatArray, t: FloatArray) -> FloatArray:
    return p[0] + p[1] * np.exp(p[2] * t) + p[3] * t + p[4] * t * t  # type: ignore[no-any-return]


def _exp_jac(p: FloatArray, t: FloatArray) -> FloatArray:
    e = np.exp(p[2] * t)
    return np.column_stack((np.ones_like(t), e, p[1] * t * e, t, t * t))


def _power_value(p: FloatArray, t: FloatArray) -> FloatArray:
    return p[0] + p[1] * (t + 1.0) ** p[2] + p[3] * t + p[4] * t * t  # type: ignore[no-any-return]


def _power_jac(p: FloatArray, t: FloatArray) -> FloatArray:
    log_t1 = np.log1p(t)
    q = np.exp(p[2] * log_t1)
    return np.column_stack((np.ones_like(t), q, p[1] * q * log_t1, t, t * t))


def _multi_exp_value(p: FloatArray, t: FloatArray) -> FloatArray:
    return (  # type: ignore[no-any-return]
        p[0] + p[1] * np.exp(p[2] * t) + p[3] * np.exp(p[4] * t) + p[5] * t + p[6] * t * t
    )


def _multi_exp_jac(p: FloatArray, t: FloatArray) -> FloatArray:
    e1 = np.exp(p[2] * t)
    e2 = np.exp(p[4] * t)
    return np.column_stack((np.ones_like(t), e1, p[1] * t * e1, e2, p[3] * t * e2, t, t * t))


def _multi_power_value(p: FloatArray, t: FloatArray) -> FloatArray:
    t1 = t + 1.0
    return (  # type: ignore[no-any-return]
        p[0] + p[1] * t1 ** p[2] + p[3] * t1 ** p[4] + p[5] * t + p[6] * t * t
    )


def _multi_power_jac(p: FloatArray, t: FloatArray) -> FloatArray:
    log_t1 = np.log1p(t)
    q1 = np.exp(p[2] * log_t1)
    q2 = np.exp(p[4] * log_t1)
    return np.column_stack(
        (np.ones_like(t), q1, p[1] * q1 * log_t1, q2, p[3] * q2 * log_t1, t, t * t)
    )


def _pow3_value(p: FloatArray, t: FloatArray) -> FloatArray:
    return p[0] + p[1] * (t + 1.0) ** p[2]  # type: ignore[no-any-return]


def _pow3_jac(p: FloatArray, t: FloatArray) -> FloatArray:
    log_t1 = np.log1p(t)
    q = np.exp(p[2] * log_t1)
    return np.column_stack((np.ones_like(t), q, p[1] * q * log_t1))


_INF = float("inf")

MONOTONE = Family(
    name="pow3",
    param_names=("a1", "a2", "a3"),
    lower=(-_INF, -_INF, -10.0),
    upper=(_INF, 0.0, 0.0),
    value=_pow3_value,
    jacobian=_pow3_jac,
    linear=(0, 1),
)
"""Not a Table-1 family: ``a1 + a2 (t+1)^a3`` (``a2, a3 <= 0``), increasing and saturating.

The evidence rule's second opinion: with no linear or quadratic term it cannot bend down, so
it forecasts the slow rise of a heavy-tailed curve (``1/t`` decay of a loss) that the Table-1
families, fitted to a short prefix, often bend into a premature peak.
"""

FAMILIES: dict[str, Family] = {
    "exp": Family(
        name="exp",
        param_names=("a1", "a2", "a3", "a4", "a5"),
        lower=(-_INF, -_INF, _RATE_LOWER, -_INF, -_INF),
        upper=(_INF, 0.0, 0.0, _INF, 0.0),
        value=_exp_value,
        jacobian=_exp_jac,
        linear=(0, 1, 3, 4),
    ),
    "power": Family(
        name="power",
        param_names=("a1", "a2", "a3", "a4", "a5"),
        lower=(-_INF, -_INF, _RATE_LOWER, -_INF, -_INF),
        upper=(_INF, 0.0, 0.0, _INF, 0.0),
        value=_power_value,
        jacobian=_power_jac,
        linear=(0, 1, 3, 4),
    ),
    "multi_power": Family(
        name="multi_power",
        param_names=("a1", "a2", "a3", "a4", "a5", "a6", "a7"),
        lower=(-_INF, -_INF, _RATE_LOWER, -_INF, _RATE_LOWER, -_INF, -_INF),
        upper=(_INF, 0.0, 0.0, 0.0, 0.0, _INF, 0.0),
        value=_multi_power_value,
        jacobian=_multi_power_jac,
        linear=(0, 1, 3, 5, 6),
    ),
    "multi_exp": Family(
        name="multi_exp",
        param_names=("a1", "a2", "a3", "a4", "a5", "a6", "a7"),
        lower=(-_INF, -_INF, _RATE_LOWER, -_INF, _RATE_LOWER, -_INF, -_INF),
        upper=(_INF, 0.0, 0.0, 0.0, 0.0, _INF, 0.0),
        value=_multi_exp_value,
        jacobian=_multi_exp_jac,
        linear=(0, 1, 3, 5, 6),
    ),
}

_ALIASES: dict[str, str] = {
    "exponential": "exp",
    "pow": "power",
    "multi-power": "multi_power",
    "multipower": "multi_power",
    "multi-exp": "multi_exp",
    "multiexp": "multi_exp",
    "multi_exponential": "multi_exp",
    "multi-exponential": "multi_exp",
}


def resolve_family(family: str) -> str:
    """Return the canonical family name for ``family`` (aliases such as "exponential" accepted).

    Raises:
        ValueError: ``family`` names no known family.
    """
    if not isinstance(family, str):
        raise ValueError(f"family must be a string, got {family!r}.")
    key = family.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        raise ValueError(
            f"Unknown curve family {family!r}; expected one of {sorted(FAMILIES)} "
            f"(or an alias: {sorted(_ALIASES)})."
        )
    return key


def get_family(family: str) -> Family:
    """Return the :class:`Family` named ``family`` (aliases accepted)."""
    return FAMILIES[resolve_family(family)]


def _as_params(family: Family, params: Sequence[float] | FloatArray) -> FloatArray:
    p = np.asarray(params, dtype=np.float64)
    if p.shape != (family.n_params,):
        raise ValueError(
            f"params for family {family.name!r} must have {family.n_params} values "
            f"{family.param_names}, got shape {p.shape}."
        )
    return p


def curve(
    family: str, params: Sequence[float] | FloatArray, t: Sequence[float] | FloatArray | float
) -> FloatArray:
    """Evaluate the fitted curve of ``family`` with ``params`` at epochs ``t``.

    Args:
        family: Family name ("exp", "power", "multi_power", "multi_exp" or an alias).
        params: Parameter vector in the order of the family's ``param_names``.
        t: Epoch(s), as a scalar or an array.

    Returns:
        ``f(t)`` as a float array with the shape of ``t``.

    Example:
        >>> curve("exp", (80.0, -60.0, -0.1, 0.0, -0.001), [0, 10]).round(2)
        array([20.  , 57.83])
    """
    fam = get_family(family)
    p = _as_params(fam, params)
    tt = np.asarray(t, dtype=np.float64)
    return fam.value(p, tt.reshape(-1)).reshape(tt.shape)


def knee_of(family: str, params: Sequence[float] | FloatArray, horizon: int) -> int:
    """Return ``t* = argmax f(t)`` over the integer epochs ``0 <= t < horizon``.

    Ties (a numerically flat curve) go to the earliest epoch.

    Example:
        >>> knee_of("exp", (80.0, -60.0, -0.1, 0.5, -0.01), 1000)
        35
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}.")
    fam = get_family(family)
    values = fam.value(_as_params(fam, params), np.arange(int(horizon), dtype=np.float64))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"The curve {family!r} with params {tuple(params)} is not finite.")
    return int(np.argmax(values))
