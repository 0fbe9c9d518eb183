"""Optuna integration: plans stored as Optuna studies, and a knee-rule pruner.

* :class:`OptunaStorage`: a :class:`stageplan.PlanStorage` in any Optuna storage (in-memory,
  SQLite, journal file, PostgreSQL...). Every explored transition is one Optuna trial, so
  several workers on several machines share a plan, a crashed run resumes, and
  ``optuna.visualization`` / optuna-dashboard show it. ``plan(graph, fn,
  storage="journal:/path/plan.log")`` or ``storage="postgresql://..."`` use it directly.
* :class:`KneePruner`: prunes a plain Optuna trial once its curve has passed its fitted knee;
  :func:`knee_value` and :func:`tell_knee` give the knee value its due.
* :func:`publish_plan`: writes a finished plan into its study (a study note, notes on the
  chosen trials, the ``stageplan:plan`` user attribute) so that optuna-dashboard shows it.
* :mod:`stageplan.integrations.optuna.testing`: a reusable contract test suite for Optuna pruners.

Optuna is imported lazily, when a storage connects or a pruner is built.
"""

from __future__ import annotations

from stageplan.integrations.optuna._dashboard import PLAN_ATTR, plan_note, publish_plan
from stageplan.integrations.optuna._pruner import KneePruner, knee_value, tell_knee
from stageplan.integrations.optuna._storage import ATTR_PREFIX, OptunaStorage

__all__ = [
    "ATTR_PREFIX",
    "PLAN_ATTR",
    "KneePruner",
    "OptunaStorage",
    "knee_value",
    "plan_note",
    "publish_plan",
    "tell_knee",
]
