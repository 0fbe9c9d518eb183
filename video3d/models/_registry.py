"""Model registry: build a model by name."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

__all__ = ["build_model", "get_model_fn", "list_models", "register_model"]

F = TypeVar("F", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: F) -> F:
    """Decorator: register a keyword-only factory under its function name."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered.")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered model names, optionally filtered by a glob ``pattern``.

    Example:
        >>> from video3d.models import list_models
        >>> list_models("dg_p3d_*")
        ['dg_p3d_resnet10', 'dg_p3d_resnet101', 'dg_p3d_resnet18', 'dg_p3d_resnet50']
    """
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_model_fn(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; ``ValueError`` naming close matches otherwise."""
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}."
        )
    return _MODELS[name]


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model by name with the factory's keyword arguments.

    Example:
        >>> from video3d.models import build_model
        >>> net = build_model("p3d_resnet10", num_classes=7, width=0.125)
        >>> net.fc.out_features
        7
    """
    return get_model_fn(name)(**kwargs)
