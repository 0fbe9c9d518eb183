"""The record of one knee-rule decision."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REASONS: tuple[str, ...] = (
    "warmup",
    "continue",
    "knee",
    "converged",
    "ceiling",
    "max_epochs",
    "fit_failed",
    "diverged",
)
"""Every value :attr:`KneeDecision.reason` can take."""

_STOPPING = frozenset({"knee", "converged", "ceiling", "max_epochs", "diverged"})


@dataclass(frozen=True)
class KneeDecision:
    """What the knee rule decided after epoch ``epoch``.

    Attributes:
        stop: Whether the transition should stop now.
        reason: One of :data:`REASONS`: ``"warmup"`` (too few epochs to fit), ``"continue"``,
            ``"knee"`` (the paper's rule: ``epoch >= knee + delay``), ``"converged"`` (the
            evidence rule: a gain in the epochs left is unlikely), ``"ceiling"`` (the metric
            reached its ceiling), ``"max_epochs"``, ``"fit_failed"`` (the fit
            raised or did not converge; training goes on) or ``"diverged"`` (the last ``delay``
            values were all NaN/inf).
        epoch: The current epoch ``t = len(values) - 1``.
        knee_epoch: The epoch whose checkpoint to keep: the fitted peak ``t*`` when it is an
            observed epoch (``0 <= t* <= epoch``), else ``None`` while training goes on. Always set
            when ``stop`` is true.
        peak_epoch: The fitted ``t*`` over the whole horizon (may lie in the future), or ``None``
            without a fit.
        fitted_value: The fitted curve at ``knee_epoch`` (at ``peak_epoch`` when ``knee_epoch`` is
            ``None``), in the metric's own orientation; ``None`` without a fit.
        params: Fitted parameters (of the negated curve when ``mode="min"``), or ``None``.
        rmse: RMSE of the fit in the metric's units, or ``None``.
        message: Human-readable detail (the fit's error for ``"fit_failed"``).
        gain_chance: The evidence rule's chance that an epoch left in the budget beats the
            best observed value by more than its threshold; ``None`` for the paper's rule and
            without a fit.
    """

    stop: bool
    reason: str
    epoch: int
    knee_epoch: int | None = None
    peak_epoch: int | None = None
    fitted_value: float | None = None
    params: tuple[float, ...] | None = None
    rmse: float | None = None
    message: str = ""
    gain_chance: float | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, got {self.reason!r}.")
        if self.stop != (self.reason in _STOPPING):
            raise ValueError(f"stop={self.stop!r} contradicts reason={self.reason!r}.")
        if self.stop and self.knee_epoch is None:
            raise ValueError("a stopping decision needs a knee_epoch.")
        if self.knee_epoch is not None and not 0 <= self.knee_epoch <= self.epoch:
            raise ValueError(
                f"knee_epoch must lie in [0, epoch={self.epoch}], got {self.knee_epoch!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite floats become ``None``)."""
        return {
            "stop": self.stop,
            "reason": self.reason,
            "epoch": self.epoch,
            "knee_epoch": self.knee_epoch,
            "peak_epoch": self.peak_epoch,
            "fitted_value": _finite_or_none(self.fitted_value),
            "params": None if self.params is None else [float(p) for p in self.params],
            "rmse": _finite_or_none(self.rmse),
            "message": self.message,
            "gain_chance": _finite_or_none(self.gain_chance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KneeDecision:
        """Rebuild a decision from :meth:`to_dict` output.

        Raises:
            ValueError: A key is missing or unknown, or the values are inconsistent.
        """
        fields = {
            "stop",
            "reason",
            "epoch",
            "knee_epoch",
            "peak_epoch",
            "fitted_value",
            "params",
            "rmse",
            "message",
            "gain_chance",
        }
        unknown = set(data) - fields
        missing = {"stop", "reason", "epoch"} - set(data)
        if unknown or missing:
            raise ValueError(
                f"KneeDecision dict has unknown keys {sorted(unknown)} "
                f"or misses keys {sorted(missing)}."
            )
        params = data.get("params")
        return cls(
            stop=bool(data["stop"]),
            reason=str(data["reason"]),
            epoch=int(data["epoch"]),
            knee_epoch=_int_or_none(data.get("knee_epoch")),
            peak_epoch=_int_or_none(data.get("peak_epoch")),
            fitted_value=_float_or_none(data.get("fitted_value")),
            params=None if params is None else tuple(float(p) for p in params),
            rmse=_float_or_none(data.get("rmse")),
            message=str(data.get("message", "")),
            gain_chance=_float_or_none(data.get("gain_chance")),
        )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
