"""The plan artifact: the chosen stages, the explored graph, and a replayable schedule."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stageplan._records import TransitionRecord
from stageplan._state import ParamValue

__all__ = ["EpochSettings", "Plan", "PlanFormatError", "Stage", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_FORMAT = "stageplan-plan"


class PlanFormatError(ValueError):
    """A plan file cannot be read: not a plan, a newer format, or a malformed field."""


@dataclass(frozen=True)
class Stage:
    """One stage of a plan: train ``epochs`` epochs with ``params``.

    Attributes:
        state: Name of the state.
        params: Its hyper-parameters.
        epochs: Epochs spent in the state (the knee epoch of the transition into it).
        value: Validation value at the end of the stage, if known.
        source: The state the stage started from, if known.
    """

    state: str
    params: dict[str, ParamValue]
    epochs: int
    value: float | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ValueError(
                f"stage {self.state!r}: epochs must be an int >= 0, got {self.epochs!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "params": dict(self.params),
            "epochs": self.epochs,
            "value": self.value,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        try:
            return cls(
                state=str(data["state"]),
                params=dict(data["params"]),
                epochs=data["epochs"],
                value=data.get("value"),
                source=data.get("source"),
            )
        except (KeyError, TypeError) as exc:
            raise PlanFormatError(f"malformed stage {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class EpochSettings:
    """The hyper-parameters of one epoch of a replayed plan.

    Attributes:
        epoch: Global epoch index, from 0.
        stage: Index of the stage the epoch belongs to.
        stage_epoch: Epoch index inside that stage, from 0.
        params: The stage's hyper-parameters.
    """

    epoch: int
    stage: int
    stage_epoch: int
    params: dict[str, ParamValue]


@dataclass
class Plan:
    """A training schedule found by planning (or written by hand) and how it was found.

    Attributes:
        stages: The ordered stages from the start to the final state.
        final_value: Validation value of the final state's checkpoint.
        final_checkpoint: Storage reference of the final checkpoint (if any).
        mode: ``"max"`` or ``"min"``: the direction of the validation metric.
        graph: The transition graph (``TransitionGraph.to_dict()``), if planned.
        transitions: Every explored transition's record (curve, fit, decision).
        rule: The knee rule's settings, if planned.
        storage: Where the plan's checkpoints live, if planned.

    Example (the published Kinetics-400 plan of Qiu et al., replayed):
        >>> plan = Plan.from_stages([
        ...     ({"clip_length": 16, "learning_rate": 0.04}, 58),
        ...     ({"clip_length": 32, "learning_rate": 0.04}, 108),
        ...     ({"clip_length": 32, "learning_rate": 0.004}, 26),
        ...     ({"clip_length": 64, "learning_rate": 0.0004}, 10),
        ...     ({"clip_length": 64, "learning_rate": 0.00004}, 18),
        ... ])
        >>> plan.total_epochs, next(iter(plan.schedule())).params["clip_length"]
        (220, 16)
    """

    stages: tuple[Stage, ...]
    final_value: float | None = None
    final_checkpoint: str | None = None
    mode: str = "max"
    graph: dict[str, Any] | None = None
    transitions: list[TransitionRecord] = field(default_factory=list)
    rule: dict[str, Any] | None = None
    storage: str | None = None

    @classmethod
    def from_stages(
        cls, stages: Sequence[tuple[Mapping[str, ParamValue], int] | Stage], *, mode: str = "max"
    ) -> Plan:
        """A plan written by hand: ``(params, epochs)`` pairs (or :class:`Stage` objects)."""
        built: list[Stage] = []
        for i, item in enumerate(stages):
            if isinstance(item, Stage):
                built.append(item)
                continue
            try:
                params, epochs = item
            except (TypeError, ValueError):
                raise ValueError(
                    f"stage {i}: expected a (params, epochs) pair, got {item!r}"
                ) from None
            if not isinstance(params, Mapping):
                raise ValueError(f"stage {i}: params must be a mapping, got {params!r}")
            built.append(Stage(state=f"stage{i}", params=dict(params), epochs=epochs))
        if not built:
            raise ValueError("a plan needs at least one stage")
        return cls(stages=tuple(built), mode=mode)

    # -- replay ---------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def schedule(self) -> Iterator[EpochSettings]:
        """Yield the settings of every epoch in order, to retrain with a fixed schedule.

        Stages with 0 epochs (a transition that did not help) yield nothing.
        """
        epoch = 0
        for index, stage in enumerate(self.stages):
            for k in range(stage.epochs):
                yield EpochSettings(
                    epoch=epoch, stage=index, stage_epoch=k, params=dict(stage.params)
                )
                epoch += 1

    def schedule_table(self) -> dict[str, list[Any]]:
        """The schedule as columns (one list per axis plus ``epochs``), e.g. for a config file."""
        axes: list[str] = []
        for stage in self.stages:
            axes += [a for a in stage.params if a not in axes]
        table: dict[str, list[Any]] = {a: [s.params.get(a) for s in self.stages] for a in axes}
        table["epochs"] = [s.epochs for s in self.stages]
        return table

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "format_version": FORMAT_VERSION,
            "mode": self.mode,
            "stages": [s.to_dict() for s in self.stages],
            "total_epochs": self.total_epochs,
            "final_value": self.final_value,
            "final_checkpoint": self.final_checkpoint,
            "storage": self.storage,
            "rule": self.rule,
            "graph": self.graph,
            "transitions": [r.to_dict() for r in self.transitions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise PlanFormatError('not a stageplan plan (missing "format": "stageplan-plan")')
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise PlanFormatError(
                f"plan format version {version!r} is not supported (this stageplan reads up to "
                f"{FORMAT_VERSION}); upgrade stageplan"
            )
        stages = tuple(Stage.from_dict(s) for s in data.get("stages", []))
        if not stages:
            raise PlanFormatError("a plan file needs at least one stage")
        return cls(
            stages=stages,
            final_value=data.get("final_value"),
            final_checkpoint=data.get("final_checkpoint"),
            mode=str(data.get("mode", "max")),
            graph=data.get("graph"),
            transitions=[TransitionRecord.from_dict(r) for r in data.get("transitions", [])],
            rule=data.get("rule"),
            storage=data.get("storage"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the plan as JSON (atomically)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        """Read a plan written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanFormatError(f"cannot read plan file {path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanFormatError(f"{path} is not JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except PlanFormatError as exc:
            raise PlanFormatError(f"{path}: {exc}") from exc

    # -- display --------------------------------------------------------------------------
    def summary(self) -> str:
        """A human-readable table of the stages and the explored transitions."""
        lines = [
            f"plan: {len(self.stages)} stages, {self.total_epochs} epochs, "
            f"final value {_fmt(self.final_value)} ({self.mode})"
        ]
        for i, s in enumerate(self.stages):
            params = ",".join(f"{k}={v}" for k, v in s.params.items())
            shown = s.state if s.state == params else f"{s.state} [{params}]"
            lines.append(f"  {i + 1}. {shown}: {s.epochs} epochs, value {_fmt(s.value)}")
        if self.transitions:
            done = [t for t in self.transitions if t.status == "complete"]
            failed = [t for t in self.transitions if t.status == "failed"]
            spent = sum(t.epochs for t in self.transitions)
            lines.append(
                f"explored {len(self.transitions)} transitions ({len(failed)} failed), "
                f"{spent} epochs trained in all"
            )
            for t in done:
                reason = (t.decision or {}).get("reason", "?")
                lines.append(
                    f"    {t.source} -> {t.target}: {t.epochs} epochs, knee "
                    f"{t.checkpoint_epoch}, value {_fmt(t.value)} ({reason})"
                )
            for t in failed:
                lines.append(
                    f"    {t.source} -> {t.target}: FAILED: "
                    f"{(t.error or '').strip().splitlines()[-1:]}"
                )
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
