"""The Lightning callback that reports each validation to the planner and obeys its decision."""

from __future__ import annotations

from collections.abc import Iterator

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from stageplan.integrations.lightning._channel import RankChannel

from stageplan import Trial

__all__ = ["PlannerCallback", "monitored_value"]


def monitored_value(trainer: Trainer, monitor: str) -> float:
    """The value of ``monitor`` in ``trainer.callback_metrics`` as a float."""
    metrics = trainer.callback_metrics
    if monitor not in metrics:
        raise KeyError(
            f"LightningTransition: monitor {monitor!r} was not logged during validation; "
            f"logged metrics: {sorted(metrics)} (log it in validation_step or "
            "on_validation_epoch_end with self.log)"
        )
    value = metrics[monitor]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"LightningTransition: monitor {monitor!r} is not a scalar: {value!r}"
        ) from None


class PlannerCallback(Callback):
    """Reports every validation run (sanity checks excepted) as one planner epoch.

    On rank 0 (the only rank with a ``trial``) it reports the monitored metric, writes the
    checkpoint the planner asks for with ``trainer.save_checkpoint`` and shares the decision;
    every other rank joins the checkpoint write (it is collective under DDP) and takes the
    decision. ``trainer.should_stop`` is set on every rank when the knee rule stops.
    """

    def __init__(
        self,
        channel: RankChannel,
        monitor: str,
        trial: Trial | None = None,
        epochs: Iterator[int] | None = None,
    ) -> None:
        self.channel = channel
        self.monitor = monitor
        self.trial = trial
        self.epochs = epochs
        self.stopped = False
        self.validations = 0
        self.error: BaseException | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.stopped:
            return
        if self.trial is not None:
            self._lead(trainer)
        else:
            self._follow(trainer)
        self.validations += 1
        if self.stopped:
            trainer.should_stop = True

    def _lead(self, trainer: Trainer) -> None:
        assert self.trial is not None and self.epochs is not None
        channel = self.channel

        def save(path: str) -> None:
            channel.share(("save", path))
            trainer.save_checkpoint(path, weights_only=True)

        try:
            self.trial.report(monitored_value(trainer, self.monitor), save=save)
            stop = next(self.epochs, None) is None
        except BaseException as exc:  # noqa: BLE001 - re-raised after fit, once every rank stopped
            self.error = exc
            stop = True
        channel.share(("decide", stop))
        self.stopped = stop

    def _follow(self, trainer: Trainer) -> None:
        while True:
            kind, arg = self.channel.share()
            if kind == "save":
                trainer.save_checkpoint(arg, weights_only=True)
            elif kind == "decide":
                self.stopped = bool(arg)
                return
            else:
                raise RuntimeError(f"LightningTransition: unexpected message {kind!r} from rank 0")
