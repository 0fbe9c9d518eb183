"""LightningTransition: one ``Trainer.fit`` per planner transition."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stageplan import ParamValue, Plan, Trial

if TYPE_CHECKING:
    from stageplan.integrations.lightning._channel import RankChannel

    from stageplan import TransitionGraph

__all__ = ["LightningTransition"]

Params = dict[str, ParamValue]
TrainerKwargs = Mapping[str, Any] | Callable[[Params], Mapping[str, Any]]

#: Trainer arguments set unless the user sets them: the planner owns stopping and checkpoints,
#: and epoch 0 is a full validation already.
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,
    "enable_checkpointing": False,
    "num_sanity_val_steps": 0,
}


class LightningTransition:
    """Turn Lightning factories into the transition function of :func:`stageplan.plan`.

    For every transition the planner asks for, it builds ``module(params)`` and
    ``datamodule(params)`` from the target state's hyper-parameters, loads the weights of the
    source state's checkpoint (the optimizer and the LR scheduler start fresh from the
    module's ``configure_optimizers``: every transition is a new fit, as the planner
    expects), builds a ``Trainer`` with your arguments, then:

    * ``trainer.validate`` before training gives epoch 0;
    * ``trainer.fit`` reports ``monitor`` after every validation run (sanity checks
      excepted) as one epoch;
    * the epochs the planner keeps are written with ``trainer.save_checkpoint`` (weights
      only), and ``trainer.should_stop`` is set once the knee rule stops the transition.

    A transition interrupted by a crash resumes from its last kept checkpoint's weights.

    Args:
        module: ``module(params) -> LightningModule`` (``lightning.pytorch``). Read the
            learning rate etc. from ``params`` in ``configure_optimizers``.
        datamodule: ``datamodule(params) -> LightningDataModule``, e.g. a new image size or
            batch size per state; ``None``: the module has its own dataloaders.
        monitor: The logged validation metric the planner follows (``self.log(monitor,
            ...)`` in ``validation_step``; under DDP log it with ``sync_dist=True``). Pass
            ``mode="min"`` to :func:`stageplan.plan` for a loss.
        trainer_kwargs: ``Trainer`` arguments, or ``trainer_kwargs(params) -> dict``. Kept as
            given, except that your ``callbacks`` get the planner's callback appended, and
            ``max_epochs=-1``, ``enable_checkpointing=False`` and ``num_sanity_val_steps=0``
            are used unless you set them. Callback objects in a fixed dict are reused by
            every transition; pass a function to build fresh ones.
        strict: ``load_state_dict(strict=...)`` when loading a checkpoint.

    Example::

        run = LightningTransition(lambda p: Net(lr=p["learning_rate"]),
                                  lambda p: Images(size=p["size"]), monitor="val_acc",
                                  trainer_kwargs={"accelerator": "cpu", "logger": False})
        result = run.plan(graph, storage="runs/plan", rule=KneeRule(delay=3))
    """

    def __init__(
        self,
        module: Callable[[Params], Any],
        datamodule: Callable[[Params], Any] | None = None,
        *,
        monitor: str,
        trainer_kwargs: TrainerKwargs | None = None,
        strict: bool = True,
    ) -> None:
        if not callable(module):
            raise TypeError(
                f"module must be a function params -> LightningModule, got {module!r}"
            )
        if datamodule is not None and not callable(datamodule):
            raise TypeError(
                f"datamodule must be a function params -> LightningDataModule or None, got "
                f"{datamodule!r}"
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged metric, got {monitor!r}")
        if trainer_kwargs is not None and not (
            isinstance(trainer_kwargs, Mapping) or callable(trainer_kwargs)
        ):
            raise TypeError(
                "trainer_kwargs must be a dict of Trainer arguments or a function params -> "
                f"dict, got {type(trainer_kwargs).__name__}"
            )
        self.module = module
        self.datamodule = datamodule
        self.monitor = monitor
        self.trainer_kwargs = trainer_kwargs
        self.strict = strict

    def __repr__(self) -> str:
        return f"LightningTransition(monitor={self.monitor!r})"

    # -- the transition function ----------------------------------------------------------
    def __call__(self, trial: Trial) -> None:
        """Run one transition (on rank 0 under DDP; the other ranks run :meth:`plan` too)."""
        from stageplan.integrations.lightning._channel import RankChannel
        from stageplan.integrations.lightning._weights import load_weights

        channel = RankChannel()
        if channel.rank != 0:
            raise RuntimeError(
                "LightningTransition: under DDP only rank 0 runs transitions; call "
                "LightningTransition.plan(...) on every rank instead of stageplan.plan"
            )
        epochs = trial.epochs()
        first = next(epochs, None)
        if first is None:  # a resumed transition that had already stopped
            return
        params = dict(trial.params)
        module = self.module(params)
        init = trial.init_checkpoint
        if init is not None:
            load_weights(module, init, strict=self.strict)
        if channel.active:  # every rank starts from rank 0's weights, fresh ones included
            channel.share(("run", params, first, _cpu_state(module)))
        self._fit(channel, module, params, first, trial, epochs)

    def _follow_one(
        self, channel: RankChannel, params: Params, first: int, state: Mapping[str, Any]
    ) -> None:
        module = self.module(params)
        module.load_state_dict(state, strict=True)
        self._fit(channel, module, params, first, None, None)

    def _fit(
        self,
        channel: RankChannel,
        module: Any,
        params: Params,
        first: int,
        trial: Trial | None,
        epochs: Iterator[int] | None,
    ) -> None:
        from stageplan.integrations.lightning._callback import PlannerCallback

        callback = PlannerCallback(channel, self.monitor, trial, epochs)
        trainer = self._trainer(params, callback)
        if trainer.world_size != channel.world_size:
            raise RuntimeError(
                f"LightningTransition: the Trainer runs {trainer.world_size} processes but "
                f"{channel.world_size} joined the planner; for DDP launch the script with "
                f"torchrun --nproc_per_node {trainer.world_size} and call "
                "LightningTransition.plan(...) on every rank"
            )
        data = self.datamodule(params) if self.datamodule is not None else None
        if first == 0:
            trainer.validate(module, datamodule=data, verbose=False)
            if callback.validations == 0:
                raise RuntimeError(
                    "LightningTransition: trainer.validate ran no validation (no "
                    "val_dataloader, or limit_val_batches=0); the planner needs one for epoch 0"
                )
        if not callback.stopped:
            trainer.fit(module, datamodule=data)
        if callback.error is not None:
            raise callback.error

    def _trainer(self, params: Params, callback: Any) -> Any:
        from lightning.pytorch import Trainer

        given = self.trainer_kwargs
        kwargs = dict(given(params) if callable(given) else (given or {}))
        for key, value in TRAINER_DEFAULTS.items():
            kwargs.setdefault(key, value)
        callbacks = kwargs.get("callbacks") or []
        if not isinstance(callbacks, (list, tuple)):
            callbacks = [callbacks]
        kwargs["callbacks"] = [*callbacks, callback]
        try:
            return Trainer(**kwargs)
        except TypeError as exc:
            raise TypeError(f"LightningTransition: bad trainer_kwargs {kwargs!r}: {exc}") from exc

    # -- planning, on one process or under DDP --------------------------------------------
    def plan(
        self,
        graph: TransitionGraph,
        *,
        storage: Any,
        backend: str | None = None,
        **plan_kwargs: Any,
    ) -> Plan:
        """:func:`stageplan.plan` with this transition function, on every rank under DDP.

        On one process this is ``stageplan.plan(graph, self, storage=storage, ...)``. Launched
        by ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls it: the process group is joined
        (``backend``: default ``nccl`` with CUDA, else ``gloo``), rank 0 plans and reports,
        every other rank trains each transition in step with it, and every rank returns the
        plan. Rank 0 alone reads and writes ``storage``.
        """
        from stageplan.integrations.lightning._channel import RankChannel

        from stageplan import plan as run_plan

        channel = RankChannel.connect(backend)
        if not channel.active:
            return run_plan(graph, self, storage=storage, **plan_kwargs)
        if plan_kwargs.get("workers", 1) != 1:
            raise ValueError(
                f"LightningTransition.plan: workers={plan_kwargs['workers']!r} under DDP; the "
                "ranks train one transition at a time together, use workers=1"
            )
        if channel.rank == 0:
            try:
                result = run_plan(graph, self, storage=storage, **plan_kwargs)
            except BaseException as exc:
                channel.share(("end", None, f"{type(exc).__name__}: {exc}"))
                raise
            channel.share(("end", result.to_dict(), None))
            return result
        return self._follow(channel)

    def _follow(self, channel: RankChannel) -> Plan:
        while True:
            message = channel.share()
            if message[0] == "run":
                _, params, first, state = message
                self._follow_one(channel, params, first, state)
            elif message[0] == "end":
                _, plan_dict, error = message
                if error is not None:
                    raise RuntimeError(
                        f"LightningTransition: planning failed on rank 0 (this is rank "
                        f"{channel.rank}, pid {os.getpid()}): {error}"
                    )
                return Plan.from_dict(plan_dict)
            else:
                raise RuntimeError(
                    f"LightningTransition: unexpected message {message[0]!r} from rank 0"
                )


def _cpu_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
