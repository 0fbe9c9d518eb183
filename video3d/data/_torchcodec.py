"""Frame-exact reads through torchcodec (PyTorch's video decoder), on the CPU or on NVDEC.

:class:`TorchCodecReader` has the interface of :class:`~video3d.data.decoding.VideoReader`
(``read(indices, crop=..., size=...)`` returns ``uint8 [T, H, W, 3]``, ``num_frames``, ``fps``,
``width``, ``height``, ``info``, ``close``, a context manager) and decodes with
``torchcodec.decoders.VideoDecoder`` on ``device`` (``"cpu"``, or ``"cuda"``/``"cuda:N"`` for
the GPU's NVDEC engines; the frames then stay on the GPU). PyAV stays the default reader: this
one is optional (``pip install 'stageplan[torchcodec]'`` plus FFmpeg's shared libraries).

Frame identity: frame ``i`` is the ``i``-th frame in presentation order, as for the PyAV reader.
Every frame torchcodec returns is checked against the asked index through its own timestamp,
``round((pts - start) * fps)``; a disagreement raises :class:`VideoDecodeError` instead of
returning a wrong frame. Only containers that store a presentation time per packet (MP4/MOV,
Matroska/WebM) are accepted: torchcodec numbers AVI frames by guessed timestamps and returns
frame ``i - 1`` for ``i`` in B-frame AVI files (seen with torchcodec 0.13), so AVI (and other
containers) raise :class:`VideoDecodeError` and stay with PyAV. MP4/MOV open in torchcodec's
``"approximate"`` mode (frame positions from the header, no scan of the file, like the PyAV
reader); Matroska/WebM, whose headers have no frame count, in ``"exact"`` mode (one scan).

Crop and resize act on the decoded RGB frames (torch slicing, then an antialiased bilinear
resize), on the decoder's device; the PyAV reader's crop before the colour conversion is not
available here, so values may differ from the PyAV reader's by a few levels, never the frames.

Example:
    >>> from video3d.data import TorchCodecReader
    >>> with TorchCodecReader("clip.mp4", device="cpu") as reader:  # doctest: +SKIP
    ...     clip = reader.read([0, 8, 8, 3])      # uint8 [4, H, W, 3], frame 8 twice
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from video3d.data._reader import Box, FrameReader, check_open_arguments, crop_and_resize
from video3d.data.decoding import _has_packet_pts
from video3d.data.errors import VideoDecodeError

if TYPE_CHECKING:
    import torch

__all__ = ["TorchCodecReader", "UnsupportedContainerError", "torchcodec_status"]

_HEADER_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})


class UnsupportedContainerError(VideoDecodeError):
    """A container torchcodec cannot number frames in exactly (read it with PyAV)."""


def torchcodec_status() -> str | None:
    """``None`` when torchcodec imports and can decode; else why not (one line)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # ImportError, or RuntimeError when FFmpeg's libraries are missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"torchcodec unavailable ({type(exc).__name__}: {first[:160]})"
    return None


def _container_format(path: str) -> str:
    import av

    from video3d.data.decoding import _open_container

    try:
        container = _open_container(path, fast=True)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(f"cannot open as a video ({exc})", path=path) from exc
    try:
        if not container.streams.video:
            raise VideoDecodeError("file has no video stream", path=path)
        return str(container.format.name)
    finally:
        container.close()


