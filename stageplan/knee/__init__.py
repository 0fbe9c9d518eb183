"""Knee stopping rule: fit a curve to a transition's validation curve, stop when it is done.

Every rule fits one of the unimodal families of *Optimization Planning for 3D ConvNets* (Qiu et
al., ICML 2021, Table 1), ``f(t) = g(t) + a t + b t^2`` (``g`` increasing and bounded,
``b <= 0``), by Trust Region Reflective least squares. The default, ``KneeRule()``, decides from
the evidence: the fit and its uncertainty forecast the epochs left in the budget, and it stops
once a gain over the best value so far (beyond the noise or the metric's resolution) is unlikely
(see :mod:`stageplan.knee._evidence`). ``KneeRule.paper()`` is the authors' rule: once
``t >= delay``, take ``t* = argmax f`` over a long horizon and stop once ``t >= t* + delay``,
keeping epoch ``t*``.

Example:
    >>> from stageplan.knee import KneeRule
    >>> tracker = KneeRule("exp", delay=10).tracker(mode="max")
    >>> decision = tracker.update(0.0)
    >>> decision.reason
    'warmup'
"""

from __future__ import annotations

from stageplan.knee._decision import REASONS, KneeDecision
from stageplan.knee._families import FAMILIES, Family, curve, get_family, knee_of, resolve_family
from stageplan.knee._fit import FitResult, fit_curve
from stageplan.knee._rule import KneeRule, KneeTracker

__all__ = [
    "FAMILIES",
    "REASONS",
    "Family",
    "FitResult",
    "KneeDecision",
    "KneeRule",
    "KneeTracker",
    "curve",
    "fit_curve",
    "get_family",
    "knee_of",
    "resolve_family",
]
