"""Least-squares fitting of a curve family with scipy's Trust Region Reflective method."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stageplan.knee._families import Family, FloatArray, get_family

_MIN_POINTS = 3
# Relative tolerances of the solver: the rule needs the location of the peak, not 8 digits;
# 1e-5 keeps the two-term families from crawling into max_nfev on noisy curves.
_FTOL = 1e-5
_XTOL = 1e-5
_MAX_NFEV_PER_PARAM = 100
_EXACT_RMSE = 1e-5  # in units of the data's range


@dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`fit_curve`.

    Attributes:
        family: Canonical family name.
        params: Fitted parameters in epochs and the data's own units (the starting point when the
            fit failed before any iteration).
        rmse: Root mean square residual in the data's units (``nan`` when the fit failed).
        success: Whether the solver converged to finite parameters.
        message: The solver's message, or the error that stopped the fit.
        nfev: Number of function evaluations over all starts.
        warm: Whether the returned fit came from the supplied ``init`` (warm start).
    """

    family: str
    params: tuple[float, ...]
    rmse: float
    success: bool
    message: str
    nfev: int = 0
    warm: bool = False


@dataclass(frozen=True)
class _Scale:
    """Affine normalisation ``z = (y - center) / spread`` used inside the solver."""

    center: float
    spread: float

    def to_internal(self, fam: Family, params: FloatArray) -> FloatArray:
        p = params.astype(np.float64, copy=True)
        p[0] -= self.center
        p[list(fam.linear)] /= self.spread
        return p

    def to_external(self, fam: Family, params: FloatArray) -> FloatArray:
        p = params.astype(np.float64, copy=True)
        p[list(fam.linear)] *= self.spread
        p[0] += self.center
        return p


def _scale_of(y: FloatArray) -> _Scale:
    center = float(np.mean(y))
    spread = float(np.ptp(y))
    if not spread > 0.0:
        spread = max(abs(center), 1.0)
    return _Scale(center, spread)


def _smoothed(z: FloatArray) -> FloatArray:
    if z.size < 3:
        return z
    kernel = np.ones(3) / 3.0
    inner = np.convolve(z, kernel, mode="valid")
    return np.concatenate(([z[0]], inner, [z[-1]]))


def _cold_starts(fam: Family, t: FloatArray, z: FloatArray) -> list[FloatArray]:
    """Data-driven initial guesses (internal units): plateau ~ max, amplitude ~ y0 - max."""
    smooth = _smoothed(z)
    top = float(np.max(smooth))
    z0 = float(z[0])
    amp = min(z0 - top, -1e-3)
    target = z0 + 0.63 * (top - z0)
    reached = np.nonzero(smooth >= target)[0]
    k63 = float(t[reached[0]] - t[0]) if reached.size else float(t[-1] - t[0])
    rate = min(1.0 / max(k63, 1.0), 5.0)
    quad = -1e-9
    starts: list[list[float]]
    if fam.name == "exp":
        starts = [[top, amp, -r, 0.0, quad] for r in (rate, 4.0 * rate, rate / 4.0)]
    elif fam.name == "power":
        starts = [[top, amp, -e, 0.0, quad] for e in (0.5, 1.5, 0.2)]
    elif fam.name == "pow3":
        starts = [[top, amp, -e] for e in (0.5, 1.5, 0.2)]
    elif fam.name == "multi_exp":
        starts = [
            [top, amp / 2, -3.0 * rate, amp / 2, -rate / 3.0, 0.0, quad],
            [top, 0.8 * amp, -rate, 0.2 * amp, -rate / 10.0, 0.0, quad],
        ]
    else:  # multi_power
        starts = [
            [top, amp / 2, -1.5, amp / 2, -0.3, 0.0, quad],
            [top, 0.8 * amp, -0.7, 0.2 * amp, -0.1, 0.0, quad],
        ]
    lower = np.asarray(fam.lower)
    upper = np.asarray(fam.upper)
    return [np.clip(np.asarray(s, dtype=np.float64), lower, upper) for s in starts]


def _solve(
    fam: Family, t: FloatArray, z: FloatArray, x0: FloatArray
) -> tuple[FloatArray, float, bool, str, int]:
    """One TRF solve in internal units: (params, cost, success, message, nfev)."""
    from scipy.optimize import least_squares

    def residuals(p: FloatArray) -> FloatArray:
        return fam.value(p, t) - z

    def jacobian(p: FloatArray) -> FloatArray:
        return fam.jacobian(p, t)

    try:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            res = least_squares(
                residuals,
                x0,
                jac=jacobian,
                bounds=(np.asarray(fam.lower), np.asarray(fam.upper)),
                method="trf",
                x_scale="jac",
                ftol=_FTOL,
                xtol=_XTOL,
                max_nfev=_MAX_NFEV_PER_PARAM * fam.n_params,
            )
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        return x0, math.inf, False, f"{type(exc).__name__}: {exc}", 0
    params = np.asarray(res.x, dtype=np.float64)
    cost = float(res.cost)
    finite = bool(np.all(np.isfinite(params))) and math.isfinite(cost)
    # A (near) noiseless curve drives the cost to rounding level, where the relative stopping
    # tests of the solver may never fire: a fit within 1e-5 of the data's range is converged.
    exact = finite and 2.0 * cost / z.size < _EXACT_RMSE**2
    ok = finite and (bool(res.success) or exact)
    if ok:
        message = str(res.message) if res.success else "converged to an exact fit"
    elif not finite:
        message = "non-finite parameters or residuals"
    else:
        message = f"did not converge: {res.message}"
    return params, cost, ok, message, int(res.nfev)


