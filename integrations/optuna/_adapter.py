"""The Optuna adapter as the core finds it: URL schemes and storage objects it opens.

Registered through the ``stageplan.storage_adapters`` entry point (``pyproject.toml``), so
``plan(storage="postgresql://...")`` reaches :class:`OptunaStorage` without the core naming it.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ADAPTER", "OptunaAdapter"]


class OptunaAdapter:
    """Opens SQLAlchemy database URLs, ``journal:`` files and ``optuna.storages`` objects."""

    schemes: tuple[str, ...] = (
        "journal",
        "sqlite",
        "postgresql",
        "postgres",
        "mysql",
        "mariadb",
        "oracle",
        "mssql",
    )

    def __repr__(self) -> str:
        return "OptunaAdapter()"

    def open_url(self, url: str, *, checkpoints: object | None) -> Any:
        from stageplan.integrations.optuna._storage import OptunaStorage

        return OptunaStorage(url, checkpoints=checkpoints)

    def adopt(self, obj: object, *, checkpoints: object | None) -> Any:
        """An ``OptunaStorage`` for an ``optuna.storages.BaseStorage`` object, else ``None``."""
        if "optuna" not in sys.modules:
            return None  # Optuna never imported: obj cannot be one of its storages
        from optuna.storages import BaseStorage

        if not isinstance(obj, BaseStorage):
            return None
        from stageplan.integrations.optuna._storage import OptunaStorage

        return OptunaStorage(obj, checkpoints=checkpoints)


ADAPTER = OptunaAdapter()
