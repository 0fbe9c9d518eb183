"""Knee stopping rule: fit a unimodal curve to a transition's validation curve, stop past its peak.

Implements the rule of *Optimization Planning for 3D ConvNets* (Qiu et al., ICML 2021): once
``t >= delay`` epochs have been seen, fit ``f(t) = g(t) + a t + b t^2`` (``g`` increasing and
bounded, ``b <= 0``) by Trust Region Reflective least squares, take ``t* = argmax f`` over a long
horizon and stop once ``t >= t* + delay``, keeping epoch ``t*``.

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
