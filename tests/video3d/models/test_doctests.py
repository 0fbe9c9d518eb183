from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "video3d.models",
    "video3d.models._config",
    "video3d.models._frozen_bn",
    "video3d.models._inflate",
    "video3d.models._net",
    "video3d.models._registry",
    "video3d.models._summary",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
