"""A tiny synthetic dataset shared by the trainer tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from video3d.data import make_synthetic_dataset
    from video3d.trainer import get_preset

    root = tmp_path_factory.mktemp("tiny-synthetic")
    make_synthetic_dataset(root, **get_preset("tiny").synthetic)
    return root
