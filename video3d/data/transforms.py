"""Spatial transforms for ``uint8`` clips ``[T, H, W, 3]``.

A transform is split into a **plan** and its application. The plan (:class:`CropPlan`) is computed
from the source frame size alone: the crop box in *source* pixels, the output size and the flip.
That lets the loader hand the box to :meth:`VideoReader.read
<video3d.data.decoding.VideoReader.read>` so only the crop is ever converted to RGB and resized
(the cheap path), while :meth:`TrainTransform.__call__` applies the same plan to clips already
decoded in full (crop first, then resize the ``uint8`` crop, never whole float frames).

* Training (:class:`TrainTransform`): the short side is drawn from ``short_side`` (default
  [256, 340]), a ``crop_size`` square (default 224) of the resized video is taken at a random
  place, i.e. a ``crop_size / scale`` square of the source, and flipped with probability 1/2
  unless the dataset is direction-sensitive (``flip=False``, see :func:`flip_allowed`).
* Testing (:class:`EvalTransform`): the short side resized to ``short_side`` (default 256), then
  one centre crop or three crops along the long side (left/centre/right, top/centre/bottom for
  portrait video).

Outputs are ``float32`` tensors ``[C, T, H, W]`` normalised with ImageNet mean and std (on the
0..255 scale) unless ``normalize=False``. All randomness comes from the
:class:`numpy.random.Generator` passed in.

Example:
    >>> import numpy as np, torch
    >>> from video3d.data.transforms import TrainTransform, EvalTransform
    >>> clip = torch.zeros(8, 240, 320, 3, dtype=torch.uint8)
    >>> train = TrainTransform(crop_size=112, short_side=(128, 170))
    >>> train(clip, np.random.default_rng(0)).shape
    torch.Size([3, 8, 112, 112])
    >>> EvalTransform(short_side=128, crop_size=128, num_crops=3)(clip).shape
    torch.Size([3, 3, 8, 128, 128])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "DIRECTION_SENSITIVE_DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CropPlan",
    "EvalTransform",
    "TrainTransform",
    "finish_clip",
    "flip_allowed",
    "resize_uint8",
    "eval_crop_plans",
    "train_crop_plan",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Datasets whose labels depend on left/right (e.g. "pushing something from left to right").
DIRECTION_SENSITIVE_DATASETS = frozenset(
    {"ssv1", "ssv2", "something-something-v1", "something-something-v2", "sthv1", "sthv2"}
)


def flip_allowed(dataset: str) -> bool:
    """Whether horizontal flips keep labels valid on ``dataset`` (False for SS-V1/V2)."""
    return dataset.strip().lower() not in DIRECTION_SENSITIVE_DATASETS


@dataclass(frozen=True)
class CropPlan:
    """Where to crop a clip and what to make of the crop.

    Attributes:
        box: ``(top, left, height, width)`` in source pixels.
        size: ``(height, width)`` of the output frames.
        flip: Mirror left-right.
    """

    box: tuple[int, int, int, int]
    size: tuple[int, int]
    flip: bool = False


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_frame(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")


def _source_side(height: int, width: int, short_side: float, crop_size: int) -> int:
    """Side in source pixels of a ``crop_size`` square after resizing the short side."""
    short = min(height, width)
    return max(1, min(short, round(crop_size * short / short_side)))


def train_crop_plan(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    crop_size: int = 224,
    short_side: tuple[int, int] = (256, 340),
    flip: bool = True,
) -> CropPlan:
    """Random scale, position and flip of a training crop, in source coordinates.

    Args:
        height: Source frame height.
        width: Source frame width.
        rng: Seeded generator.
        crop_size: Output side.
        short_side: Inclusive range the resized short side is drawn from.
        flip: Whether a random horizontal flip is allowed.
    """
    _check_frame(height, width)
    lo, hi = short_side
    target = int(rng.integers(lo, hi + 1))
    side = _source_side(height, width, target, crop_size)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    mirror = bool(flip and rng.random() < 0.5)
    return CropPlan((top, left, side, side), (crop_size, crop_size), mirror)


def eval_crop_plans(
    height: int,
    width: int,
    *,
    short_side: int = 256,
    crop_size: int = 224,
    num_crops: int = 1,
) -> list[CropPlan]:
    """Centre crop, or 3 crops along the long side, in source coordinates.

    With ``crop_size == short_side`` the crops cover the full short side (the final protocol:
    short side 256, three 256 crops).
    """
    _check_frame(height, width)
    side = _source_side(height, width, short_side, crop_size)
    size = (crop_size, crop_size)
    centre = ((height - side) // 2, (width - side) // 2)
    if num_crops == 1:
        return [CropPlan((centre[0], centre[1], side, side), size)]
    if width >= height:
        lefts = (0, centre[1], width - side)
        return [CropPlan((centre[0], x, side, side), size) for x in lefts]
    tops = (0, centre[0], height - side)
    return [CropPlan((y, centre[1], side, side), size) for y in tops]


def resize_uint8(clip: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``uint8 [T, H, W, 3]`` frames, staying ``uint8``."""
    import torch
    import torch.nn.functional as F

    frames = torch.as_tensor(clip)
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    nchw = frames.permute(0, 3, 1, 2)  # a channels-last view: what the uint8 kernel wants
    out = F.interpolate(nchw, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.permute(0, 2, 3, 1)


def finish_clip(
    clip: torch.Tensor | np.ndarray,
    *,
    flip: bool = False,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> torch.Tensor:
    """Flips a ``uint8 [T, H, W, 3]`` clip and returns normalised ``float32 [C, T, H, W]``.

    ``mean``/``std`` are on the 0..1 scale; ``None`` only divides by 255.
    """
    import torch

    frames = torch.as_tensor(clip)
    if flip:
        frames = frames.flip(2)
    # One contiguous channel-first copy, then (x - mean) / std as x * (1/std) + (-mean/std).
    out = frames.permute(3, 0, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    if mean is None or std is None:
        return out.mul_(1.0 / 255.0)
    scale = torch.tensor([1.0 / (255.0 * v) for v in std], dtype=torch.float32)
    bias = torch.tensor([-m / v for m, v in zip(mean, std)], dtype=torch.float32)
    return out.mul_(scale.view(3, 1, 1, 1)).add_(bias.view(3, 1, 1, 1))


def _apply(clip: torch.Tensor | np.ndarray, plan: CropPlan) -> torch.Tensor:
    import torch

    frames = torch.as_tensor(clip)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(
            f"expected a uint8 clip [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}"
        )
    top, left, h, w = plan.box
    if top + h > frames.shape[1] or left + w > frames.shape[2]:
        raise ValueError(f"crop box {plan.box} does not fit frames of {tuple(frames.shape)}")
    return resize_uint8(frames[:, top : top + h, left : left + w], plan.size)


class _Normalising:
    def __init__(
        self, mean: Sequence[float] | None, std: Sequence[float] | None, normalize: bool
    ) -> None:
        if normalize and (mean is None or std is None or len(mean) != 3 or len(std) != 3):
            raise ValueError(f"mean and std need 3 values each, got {mean!r} and {std!r}")
        if normalize and std is not None and min(std) <= 0:
            raise ValueError(f"std must be positive, got {std!r}")
        self.mean = tuple(mean) if normalize and mean is not None else None
        self.std = tuple(std) if normalize and std is not None else None

    def finish(self, clip: torch.Tensor | np.ndarray, plan: CropPlan) -> torch.Tensor:
        """Flips per ``plan`` and normalises a clip already cropped and resized."""
        return finish_clip(clip, flip=plan.flip, mean=self.mean, std=self.std)


class TrainTransform(_Normalising):
    """Random scale, crop and flip for training.

    Args:
        crop_size: Output side (224; 112 or 64 for small CPU runs).
        short_side: ``(low, high)``: the resized short side is drawn from this inclusive range.
        flip: Random horizontal flips; ``False`` for direction-sensitive datasets.
        mean: Per-channel mean on the 0..1 scale.
        std: Per-channel std on the 0..1 scale.
        normalize: ``False`` returns values in [0, 1].
    """

    def __init__(
        self,
        crop_size: int = 224,
        short_side: tuple[int, int] = (256, 340),
        *,
        flip: bool = True,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        normalize: bool = True,
    ) -> None:
        self.crop_size = _check_size("crop_size", crop_size)
        if len(short_side) != 2:
            raise ValueError(f"short_side must be (low, high), got {short_side!r}")
        lo, hi = (_check_size("short_side", v) for v in short_side)
        if lo > hi or lo < self.crop_size:
            raise ValueError(
                f"short_side must satisfy crop_size <= low <= high, got {short_side!r} "
                f"with crop_size={crop_size}"
            )
        self.short_side = (lo, hi)
        self.flip = bool(flip)
        super().__init__(mean, std, normalize)

    @classmethod
    def for_dataset(cls, dataset: str, **kwargs: object) -> TrainTransform:
        """A transform with ``flip`` set by :func:`flip_allowed` for ``dataset``."""
        return cls(flip=flip_allowed(dataset), **kwargs)  # type: ignore[arg-type]

    def plan(self, height: int, width: int, rng: np.random.Generator) -> CropPlan:
        """Draws the crop for a ``height`` x ``width`` source."""
        return train_crop_plan(
            height, width, rng, crop_size=self.crop_size, short_side=self.short_side,
            flip=self.flip,
        )

    def __call__(self, clip: torch.Tensor | np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Transforms a full-frame ``uint8 [T, H, W, 3]`` clip to ``float32 [C, T, S, S]``."""
        frames = np.shape(clip)
        plan = self.plan(int(frames[1]), int(frames[2]), rng)
        return self.finish(_apply(clip, plan), plan)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop_size={self.crop_size}, short_side={self.short_side}, "
            f"flip={self.flip})"
        )


class EvalTransform(_Normalising):
    """Deterministic resize and crops for evaluation.

    Args:
        short_side: The short side is resized to this.
        crop_size: Output side (``== short_side`` for the final 3-crop protocol).
        num_crops: 1 (centre) or 3 (along the long side).
        mean: Per-channel mean on the 0..1 scale.
        std: Per-channel std on the 0..1 scale.
        normalize: ``False`` returns values in [0, 1].
    """

    def __init__(
        self,
        short_side: int = 256,
        crop_size: int = 224,
        num_crops: int = 1,
        *,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        normalize: bool = True,
    ) -> None:
        self.short_side = _check_size("short_side", short_side)
        self.crop_size = _check_size("crop_size", crop_size)
        if self.crop_size > self.short_side:
            raise ValueError(
                f"crop_size must not exceed short_side, got {crop_size} > {short_side}"
            )
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops!r}")
        self.num_crops = int(num_crops)
        super().__init__(mean, std, normalize)

    def plans(self, height: int, width: int) -> list[CropPlan]:
        """The ``num_crops`` crops of a ``height`` x ``width`` source."""
        return eval_crop_plans(
            height, width, short_side=self.short_side, crop_size=self.crop_size,
            num_crops=self.num_crops,
        )

    def __call__(self, clip: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Full-frame ``uint8 [T, H, W, 3]`` to ``float32 [num_crops, C, T, S, S]``."""
        import torch

        frames = np.shape(clip)
        views = [self.finish(_apply(clip, p), p) for p in self.plans(frames[1], frames[2])]
        return torch.stack(views)

    def __repr__(self) -> str:
        return (
            f"EvalTransform(short_side={self.short_side}, crop_size={self.crop_size}, "
            f"num_crops={self.num_crops})"
        )
