"""PyTorch Lightning integration: a planner transition from a module and a datamodule factory.

* :class:`LightningTransition`: turns ``module(params)`` and ``datamodule(params)`` factories
  into the transition function :func:`stageplan.plan` calls. Each transition is one
  ``Trainer.fit`` from the source state's checkpoint with the target state's settings:
  validation before training is epoch 0, every validation after it is one epoch, checkpoints
  are written with ``Trainer.save_checkpoint``, and ``trainer.should_stop`` ends the fit when
  the knee rule says so. ``LightningTransition.plan(...)`` also plans under DDP (launch with
  ``torchrun``): rank 0 plans and reports, every rank trains, the decisions reach every rank.
* :func:`load_weights`: load a Lightning checkpoint's (or a plain state dict's) weights.

Lightning (``pip install 'stageplan[lightning]'``) and torch are imported when a transition runs.
"""

from __future__ import annotations

from stageplan.integrations.lightning._transition import LightningTransition
from stageplan.integrations.lightning._weights import load_weights

__all__ = ["LightningTransition", "load_weights"]
