"""Hugging Face Transformers integration: a planner transition from a model and a ``Trainer``.

* :class:`TransformersTransition`: every transition is one ``Trainer`` built with the target
  state's settings (``TrainingArguments`` fields such as the learning rate come from the
  state; data-shape axes such as the sequence length go to your datasets factory), starting
  from the source state's ``save_pretrained`` checkpoint. A ``TrainerCallback`` reports the
  monitored ``eval_*`` metric after every evaluation and sets
  ``control.should_training_stop`` when the knee rule stops.

transformers (``pip install 'stageplan[transformers]'``) is imported when a transition runs.
"""

from __future__ import annotations

from stageplan.integrations.transformers._transition import TransformersTransition

__all__ = ["TransformersTransition"]
