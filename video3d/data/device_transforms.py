"""Normalisation and flips where the batch is (the GPU), so the loader ships ``uint8`` crops.

The loader side, :class:`TrainCrop`, is a :class:`~video3d.data.transforms.TrainTransform` whose
output stops at the cropped and resized ``uint8 [T, S, S, 3]`` clip: no flip, no float
conversion. A batch of such clips is a quarter of the bytes of the float clips (pinned-memory
copies and host-to-device transfers shrink alike) and the per-clip float work leaves the CPU.
On the device, :func:`normalize_clips` flips the clips chosen by a mask and returns normalised
``[B, C, T, S, S]`` in the dtype the model wants, on whatever device the batch is on; it gives
the same numbers as the CPU path (:func:`~video3d.data.transforms.finish_clip`).
:func:`random_flips` draws the mask from a seeded :class:`torch.Generator`.

Example:
    >>> import torch
    >>> from video3d.data.device_transforms import normalize_clips, random_flips
    >>> batch = torch.zeros(2, 8, 32, 32, 3, dtype=torch.uint8)   # what the loader ships
    >>> flips = random_flips(2, generator=torch.Generator().manual_seed(0))
    >>> normalize_clips(batch, flip=flips).shape                 # batch.cuda() on a GPU
    torch.Size([2, 3, 8, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from video3d.data.transforms import IMAGENET_MEAN, IMAGENET_STD, CropPlan, TrainTransform

if TYPE_CHECKING:
    import torch

__all__ = ["TrainCrop", "normalize_clips", "random_flips"]


class TrainCrop(TrainTransform):
    """Random scale and crop for training that returns ``uint8 [T, S, S, 3]`` clips.

    Flips and normalisation are left to :func:`normalize_clips` on the device. Arguments are
    those of :class:`~video3d.data.transforms.TrainTransform` less ``flip``/``mean``/``std``.
    """

    def __init__(self, crop_size: int = 224, short_side: tuple[int, int] = (256, 340)) -> None:
        super().__init__(crop_size, short_side, flip=False, normalize=False)

    def finish(self, clip: torch.Tensor | np.ndarray, plan: CropPlan) -> torch.Tensor:
        """The cropped and resized clip, ``uint8 [T, S, S, 3]``, contiguous."""
        import torch

        return torch.as_tensor(clip).contiguous()

    def __repr__(self) -> str:
        return f"TrainCrop(crop_size={self.crop_size}, short_side={self.short_side})"


def random_flips(
    batch_size: int,
    *,
    p: float = 0.5,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """A ``bool [batch_size]`` mask, each ``True`` with probability ``p``."""
    import torch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    draws = torch.rand(batch_size, generator=generator)
    return (draws < p).to(device if device is not None else "cpu")


def normalize_clips(
    clips: torch.Tensor,
    *,
    flip: torch.Tensor | Sequence[bool] | bool | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
    dtype: Any = None,
    memory_format: Any = None,
) -> torch.Tensor:
    """Flips and normalises ``uint8`` clips on their device.

    Args:
        clips: ``uint8 [B, T, H, W, 3]`` (or one clip ``[T, H, W, 3]``) on any device.
        flip: Mirror left-right: a ``bool [B]`` mask, one bool for all, or ``None``.
        mean: Per-channel mean on the 0..1 scale (``None`` with ``std``: only divide by 255).
        std: Per-channel std on the 0..1 scale.
        dtype: Output dtype (default ``float32``; ``torch.bfloat16`` for a bf16 model).
        memory_format: e.g. ``torch.channels_last_3d`` (default contiguous).

    Returns:
        ``[B, 3, T, H, W]`` (``[3, T, H, W]`` for one clip), ``(x / 255 - mean) / std``.
    """
    import torch

    if clips.dtype != torch.uint8 or clips.ndim not in (4, 5) or clips.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 clips [B, T, H, W, 3] or [T, H, W, 3], got {clips.dtype} "
            f"{tuple(clips.shape)}"
        )
    single = clips.ndim == 4
    batch = clips.unsqueeze(0) if single else clips
    if (mean is None) != (std is None):
        raise ValueError(f"give both mean and std or neither, got {mean!r} and {std!r}")
    if mean is not None and std is not None and (
        len(mean) != 3 or len(std) != 3 or min(std) <= 0
    ):
        raise ValueError(f"mean and std need 3 values each, std > 0; got {mean!r}, {std!r}")
    if flip is not None and flip is not False:
        mask = torch.as_tensor(flip, dtype=torch.bool, device=batch.device).reshape(-1)
        if mask.numel() == 1:
            mask = mask.expand(batch.shape[0])
        if mask.numel() != batch.shape[0]:
            raise ValueError(f"flip has {mask.numel()} values for {batch.shape[0]} clips")
        batch = torch.where(mask.view(-1, 1, 1, 1, 1), batch.flip(3), batch)
    # One channel-first float copy, then x * (1 / (255 std)) + (-mean / std): the same float32
    # operations as the CPU path (finish_clip), so both give the same numbers.
    out = batch.permute(0, 4, 1, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)
    if mean is None or std is None:
        out = out.mul_(1.0 / 255.0)
    else:
        scale = torch.tensor([1.0 / (255.0 * v) for v in std], dtype=torch.float32,
                             device=out.device)
        bias = torch.tensor([-m / v for m, v in zip(mean, std)], dtype=torch.float32,
                            device=out.device)
        out = out.mul_(scale.view(1, 3, 1, 1, 1)).add_(bias.view(1, 3, 1, 1, 1))
    if dtype is not None and dtype != torch.float32:
        out = out.to(dtype)
    if memory_format is not None:
        out = out.contiguous(memory_format=memory_format)
    return out[0] if single else out
