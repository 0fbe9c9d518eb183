"""The evidence behind the default knee rule: how likely is a gain in the epochs that are left?

The fitted curve ``f`` (one of the Table-1 families) and its uncertainty give, for every epoch
``tau`` still in the budget, a normal forecast of the value a run would observe there:
mean ``f(tau)``, variance ``var_f(tau) + sigma**2``, where ``var_f`` is the delta-method
variance of the fit (``g^T C g`` with ``C = s^2 (J^T J)^-1`` over the free parameters) and
``sigma`` the noise of one observation (the fit's residual standard deviation). The rule stops
once the chance that *any* remaining epoch beats the best kept value by more than a threshold
(the metric's resolution, or a multiple of its noise) is small.

Every function here is pure: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stageplan.knee._families import Family, FloatArray

# A parameter whose distance to its bound moves the fitted curve by less than this share of the
# noise sits on the bound and is held fixed in the covariance (the bound forbids the one
# direction it could move in; see free_parameters).
_ON_BOUND = 1e-3


@dataclass(frozen=True)
class Forecast:
    """One fitted curve's view of the data and of the epochs ahead.

    Attributes:
        fitted: The curve at the observed epochs.
        fitted_sd: Its delta-method standard deviation there.
        noise: Residual standard deviation of one observation.
        mean: The curve at the epochs ahead.
        sd: Standard deviation of an observation there (fit and noise).
    """

    fitted: FloatArray
    fitted_sd: FloatArray
    noise: float
    mean: FloatArray
    sd: FloatArray

    def chance(self, level: float) -> float:
        """Chance that some epoch ahead observes more than ``level`` (1 if not finite)."""
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.sd))):
            return 1.0  # a forecast that overflows says nothing: keep training
        return exceed_chance(self.mean, self.sd, level)


def forecast(
    family: Family,
    params: FloatArray,
    t: FloatArray,
    y: FloatArray,
    ahead: FloatArray,
    *,
    fitted_sd: bool = True,
) -> Forecast:
    """Forecast of ``family`` with fitted ``params`` (data ``(t, y)``) at the epochs ``ahead``.

    ``fitted_sd=False`` skips the fit's standard deviation at the observed epochs (``nan``).

    Example:
        >>> from stageplan.knee._families import get_family
        >>> t = np.arange(20.0)
        >>> y = 1 - np.exp(-0.3 * t) + 0.01 * np.sin(t)
        >>> f = forecast(get_family("exp"), np.array([1.0, -1.0, -0.3, 0.0, 0.0]), t, y,
        ...              np.array([20.0, 21.0]))
        >>> round(f.noise, 4), f.mean.round(3).tolist()
        (0.0079, [0.998, 0.998])
    """
    with np.errstate(over="ignore", invalid="ignore"):
        fitted = family.value(params, t)
        noise = residual_sd(y - fitted, family.n_params)
        jac = family.jacobian(params, t)
        free = free_parameters(family, params, jac, noise)
        cov = fit_covariance(jac, noise, free)
        obs_sd = prediction_sd(jac, cov) if fitted_sd else np.full(t.size, np.nan)
        mean = family.value(params, ahead)
        sd = np.sqrt(prediction_sd(family.jacobian(params, ahead), cov) ** 2 + noise**2)
    return Forecast(fitted, obs_sd, noise, mean, sd)


@dataclass(frozen=True)
class Evidence:
    """What the fitted curve says about the epochs left.

    Attributes:
        chance: Chance that some epoch in ``(t, end]`` beats ``best`` by more than
            ``threshold`` (0 when no epoch is left).
        threshold: The gain that counts, in the metric's units.
        noise: Standard deviation of one observation (the fit's residual sd).
        end: Last epoch of the budget considered.
        keep: With ``keep="auto"`` the observed epoch with the highest estimated true value
            (see :func:`shrunk`), else the best observed epoch.
    """

    chance: float
    threshold: float
    noise: float
    end: int
    keep: int


def residual_sd(residuals: FloatArray, n_params: int) -> float:
    """Residual standard deviation with the degrees of freedom of the fit.

    ``sqrt(sum(r^2) / (n - k))``; with ``n - k < 1`` degrees of freedom the plain RMS.

    Example:
        >>> round(residual_sd(np.array([1.0, -1.0, 1.0, -1.0]), 2), 3)
        1.414
    """
    n = int(residuals.size)
    if n == 0:
        return math.nan
    dof = n - n_params
    return float(math.sqrt(float(np.sum(residuals**2)) / (dof if dof >= 1 else n)))


def free_parameters(
    family: Family, params: FloatArray, jac: FloatArray, noise: float
) -> FloatArray:
    """Mask of the parameters that are not pinned to one of their bounds.

    A parameter is pinned when moving it onto its bound would change the fitted curve over the
    observed epochs (``jac``) by less than ``1e-3`` of the noise: the solver stops a hair's
    breadth from a bound, and that hair must not decide whether it counts as free.

    Example:
        >>> from stageplan.knee._families import get_family
        >>> fam, t = get_family("exp"), np.arange(40.0)
        >>> p = np.array([80.0, -60.0, -0.1, 0.2, -1e-9])
        >>> free_parameters(fam, p, fam.jacobian(p, t), 0.5).tolist()
        [True, True, True, True, False]
    """
    lower = np.asarray(family.lower)
    upper = np.asarray(family.upper)
    gap = np.minimum(np.abs(params - lower), np.abs(params - upper))
    effect = gap * np.max(np.abs(jac), axis=0) if jac.size else gap
    return ~(effect <= _ON_BOUND * max(noise, 1e-12))  # type: ignore[no-any-return]


def fit_covariance(jac: FloatArray, noise: float, free: FloatArray) -> FloatArray:
    """Delta-method covariance ``noise^2 (J^T J)^+`` of the free parameters (zero elsewhere).

    The columns are normalised before the pseudo-inverse, so that parameters of very different
    scales (``t`` and ``t^2`` terms) do not ruin its conditioning.

    Example:
        >>> jac = np.column_stack((np.ones(4), np.arange(4.0)))
        >>> fit_covariance(jac, 1.0, np.array([True, True])).round(2).tolist()
        [[0.7, -0.3], [-0.3, 0.2]]
    """
    k = jac.shape[1]
    cov = np.zeros((k, k))
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return cov
    sub = jac[:, idx]
    norms = np.linalg.norm(sub, axis=0)
    norms[norms == 0.0] = 1.0
    scaled = sub / norms
    # pseudo-inverse of the symmetric normal matrix by its eigenvectors (rcond 1e-10)
    w, vec = np.linalg.eigh(scaled.T @ scaled)
    keep = w > 1e-10 * max(float(w[-1]), 0.0)
    inv = (vec[:, keep] / w[keep]) @ vec[:, keep].T
    if idx.size == k:
        cov = noise**2 * inv / np.outer(norms, norms)
    else:
        cov[np.ix_(idx, idx)] = noise**2 * inv / np.outer(norms, norms)
    return cov


def prediction_sd(jac: FloatArray, cov: FloatArray) -> FloatArray:
    """Standard deviation of the fitted curve at the rows of ``jac``: ``sqrt(g^T C g)``.

    Example:
        >>> prediction_sd(np.array([[1.0, 0.0], [1.0, 2.0]]), np.diag([1.0, 0.25])).tolist()
        [1.0, 1.4142135623730951]
    """
    var = np.einsum("ij,jk,ik->i", jac, cov, jac)
    return np.sqrt(np.maximum(var, 0.0))  # type: ignore[no-any-return]


def exceed_chance(mean: FloatArray, sd: FloatArray, threshold: float) -> float:
    """Chance that at least one of independent normal draws ``N(mean_i, sd_i^2)`` exceeds
    ``threshold``: ``1 - prod(1 - Phi((mean_i - threshold) / sd_i))``.

    A draw with ``sd_i = 0`` exceeds it with chance 1 if ``mean_i > threshold``, else 0.

    Example:
        >>> round(exceed_chance(np.array([0.0, 0.0]), np.array([1.0, 1.0]), 0.0), 3)
        0.75
        >>> exceed_chance(np.array([1.0]), np.array([0.0]), 0.5)
        1.0
    """
    from scipy.special import log_ndtr

    if mean.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (mean - threshold) / np.where(sd > 0, sd, 1.0), 0.0)
    certain = (sd <= 0) & (mean > threshold)
    if bool(np.any(certain)):
        return 1.0
    z = np.where(sd > 0, z, -np.inf)
    log_none = float(np.sum(log_ndtr(-z)))
    return max(0.0, float(-math.expm1(log_none)))


def shrunk(values: FloatArray, fitted: FloatArray, fit_sd: FloatArray, noise: float) -> FloatArray:
    """Estimated true value of each observed epoch: the observation shrunk toward the fit.

    The precision-weighted mean of the observation (variance ``noise^2``) and the fitted
    curve (variance ``fit_sd^2``). Where the noise is small next to the fit's uncertainty it is
    the observation (keep the best observed epoch); where the noise dominates it is the fitted
    curve (keep the fitted peak). Non-finite observations get ``-inf``.

    Example:
        >>> shrunk(np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), 1.0).tolist()
        [2.0, 1.0]
    """
    fit_var = fit_sd**2
    total = fit_var + noise**2
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(total > 0, fit_var / np.where(total > 0, total, 1.0), 1.0)
    est = fitted + w * (values - fitted)
    return np.where(np.isfinite(values), est, -np.inf)


def tie_resolution(values: FloatArray) -> float:
    """The resolution of a quantized metric, read off its values (0 when it looks continuous).

    A metric counted over a small validation set moves in steps (one video), so consecutive
    epochs often tie. When at least a third of the epoch-to-epoch changes are exactly zero,
    the smallest positive gap between two observed values is taken as the step; else 0.

    Example:
        >>> tie_resolution(np.array([0.5, 0.5, 0.75, 0.75, 0.75, 1.0]))
        0.25
        >>> tie_resolution(np.array([0.51, 0.62, 0.70, 0.74]))
        0.0
    """
    if values.size < 3:
        return 0.0
    diffs = np.diff(values)
    if np.count_nonzero(diffs == 0.0) * 3 < diffs.size:
        return 0.0
    levels = np.unique(values)
    if levels.size < 2:
        return 0.0
    return float(np.min(np.diff(levels)))


def bic_weight(first: tuple[float, int], second: tuple[float, int], n: int) -> float:
    """Schwarz weight of the second of two least-squares fits of the same ``n`` points.

    Each fit is ``(residual sd, number of parameters)``; ``BIC = n ln(sd^2) + k ln(n)`` and
    the weight is ``1 / (1 + exp((BIC_2 - BIC_1) / 2))``. A zero sd wins outright.

    Example:
        >>> round(bic_weight((1.0, 5), (1.0, 3), 20), 3)
        0.952
        >>> bic_weight((0.0, 5), (1.0, 3), 20) < 1e-100
        True
    """
    tiny = 1e-150
    b1 = 2 * n * math.log(max(first[0], tiny)) + first[1] * math.log(n)
    b2 = 2 * n * math.log(max(second[0], tiny)) + second[1] * math.log(n)
    return 1.0 / (1.0 + math.exp(min(700.0, max(-700.0, (b2 - b1) / 2.0))))


# Exponents a3 the monotone fit tries: log-spaced over the family's range (-10, 0).
_EXPONENTS = -np.geomspace(1e-3, 10.0, 96)
_POWERS: list[FloatArray] = [np.empty((0, _EXPONENTS.size))]


def _powers(t: FloatArray) -> FloatArray:
    """``(t + 1) ** _EXPONENTS`` for every ``t``; integer epochs come from a growing cache."""
    ti = t.astype(np.int64)
    if ti.size == 0 or not np.array_equal(ti, t) or ti.min() < 0:
        return np.power.outer(t + 1.0, _EXPONENTS)
    table = _POWERS[0]
    top = int(ti.max())
    if top >= table.shape[0]:
        size = max(2 * table.shape[0], top + 1, 64)
        table = np.power.outer(np.arange(size, dtype=np.float64) + 1.0, _EXPONENTS)
        _POWERS[0] = table
    return table[ti]


def fit_monotone(t: FloatArray, y: FloatArray) -> FloatArray:
    """Least-squares fit of ``a1 + a2 (t+1)^a3`` with ``a2 <= 0``, ``-10 <= a3 < 0``.

    For a fixed exponent the curve is linear in ``(a1, a2)``, so the fit solves that linear
    problem in closed form for every exponent of a fixed log-spaced grid and keeps the best:
    the same data always give the same fit (no starting point, no local minimum to fall into).
    Where the data fall, ``a2 = 0`` (a flat line at their mean) is the constrained optimum.

    Example:
        >>> t = np.arange(30.0)
        >>> fit = fit_monotone(t, 5.0 - 4.0 * (t + 1.0) ** -0.5)
        >>> bool(np.abs(fit - [5.0, -4.0, -0.5]).max() < 0.05)
        True
    """
    x = _powers(t)  # (n, grid)
    n = y.size
    xbar = x.mean(axis=0)
    ybar = float(y.mean())
    ym = y - ybar
    sxx = np.einsum("ij,ij->j", x, x) - n * xbar * xbar
    sxy = x.T @ ym
    with np.errstate(divide="ignore", invalid="ignore"):
        a2 = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    a2 = np.minimum(a2, 0.0)
    a1 = ybar - a2 * xbar
    sse = float(ym @ ym) - 2.0 * a2 * sxy + a2 * a2 * sxx
    k = int(np.argmin(sse))
    return np.array([a1[k], a2[k], _EXPONENTS[k]])


def cosine_lr(t: FloatArray, budget: int) -> FloatArray:
    """Share of the starting LR after epoch ``t`` of a cosine schedule that reaches 0 at
    ``budget``: ``(1 + cos(pi t / budget)) / 2``.

    Example:
        >>> cosine_lr(np.array([0.0, 100.0, 200.0]), 200).round(3).tolist()
        [1.0, 0.5, 0.0]
    """
    return 0.5 * (1.0 + np.cos(np.pi * t / budget))


def anneal_forecast(lr: FloatArray, y: FloatArray, lr_ahead: FloatArray) -> Forecast:
    """Forecast of a curve trained under an annealing LR, as a quadratic in the LR.

    Late in an anneal the value a run reaches depends on the LR it is trained at, not on the
    epoch: ``y = b0 + b1 lr + b2 lr^2``, fitted by least squares to the observed ``(lr, y)``
    and read off at ``lr_ahead``. ``sd`` is the standard deviation of the *curve* there
    (``s^2 x^T (X^T X)^+ x``), without the noise of one observation: the question is whether
    the run will be better, not whether one noisy epoch will look better. ``noise`` is the
    residual standard deviation ``s`` (3 parameters).

    Example:
        >>> lr = np.linspace(0.3, 0.05, 12)
        >>> y = 90.0 - 20.0 * lr + 10.0 * lr**2 + 0.01 * np.cos(7.0 * lr)
        >>> f = anneal_forecast(lr, y, np.array([0.0]))
        >>> round(float(f.mean[0]), 2), f.noise < 1e-3
        (90.01, True)
    """
    design = np.column_stack((np.ones_like(lr), lr, lr * lr))
    ahead = np.column_stack((np.ones_like(lr_ahead), lr_ahead, lr_ahead * lr_ahead))
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = design @ coef
    noise = residual_sd(y - fitted, design.shape[1])
    cov = fit_covariance(design, noise, np.ones(design.shape[1], dtype=bool))
    return Forecast(
        fitted, prediction_sd(design, cov), noise, ahead @ coef, prediction_sd(ahead, cov)
    )


def curve_chance(mean: FloatArray, sd: FloatArray, level: float) -> float:
    """Chance that the curve is above ``level`` at its most favourable epoch ahead: the
    largest ``Phi((mean_i - level) / sd_i)`` (0 with no epoch ahead).

    Example:
        >>> round(curve_chance(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1.0), 3)
        0.5
    """
    from scipy.special import ndtr

    if mean.size == 0:
        return 0.0
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(sd))):
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (mean - level) / np.where(sd > 0, sd, 1.0), 0.0)
    z = np.where(sd > 0, z, np.where(mean > level, np.inf, -np.inf))
    return float(np.max(ndtr(z)))
