"""Which way a validation metric improves: one small type instead of a raw "max"/"min"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Direction", "Mode"]

Mode = Literal["max", "min"]


@dataclass(frozen=True)
class Direction:
    """``"max"`` (accuracy-like metrics) or ``"min"`` (losses).

    Example:
        >>> d = Direction.of("min")
        >>> d.sign, d.better(0.2, 0.3), d.best_epoch([0.5, 0.2, float("nan"), 0.2])
        (-1.0, True, 1)
    """

    mode: Mode = "max"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")

    @classmethod
    def of(cls, mode: str | Direction) -> Direction:
        """``mode`` as a :class:`Direction` (a ``ValueError`` names a bad one)."""
        if isinstance(mode, Direction):
            return mode
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        return cls(mode)  # type: ignore[arg-type]  # checked just above

    @property
    def sign(self) -> float:
        """+1 for ``"max"``, -1 for ``"min"``: ``sign * value`` is larger when better."""
        return 1.0 if self.mode == "max" else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.sign * a > self.sign * b

    def best_epoch(self, values: Sequence[float]) -> int | None:
        """The earliest epoch holding the best finite value; ``None`` if none is finite.

        >>> Direction.of("max").best_epoch([float("nan"), float("inf")]) is None
        True
        """
        best: int | None = None
        for epoch, value in enumerate(values):
            if math.isfinite(value) and (best is None or self.better(value, values[best])):
                best = epoch
        return best
