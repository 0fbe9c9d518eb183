"""Loading a checkpoint's weights into a module (the optimizer starts fresh)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["load_weights"]


def load_weights(module: Any, path: str, *, strict: bool = True) -> None:
    """Load the weights of the checkpoint at ``path`` into ``module`` (a ``torch.nn.Module``).

    ``path`` is a Lightning checkpoint (``Trainer.save_checkpoint``: its ``"state_dict"`` is
    used, optimizer and scheduler states are ignored) or a file holding a plain state dict
    (``torch.save(model.state_dict(), path)``), e.g. a pretrained start checkpoint.

    The file is read with ``torch.load(weights_only=False)`` because a Lightning checkpoint
    may hold the module's hyper-parameters as arbitrary objects: load only checkpoints you
    wrote (the planner's own, or your start checkpoint).
    """
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"cannot read checkpoint {path!r}: {exc}") from exc
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        state = data["state_dict"]
    elif isinstance(data, Mapping) and all(isinstance(k, str) for k in data):
        state = data
    else:
        raise ValueError(
            f"checkpoint {path!r} holds neither a Lightning checkpoint (a dict with "
            f"'state_dict') nor a state dict; got {type(data).__name__}"
        )
    module.load_state_dict(state, strict=strict)
