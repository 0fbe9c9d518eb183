from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = ["video3d.data", "video3d.data.samplers", "video3d.data.errors",
           "video3d.data.transforms", "video3d.data.indexes", "video3d.data.decoding",
           "video3d.data.datasets", "video3d.data.synthetic", "video3d.data._reader",
           "video3d.data._cache"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_import_is_light_and_never_needs_torchvision() -> None:
    code = (
        "import sys, video3d.data, video3d.data.samplers, video3d.data.indexes\n"
        "assert 'torch' not in sys.modules and 'av' not in sys.modules, 'heavy import'\n"
        "from video3d.data import VideoClipDataset, VideoReader\n"
        "assert 'torchvision' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_lazy_exports_resolve() -> None:
    import video3d.data as data

    for name in data.__all__:
        assert getattr(data, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018
