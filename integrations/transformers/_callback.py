"""The Hugging Face ``TrainerCallback`` that reports each evaluation to the planner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from stageplan import Trial

__all__ = ["PlannerCallback", "monitored_value"]


def monitored_value(metrics: Mapping[str, Any] | None, monitor: str) -> float:
    """``metrics[monitor]`` (or ``metrics["eval_" + monitor]``) as a float."""
    metrics = metrics or {}
    for key in (monitor, f"eval_{monitor}"):
        if key in metrics:
            try:
                return float(metrics[key])
            except (TypeError, ValueError):
                raise TypeError(
                    f"TransformersTransition: metric {key!r} is not a number: {metrics[key]!r}"
                ) from None
    raise KeyError(
        f"TransformersTransition: monitor {monitor!r} is not among the evaluation metrics "
        f"{sorted(metrics)} (compute_metrics' keys come back prefixed with 'eval_')"
    )


class PlannerCallback(TrainerCallback):
    """Reports every evaluation as one planner epoch and stops training when the rule says so.

    ``save(path)`` writes the model for the planner (``Trainer.save_model``, which calls
    ``save_pretrained``); it is set once the ``Trainer`` exists.
    """

    def __init__(self, trial: Trial, epochs: Iterator[int], monitor: str) -> None:
        self.trial = trial
        self.epochs = epochs
        self.monitor = monitor
        self.save: Callable[[str], Any] | None = None
        self.stopped = False
        self.evaluations = 0

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.stopped:  # an evaluation after the rule stopped (e.g. a second eval set)
            control.should_training_stop = True
            return
        self.trial.report(monitored_value(kwargs.get("metrics"), self.monitor), save=self.save)
        self.evaluations += 1
        if next(self.epochs, None) is None:
            self.stopped = True
            control.should_training_stop = True
