"""The runnable examples in the trainer's docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["video3d.trainer", "video3d.trainer._config", "video3d.trainer._job",
           "video3d.trainer._progress", "video3d.trainer._trainer"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
