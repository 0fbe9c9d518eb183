"""The in-memory frame source: every video decoded once, clips read from its frames.

:class:`FrameCache` is a frame source for :class:`~video3d.data.datasets.VideoClipDataset`
(``source=FrameCache()``), for small datasets: the first time a video is opened its frames are
all decoded (PyAV, :class:`~video3d.data.decoding.VideoReader`) and kept, keyed by path; later
opens hand out a :class:`MemoryReader` over them, whose ``read(indices, crop=..., size=...)``
slices the cached frames, crops, and resizes the ``uint8`` crop (antialiased bilinear, as
:class:`~video3d.data.transforms.TrainTransform` does to decoded clips). A video that fails to
decode raises :class:`~video3d.data.errors.VideoDecodeError` from :meth:`FrameCache.open`, as a
file reader does, so a dataset treats it the same way (retry in training, raise in evaluation).

Example:
    >>> from video3d.data import FrameCache, VideoClipDataset
    >>> cache = FrameCache()
    >>> data = VideoClipDataset(entries, clip_len=8, source=cache)  # doctest: +SKIP
    >>> clip, label = data[0]; len(cache)  # doctest: +SKIP
    1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from video3d.data._reader import Box, FrameReader, crop_and_resize

if TYPE_CHECKING:
    import torch

    from video3d.data.indexes import VideoEntry

__all__ = ["FrameCache", "MemoryReader"]


class MemoryReader(FrameReader):
    """A reader over decoded frames ``uint8 [T, H, W, 3]`` of the video at ``path``.

    Args:
        path: The video the frames came from (for messages).
        frames: All its frames.
        fps: Its frame rate (``None``: unknown, reported as 0 by :attr:`fps`).
    """

    _holds = "decoded frames"

    def __init__(self, path: str, frames: torch.Tensor, *, fps: float | None = None) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
            raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got "
                             f"{tuple(frames.shape)} for {path}")
        self.path = path
        self._frames: torch.Tensor | None = frames
        self._num_frames = int(frames.shape[0])
        self.height, self.width = int(frames.shape[1]), int(frames.shape[2])
        self._fps = float(fps) if fps else 0.0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._frames is None

    def _read(
        self, wanted: np.ndarray, box: Box | None, size: tuple[int, int] | None
    ) -> torch.Tensor:
        import torch

        assert self._frames is not None
        frames = self._frames
        if box is not None:  # crop the view first: only the crop is copied
            top, left, h, w = box
            frames = frames[:, top : top + h, left : left + w]
        return crop_and_resize(frames[torch.from_numpy(wanted)], None, size)

    def _release(self) -> None:
        self._frames = None  # the cache keeps them


class FrameCache:
    """Decoded frames of whole videos, keyed by path (decoded on first use); a frame source.

    It pickles with the frames it holds (a run that caches keeps its loaders in-process).
    """

    def __init__(self) -> None:
        self._frames: dict[str, tuple[torch.Tensor, float]] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def _load(self, entry: VideoEntry) -> tuple[torch.Tensor, float]:
        held = self._frames.get(entry.path)
        if held is None:
            from video3d.data.decoding import VideoReader

            with VideoReader(entry.path, num_frames=entry.num_frames, fps=entry.fps) as reader:
                held = reader.read(np.arange(reader.num_frames)), reader.fps
            self._frames[entry.path] = held
        return held

    def get(self, entry: VideoEntry) -> torch.Tensor:
        """``uint8 [T, H, W, 3]``: every frame of ``entry``.

        Raises:
            VideoDecodeError: The video cannot be decoded to its last frame.
        """
        return self._load(entry)[0]

    def open(self, entry: VideoEntry) -> MemoryReader:
        """A reader over the frames of ``entry`` (decoding them first if they are not held).

        Raises:
            VideoDecodeError: The video cannot be decoded to its last frame.
        """
        frames, fps = self._load(entry)
        return MemoryReader(entry.path, frames, fps=fps)

    def __repr__(self) -> str:
        return f"FrameCache({len(self)} videos)"