def fit_curve(
    t: Sequence[float] | FloatArray,
    y: Sequence[float] | FloatArray,
    family: str | Family = "exp",
    *,
    init: Sequence[float] | FloatArray | None = None,
) -> FitResult:
    """Fit ``family`` to the points ``(t, y)`` by bounded least squares (``method="trf"``).

    Non-finite ``y`` values (and their epochs) are left out. The data are normalised internally
    (``(y - mean) / range``) and the solver scales parameters by the Jacobian, but the returned
    parameters are in epochs and in ``y``'s own units. With ``init`` the solver starts from those
    parameters (a warm start) and falls back to the data-driven cold starts if that fit fails;
    without it every cold start is tried and the lowest cost wins.

    Args:
        t: Epochs of the points.
        y: Values to fit (larger is better: negate a loss before fitting).
        family: Curve family name (or a :class:`Family`).
        init: Optional starting parameters (``FitResult.params`` of an earlier fit).

    Returns:
        A :class:`FitResult`; ``success`` is false when no start converged.

    Raises:
        ValueError: ``t`` and ``y`` differ in shape, or ``init`` has the wrong length or
            non-finite values.

    Example:
        >>> import numpy as np
        >>> t = np.arange(40.0)
        >>> y = 80 - 60 * np.exp(-0.2 * t) - 0.01 * t**2
        >>> fit = fit_curve(t, y, "exp")
        >>> fit.success, fit.rmse < 1e-6
        (True, True)
    """
    fam = family if isinstance(family, Family) else get_family(family)
    tt = np.asarray(t, dtype=np.float64).reshape(-1)
    yy = np.asarray(y, dtype=np.float64).reshape(-1)
    if tt.shape != yy.shape:
        raise ValueError(f"t and y must have the same length, got {tt.size} and {yy.size}.")
    x_init: FloatArray | None = None
    if init is not None:
        x_init = np.asarray(init, dtype=np.float64).reshape(-1)
        if x_init.size != fam.n_params or not np.all(np.isfinite(x_init)):
            raise ValueError(
                f"init for family {fam.name!r} must be {fam.n_params} finite values "
                f"{fam.param_names}, got {tuple(np.asarray(init).tolist())!r}."
            )
    keep = np.isfinite(yy) & np.isfinite(tt)
    tt, yy = tt[keep], yy[keep]
    if tt.size < _MIN_POINTS:
        start = x_init if x_init is not None else np.zeros(fam.n_params)
        return FitResult(
            fam.name,
            tuple(float(v) for v in start),
            math.nan,
            False,
            f"need at least {_MIN_POINTS} finite values to fit, got {tt.size}",
        )
    scale = _scale_of(yy)
    z = (yy - scale.center) / scale.spread
    lower, upper = np.asarray(fam.lower), np.asarray(fam.upper)
    nfev = 0
    messages: list[str] = []
    if x_init is not None:
        x0 = np.clip(scale.to_internal(fam, x_init), lower, upper)
        params, cost, ok, message, n = _solve(fam, tt, z, x0)
        nfev += n
        if ok:
            return _result(fam, scale, params, cost, tt.size, message, nfev, warm=True)
        messages.append(f"warm start failed ({message}); cold start")
    best: tuple[FloatArray, float, str] | None = None
    last_message = ""
    for x0 in _cold_starts(fam, tt, z):
        params, cost, ok, message, n = _solve(fam, tt, z, x0)
        nfev += n
        last_message = message
        if ok and (best is None or cost < best[1]):
            best = (params, cost, message)
    if best is None:
        messages.append(f"fit failed: {last_message}")
        if x_init is None:
            x_init = scale.to_external(fam, _cold_starts(fam, tt, z)[0])
        start = x_init
        return FitResult(
            fam.name, tuple(float(v) for v in start), math.nan, False, "; ".join(messages), nfev
        )
    messages.append(best[2])
    return _result(fam, scale, best[0], best[1], tt.size, "; ".join(messages), nfev, warm=False)


def _result(
    fam: Family,
    scale: _Scale,
    params: FloatArray,
    cost: float,
    n_points: int,
    message: str,
    nfev: int,
    *,
    warm: bool,
) -> FitResult:
    rmse = math.sqrt(2.0 * cost / n_points) * scale.spread
    external = scale.to_external(fam, params)
    return FitResult(
        fam.name, tuple(float(v) for v in external), rmse, True, message, nfev, warm=warm
    )
