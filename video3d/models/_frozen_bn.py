"""Freezing BatchNorm running statistics (the paper's rule for 64- and 128-frame clips)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["bn_stats_frozen", "freeze_bn_stats", "unfreeze_bn_stats"]

_FLAG = "_video3d_bn_stats_frozen"


def _hold_eval(module: nn.Module, args: tuple[object, ...]) -> None:
    """Forward pre-hook: a frozen BN normalises with, and never updates, its running stats."""
    if getattr(module, _FLAG, False):
        module.training = False


def _batch_norms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BatchNorm)]


def freeze_bn_stats(model: nn.Module, *, exclude: Iterable[str] | None = None) -> list[str]:
    """Freeze the running statistics of every BatchNorm in ``model`` except ``exclude``.

    A frozen BN behaves as in eval mode in every forward pass (it normalises with its running
    mean/var and does not update them), while its affine weight and bias stay trainable. The
    state survives ``model.train()``/``model.eval()``: it is a flag on each BN honoured by a
    forward pre-hook, so it also survives ``copy.deepcopy`` and pickling. Calling it twice is
    harmless. Convert to ``SyncBatchNorm`` *before* freezing (conversion builds new modules).

    Args:
        model: any module.
        exclude: qualified names of BNs to leave alone; ``None`` keeps the first BatchNorm in
            module order (the stem's in a ResNet-style network).

    Returns:
        The names of the BNs now frozen.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.BatchNorm3d(4))
        >>> freeze_bn_stats(net)
        ['2']
        >>> net.train()[2].training, net[2].weight.requires_grad
        (True, True)
        >>> _ = net(torch.randn(2, 3, 1, 2, 2)); net[2].training
        False
    """
    norms = _batch_norms(model)
    if exclude is None:
        skip = {norms[0][0]} if norms else set()
    else:
        skip = set(exclude)
        unknown = skip - {n for n, _ in norms}
        if unknown:
            raise ValueError(
                f"exclude names {sorted(unknown)} are not BatchNorm modules of the model."
            )
    frozen: list[str] = []
    for name, bn in norms:
        if name in skip:
            continue
        if not hasattr(bn, _FLAG):
            bn.register_forward_pre_hook(_hold_eval)
        setattr(bn, _FLAG, True)
        bn.training = False
        frozen.append(name)
    return frozen


def unfreeze_bn_stats(model: nn.Module) -> list[str]:
    """Undo :func:`freeze_bn_stats`: the BNs follow ``model.training`` again.

    Returns:
        The names of the BNs that were frozen.
    """
    thawed: list[str] = []
    for name, bn in _batch_norms(model):
        if getattr(bn, _FLAG, False):
            setattr(bn, _FLAG, False)
            bn.training = model.training
            thawed.append(name)
    return thawed


def bn_stats_frozen(model: nn.Module) -> bool:
    """Whether any BatchNorm in ``model`` has frozen statistics."""
    return any(getattr(bn, _FLAG, False) for _, bn in _batch_norms(model))


