"""TransformersTransition: one Hugging Face ``Trainer.train`` per planner transition."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from stageplan import DEFAULT_MAX_EPOCHS, ParamValue, Trial

__all__ = ["TransformersTransition"]

Params = dict[str, ParamValue]


class TransformersTransition:
    """Turn a Hugging Face model, datasets and ``TrainingArguments`` into a transition function.

    For every transition the planner asks for it builds the model (``model.from_pretrained``
    on the source state's checkpoint; at the start, from ``config`` or ``pretrained``), the
    datasets of the target state (``datasets(params)``: e.g. sequences cut to the state's
    length) and a ``Trainer`` whose ``TrainingArguments`` are yours with the state's
    hyper-parameters put in (every state axis named like a ``TrainingArguments`` field, such
    as ``learning_rate`` or ``per_device_train_batch_size``, replaces that field). Then:

    * ``trainer.evaluate()`` before training gives epoch 0;
    * every evaluation during ``trainer.train()`` reports ``monitor`` as one epoch (so
      ``eval_strategy="epoch"`` makes planner epochs data epochs);
    * the epochs the planner keeps are written with ``trainer.save_model`` (``save_pretrained``);
    * ``control.should_training_stop`` ends training once the knee rule stops the transition.

    The optimizer and LR scheduler start fresh in every transition (a new ``Trainer``); use
    ``lr_scheduler_type="constant"`` for the paper's constant learning rate per state. These
    ``TrainingArguments`` fields are set for you: ``num_train_epochs=max_epochs`` (the knee
    rule stops sooner), ``save_strategy="no"`` and ``load_best_model_at_end=False`` (the
    planner keeps the checkpoints). One process only: under ``torchrun`` it raises.

    Args:
        model: A model class with ``from_pretrained`` (``BertForSequenceClassification``, or an
            ``AutoModelFor...`` class).
        datasets: ``datasets(params) -> (train_dataset, eval_dataset)``.
        args: Your ``TrainingArguments``; ``eval_strategy`` must not be ``"no"``.
        monitor: An evaluation metric: ``"eval_loss"``, ``"eval_accuracy"`` (``"accuracy"``
            works too). Pass ``mode="min"`` to :func:`stageplan.plan` for a loss.
        config: The start model's config (or ``config(params)``): fresh weights, nothing
            downloaded.
        pretrained: Instead of ``config``: a name or directory for ``from_pretrained`` to
            start from.
        trainer_kwargs: More ``Trainer`` arguments (``data_collator``, ``compute_metrics``,
            ``processing_class``...), or ``trainer_kwargs(params) -> dict``.
        max_epochs: ``num_train_epochs`` of every transition.
    """

    def __init__(
        self,
        model: Any,
        *,
        datasets: Callable[[Params], tuple[Any, Any]],
        args: Any,
        monitor: str = "eval_loss",
        config: Any = None,
        pretrained: str | None = None,
        trainer_kwargs: Mapping[str, Any] | Callable[[Params], Mapping[str, Any]] | None = None,
        max_epochs: int = DEFAULT_MAX_EPOCHS,
    ) -> None:
        if not callable(getattr(model, "from_pretrained", None)):
            raise TypeError(
                f"model must be a model class with from_pretrained (e.g. "
                f"BertForSequenceClassification), got {model!r}"
            )
        if (config is None) == (pretrained is None):
            raise ValueError(
                "give exactly one of config= (fresh weights) and pretrained= (a name or "
                f"directory to start from); got config={config!r}, pretrained={pretrained!r}"
            )
        if not callable(datasets):
            raise TypeError(
                f"datasets must be a function params -> (train, eval), got {datasets!r}"
            )
        if not dataclasses.is_dataclass(args) or not hasattr(args, "eval_strategy"):
            raise TypeError(f"args must be a TrainingArguments, got {type(args).__name__}")
        strategy = getattr(args.eval_strategy, "value", args.eval_strategy)
        if strategy == "no":
            raise ValueError(
                "args.eval_strategy is 'no': the planner needs an evaluation per epoch; use "
                "TrainingArguments(eval_strategy='epoch', ...)"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name an evaluation metric, got {monitor!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be an int >= 1, got {max_epochs!r}")
        if trainer_kwargs is not None and not (
            isinstance(trainer_kwargs, Mapping) or callable(trainer_kwargs)
        ):
            raise TypeError(
                "trainer_kwargs must be a dict of Trainer arguments or a function params -> "
                f"dict, got {type(trainer_kwargs).__name__}"
            )
        self.model = model
        self.datasets = datasets
        self.args: Any = args
        self.monitor = monitor
        self.config = config
        self.pretrained = pretrained
        self.trainer_kwargs = trainer_kwargs
        self.max_epochs = max_epochs

    def __repr__(self) -> str:
        return f"TransformersTransition({self.model.__name__}, monitor={self.monitor!r})"

    def training_args(self, params: Params) -> Any:
        """The ``TrainingArguments`` of a state: yours, with its hyper-parameters put in."""
        fields = {f.name for f in dataclasses.fields(self.args) if f.init}
        overrides: dict[str, Any] = {k: v for k, v in params.items() if k in fields}
        overrides.update(
            num_train_epochs=self.max_epochs, save_strategy="no", load_best_model_at_end=False
        )
        return dataclasses.replace(self.args, **overrides)

    def __call__(self, trial: Trial) -> None:
        from stageplan.integrations.transformers._callback import PlannerCallback
        from transformers import Trainer, set_seed

        epochs = trial.epochs()
        first = next(epochs, None)
        if first is None:  # a resumed transition that had already stopped
            return
        params = dict(trial.params)
        args = self.training_args(params)
        if args.world_size > 1:
            raise RuntimeError(
                f"TransformersTransition runs on one process; this is one of "
                f"{args.world_size} (torchrun): distributed training is not supported yet"
            )
        init = trial.init_checkpoint
        if init is not None:
            model = self.model.from_pretrained(init)
        elif self.pretrained is not None:
            model = self.model.from_pretrained(self.pretrained)
        else:
            set_seed(args.seed)
            config = self.config(params) if callable(self.config) else self.config
            build = getattr(self.model, "from_config", None)  # Auto classes
            model = build(config) if callable(build) else self.model(config)
        train, evaluation = self.datasets(params)
        given = self.trainer_kwargs
        extra = dict(given(params) if callable(given) else (given or {}))
        callback = PlannerCallback(trial, epochs, self.monitor)
        callbacks = [*(extra.pop("callbacks", None) or []), callback]
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            callbacks=callbacks,
            **extra,
        )
        callback.save = trainer.save_model
        if first == 0:
            trainer.evaluate()
            if callback.evaluations == 0:
                raise RuntimeError(
                    "TransformersTransition: trainer.evaluate() reported nothing; is "
                    "eval_dataset set?"
                )
        if not callback.stopped:
            trainer.train()