class TorchCodecReader(FrameReader):
    """Reads frames of one video by index with torchcodec.

    Args:
        path: The video file (MP4/MOV or Matroska/WebM).
        num_frames: Known decoded frame count (from a dataset index); default: torchcodec's.
        fps: Known frame rate; defaults to the stream's.
        threads: FFmpeg decoder threads (CPU); 1 for DataLoader workers, 0 lets FFmpeg choose.
        device: ``"cpu"`` or a CUDA device (NVDEC); the frames come back on it.

    Raises:
        VideoDecodeError: Missing file, not a video, or a stream torchcodec cannot open;
            :class:`UnsupportedContainerError` for a container torchcodec cannot number
            frames in exactly (AVI, ...).
        ImportError: torchcodec (or FFmpeg's shared libraries) is not installed.
    """

    _holds = "an open decoder"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_frames: int | None = None,
        fps: float | None = None,
        threads: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        check_open_arguments(num_frames, fps, threads)
        self.path = os.fspath(path)
        self._decoder: Any = None
        problem = torchcodec_status()
        if problem is not None:
            raise ImportError(f"{problem}; install it with pip install 'stageplan[torchcodec]'")
        import torch
        from torchcodec.decoders import VideoDecoder

        self.device = torch.device(device)
        if not os.path.exists(self.path):
            raise VideoDecodeError("no such file", path=self.path)
        fmt = _container_format(self.path)
        if not _has_packet_pts(fmt):
            raise UnsupportedContainerError(
                f"torchcodec reads only MP4/MOV and Matroska/WebM frame-exactly, not {fmt!r} "
                "(use the PyAV VideoReader)",
                path=self.path,
            )
        exact = not any(name in _HEADER_FORMATS for name in fmt.split(","))
        try:
            self._decoder = VideoDecoder(
                self.path, dimension_order="NHWC", num_ffmpeg_threads=threads,
                device=str(self.device), seek_mode="exact" if exact else "approximate",
            )
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError from C++
            raise VideoDecodeError(f"torchcodec cannot open it ({exc})", path=self.path) from exc
        meta = self._decoder.metadata
        self.width: int = int(meta.width or 0)
        self.height: int = int(meta.height or 0)
        rate = fps if fps is not None else meta.average_fps
        if self.width < 1 or self.height < 1 or not rate or rate <= 0:
            self.close()
            raise VideoDecodeError("video stream has no frame size or rate", path=self.path)
        self._fps = float(rate)
        self._start = float(meta.begin_stream_seconds or 0.0)
        self._decoder_frames = len(self._decoder)
        self._num_frames = int(num_frames) if num_frames is not None else self._decoder_frames
        if self._num_frames < 1:
            self.close()
            raise VideoDecodeError("video stream has no frames", path=self.path)

    @property
    def closed(self) -> bool:
        """Whether the decoder was released."""
        return self._decoder is None

    def _read(
        self, wanted: np.ndarray, box: Box | None, size: tuple[int, int] | None
    ) -> torch.Tensor:
        """Decodes the frames at ``wanted``; the tensor is on the reader's device."""
        import torch

        unique = np.unique(wanted)
        if int(unique[-1]) >= self._decoder_frames:
            raise VideoDecodeError(
                f"frames from {self._decoder_frames} on not found: torchcodec sees "
                f"{self._decoder_frames} frames (the reader expected {self._num_frames})",
                path=self.path,
            )
        try:
            batch = self._decoder.get_frames_at(unique.tolist())
        except Exception as exc:  # C++ errors surface as RuntimeError
            raise VideoDecodeError(
                f"decoding failed before frame {int(unique[-1])} ({exc})", path=self.path
            ) from exc
        self._check_identity(unique, batch.pts_seconds)
        frames = crop_and_resize(batch.data, box, size)
        if not np.array_equal(unique, wanted):
            where = torch.from_numpy(np.searchsorted(unique, wanted)).to(frames.device)
            frames = frames.index_select(0, where)
        return frames.contiguous()

    def _check_identity(self, unique: np.ndarray, pts_seconds: torch.Tensor) -> None:
        got = np.rint((pts_seconds.cpu().numpy() - self._start) * self._fps).astype(np.int64)
        if not np.array_equal(got, unique):
            wrong = np.flatnonzero(got != unique)[:5]
            pairs = ", ".join(f"{int(unique[k])}->{int(got[k])}" for k in wrong)
            raise VideoDecodeError(
                f"torchcodec returned other frames than asked (asked->got by timestamp: "
                f"{pairs}); read this file with the PyAV VideoReader",
                path=self.path,
            )

    # ------------------------------------------------------------------ lifetime
    def _release(self) -> None:
        self._decoder = None

    def _repr_extra(self) -> str:
        return f", device={self.device}"
