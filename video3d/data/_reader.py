"""What every frame reader shares: argument checks, properties, lifetime and ``read``.

:class:`FrameReader` is the base of the readers behind one interface: the PyAV
:class:`~video3d.data.decoding.VideoReader`, the optional
:class:`~video3d.data._torchcodec.TorchCodecReader`, and the in-memory
:class:`~video3d.data._cache.MemoryReader` over frames a
:class:`~video3d.data._cache.FrameCache` decoded once. ``read(indices, crop=..., size=...)``
checks its arguments here (so every reader refuses the same requests with the same messages),
then hands the checked request to the subclass's ``_read``. A reader is a context manager,
closes once, refuses reads after :meth:`~FrameReader.close`, and does not pickle (it holds an
open file or decoder: open it inside the loader worker).

Example:
    >>> import torch
    >>> from video3d.data._cache import MemoryReader
    >>> frames = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 6, 8, 3)
    >>> with MemoryReader("clip.mp4", frames, fps=25.0) as reader:
    ...     reader.read([3, 1], crop=(0, 0, 2, 2)).shape, reader.num_frames
    (torch.Size([2, 2, 2, 3]), 4)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from video3d.data.errors import VideoDecodeError

if TYPE_CHECKING:
    import torch

    from video3d.data.decoding import VideoInfo

__all__ = ["FrameReader", "crop_and_resize"]

Box = tuple[int, int, int, int]
_R = TypeVar("_R", bound="FrameReader")


def check_open_arguments(num_frames: int | None, fps: float | None, threads: int) -> None:
    """The checks of the arguments every reader takes when it opens a video."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
    if num_frames is not None and (isinstance(num_frames, bool) or num_frames < 1):
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")


def _check_box(crop: Sequence[int], width: int, height: int, path: str) -> Box:
    if len(crop) != 4:
        raise ValueError(f"crop must be (top, left, height, width), got {crop!r} for {path}")
    top, left, h, w = (int(v) for v in crop)
    if h < 1 or w < 1 or top < 0 or left < 0 or top + h > height or left + w > width:
        raise ValueError(
            f"crop {crop!r} (top, left, height, width) does not fit the {width}x{height} "
            f"frames of {path}"
        )
    return top, left, h, w


def check_request(
    indices: Any,
    crop: Sequence[int] | None,
    size: Sequence[int] | None,
    *,
    num_frames: int,
    width: int,
    height: int,
    path: str,
) -> tuple[np.ndarray, Box | None, tuple[int, int] | None]:
    """A ``read`` request checked: ``(indices, crop box, output size)``."""
    if hasattr(indices, "cpu"):  # a tensor, maybe on a GPU
        indices = indices.cpu()
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted.size == 0:
        raise ValueError(f"no frame indices given for {path}")
    bad = wanted[(wanted < 0) | (wanted >= num_frames)]
    if bad.size:
        raise ValueError(
            f"frame indices {sorted(set(bad.tolist()))[:5]} out of range for {path}, "
            f"which has {num_frames} frames"
        )
    box = None if crop is None else _check_box(crop, width, height, path)
    out: tuple[int, int] | None = None
    if size is not None:
        out_h, out_w = (int(v) for v in size)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"size must be (height, width) >= 1, got {size!r}")
        out = (out_h, out_w)
    return wanted, box, out


def crop_and_resize(
    frames: torch.Tensor, box: Box | None, size: tuple[int, int] | None
) -> torch.Tensor:
    """Crops ``uint8 [T, H, W, 3]`` frames to ``box``, then resizes the crop to ``size``
    (antialiased bilinear, on the frames' device); readers that work on decoded RGB frames."""
    import torch
    import torch.nn.functional as F

    if box is not None:
        top, left, h, w = box
        frames = frames[:, top : top + h, left : left + w]
    if size is None or tuple(frames.shape[1:3]) == size:
        return frames
    if frames.device.type == "cpu":
        from video3d.data.transforms import resize_uint8

        return resize_uint8(frames, size)
    nchw = frames.permute(0, 3, 1, 2).float()
    out = F.interpolate(nchw, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class FrameReader:
    """Reads frames of one video by index (see the module doc).

    Subclasses set ``path``, ``width``, ``height``, ``_num_frames`` and ``_fps`` when they
    open, and implement :attr:`closed`, ``_read(wanted, box, size)`` (a checked request:
    ``int64`` indices in range, in the order asked) and ``_release()``.
    """

    path: str
    width: int
    height: int
    _num_frames: int
    _fps: float
    _counted: bool = False
    #: What the reader holds open, for the message of a refused pickle.
    _holds = "an open file"

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        """Frame count (the index's when given, else the reader's own)."""
        return self._num_frames

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self._fps

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or opening failed)."""
        raise NotImplementedError

    @property
    def info(self) -> VideoInfo:
        """Frame count, rate and size as a :class:`~video3d.data.decoding.VideoInfo`."""
        from video3d.data.decoding import VideoInfo

        return VideoInfo(self._num_frames, self.fps, self.width, self.height, self._counted)

    # ------------------------------------------------------------------ reading
    def read(
        self,
        indices: Iterable[int] | np.ndarray | torch.Tensor,
        *,
        crop: Sequence[int] | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Returns the frames at ``indices``.

        Args:
            indices: Frame indices in ``[0, num_frames)``; any order, repeats allowed.
            crop: ``(top, left, height, width)`` box in source pixels.
            size: ``(height, width)`` of the returned frames (resizes the crop, or the frame).

        Returns:
            ``uint8`` tensor ``[len(indices), H, W, 3]`` in RGB.

        Raises:
            ValueError: An index is out of range, or the crop does not fit.
            VideoDecodeError: The reader is closed, or the video cannot be decoded up to the
                wanted frames.
        """
        wanted, box, out = check_request(
            indices, crop, size, num_frames=self._num_frames, width=self.width,
            height=self.height, path=self.path,
        )
        if self.closed:
            raise VideoDecodeError("reader is closed", path=self.path)
        return self._read(wanted, box, out)

    def _read(
        self, wanted: np.ndarray, box: Box | None, size: tuple[int, int] | None
    ) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ lifetime
    def _release(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the reader holds; further reads raise :class:`VideoDecodeError`."""
        self._release()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown, or a failed open
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            f"{type(self).__name__} holds {self._holds} and is not picklable; pass paths to "
            "workers and open readers there"
        )

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, num_frames={self._num_frames}, "
            f"fps={self.fps:.3f}, size={self.width}x{self.height}{self._repr_extra()})"
        )
