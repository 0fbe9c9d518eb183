"""Adapters between stageplan and other tools, imported as ``stageplan.integrations``.

* :mod:`stageplan.integrations.optuna`: plans kept in any Optuna storage, and ``KneePruner``.
* :mod:`stageplan.integrations.lightning`: PyTorch Lightning ``Trainer.fit`` as a transition.
* :mod:`stageplan.integrations.transformers`: Hugging Face ``Trainer.train`` as a transition.

This folder is installed as the package ``stageplan.integrations`` (``package-dir`` in
``pyproject.toml``). The old top-level name ``integrations`` still imports, for one release, as
a deprecation shim: ``import integrations.optuna`` warns and hands out the very module objects
of ``stageplan.integrations.optuna`` (never second copies, so classes compare equal).
"""

from __future__ import annotations

if __name__ == "integrations":  # imported under the old, deprecated name
    import importlib
    import importlib.abc
    import importlib.machinery
    import sys
    import warnings
    from types import ModuleType
    from typing import Any

    warnings.warn(
        "the top-level package name 'integrations' is deprecated and will be removed in "
        "stageplan 0.3; import 'stageplan.integrations' instead",
        DeprecationWarning,
        stacklevel=2,
    )

    class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Resolve ``integrations.X`` to the already-importable ``stageplan.integrations.X``."""

        def find_spec(
            self, fullname: str, path: Any = None, target: Any = None
        ) -> importlib.machinery.ModuleSpec | None:
            if not fullname.startswith("integrations."):
                return None
            return importlib.machinery.ModuleSpec(fullname, self)

        def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
            return importlib.import_module("stageplan." + spec.name)

        def exec_module(self, module: ModuleType) -> None:
            """Nothing to run: the real module ran when it was imported under its new name."""

    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
