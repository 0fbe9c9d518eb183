"""Adapters between stageplan and other tools (Optuna first: :mod:`integrations.optuna`)."""
