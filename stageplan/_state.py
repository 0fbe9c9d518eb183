"""Training states: a name plus fixed hyper-parameter values."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ParamValue = str | int | float | bool | None

__all__ = ["ParamValue", "State"]


def _check_value(state: str, axis: str, value: object) -> ParamValue:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"state {state!r}: hyper-parameter {axis!r} must be finite, got {value!r}"
            )
        return value
    raise TypeError(
        f"state {state!r}: hyper-parameter {axis!r} must be a str, int, float, bool or None "
        f"(JSON scalar), got {type(value).__name__} {value!r}"
    )


@dataclass(frozen=True)
class State:
    """A training state: fixed hyper-parameters a transition trains with.

    States are hashable, compare by name and values, keep their axes in the order given and
    round-trip through JSON.

    Args:
        name: Unique name of the state inside its graph.
        params: Hyper-parameter values by axis name (JSON scalars), e.g.
            ``{"clip_length": 16, "learning_rate": 0.01}``.

    Example:
        >>> s = State("short-fast", {"clip_length": 16, "learning_rate": 0.01})
        >>> s.params["clip_length"], s.axes
        (16, ('clip_length', 'learning_rate'))
    """

    name: str
    items: tuple[tuple[str, ParamValue], ...] = field(default=())

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a state name must be a non-empty string, got {name!r}")
        items: list[tuple[str, ParamValue]] = []
        for axis, value in (params or {}).items():
            if not isinstance(axis, str) or not axis:
                raise ValueError(
                    f"state {name!r}: axis names must be non-empty strings, got {axis!r}"
                )
            items.append((axis, _check_value(name, axis, value)))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "items", tuple(items))

    @property
    def params(self) -> dict[str, ParamValue]:
        """A fresh dict of the hyper-parameters, in axis order."""
        return dict(self.items)

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(axis for axis, _ in self.items)

    def __getitem__(self, axis: str) -> ParamValue:
        for key, value in self.items:
            if key == axis:
                return value
        raise KeyError(f"state {self.name!r} has no hyper-parameter {axis!r}; it has {self.axes}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.axes)

    def __str__(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> State:
        if not isinstance(data, Mapping) or "name" not in data:
            raise ValueError(
                f"a state must be an object with a 'name' (and 'params'), got {data!r}"
            )
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError(f"state {data['name']!r}: 'params' must be an object, got {params!r}")
        return cls(data["name"], params)
