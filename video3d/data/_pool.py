"""Open readers once per loader worker: a small pool of open decoders, and the decoder choice.

:func:`open_reader` opens a file with the chosen decoder: ``"pyav"`` (:class:`VideoReader`, the
default), ``"torchcodec"`` (:class:`TorchCodecReader` on ``device``; files it cannot read
frame-exactly, such as AVI, fall back to PyAV) or ``"auto"`` (torchcodec on NVDEC when
``device`` is a CUDA device and torchcodec works, else PyAV).

:class:`ReaderPool` keeps up to ``max_open`` readers open per process, least recently used
first out, so a worker that reads the same file again (the 10 clips of a test video, a later
epoch with persistent workers) skips opening, probing and the keyframe scan. ``max_open=0``
opens and closes a reader per read, as before. The pool pickles to its settings alone, so every
DataLoader worker starts with an empty pool of its own. A reader whose read raised is closed,
not kept. A pool is the file-decoding *frame source* of
:class:`~video3d.data.datasets.VideoClipDataset` (``source=ReaderPool(...)``; the default is
``ReaderPool()``, a new PyAV reader per item): :meth:`ReaderPool.open` lends a reader of an
index entry.

Example:
    >>> from video3d.data import ReaderPool
    >>> pool = ReaderPool(max_open=4)
    >>> with pool.borrow("clip.mp4", num_frames=300) as reader:  # doctest: +SKIP
    ...     clip = reader.read(range(16))
    >>> pool.hits, pool.misses
    (0, 0)
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from video3d.data._reader import check_open_arguments

if TYPE_CHECKING:
    import torch

    from video3d.data.indexes import VideoEntry

__all__ = ["DECODERS", "Decoder", "ReaderPool", "open_reader"]

Decoder = Literal["pyav", "torchcodec", "auto"]
DECODERS = ("pyav", "torchcodec", "auto")


def _check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")


def open_reader(
    path: str | os.PathLike[str],
    *,
    decoder: Decoder = "pyav",
    device: str | torch.device | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    threads: int = 1,
) -> Any:
    """Opens ``path`` with ``decoder`` (see the module doc); returns a reader.

    Raises:
        ValueError: An unknown decoder.
        ImportError: ``decoder="torchcodec"`` without a working torchcodec.
        VideoDecodeError: The file cannot be opened.
    """
    from video3d.data.decoding import VideoReader

    _check_decoder(decoder)
    use_torchcodec = decoder == "torchcodec"
    if decoder == "auto":
        from video3d.data._torchcodec import torchcodec_status

        use_torchcodec = (
            device is not None and str(device).startswith("cuda") and torchcodec_status() is None
        )
    if use_torchcodec:
        from video3d.data._torchcodec import TorchCodecReader, UnsupportedContainerError

        with contextlib.suppress(UnsupportedContainerError):
            return TorchCodecReader(path, num_frames=num_frames, fps=fps, threads=threads,
                                    device=device or "cpu")
    return VideoReader(path, num_frames=num_frames, fps=fps, threads=threads)


class ReaderPool:
    """Up to ``max_open`` open readers per process, reused across reads of the same file.

    Args:
        max_open: Readers kept open (0: open and close per read).
        decoder: ``"pyav"``, ``"torchcodec"`` or ``"auto"`` (see :func:`open_reader`).
        device: Decoding device for torchcodec (``None``: CPU).
        threads: Decoder threads per reader :meth:`open` lends (1 in loader workers).

    Attributes:
        hits: Reads served by a reader already open (this process).
        misses: Reads that opened a reader.
    """

    def __init__(
        self,
        max_open: int = 0,
        *,
        decoder: Decoder = "pyav",
        device: str | torch.device | None = None,
        threads: int = 1,
    ) -> None:
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 0:
            raise ValueError(f"max_open must be a non-negative integer, got {max_open!r}")
        _check_decoder(decoder)
        check_open_arguments(None, None, threads)
        self.threads = threads
        self.max_open = max_open
        self.decoder: Decoder = decoder
        self.device = None if device is None else str(device)
        self._open: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def borrow(
        self,
        path: str | os.PathLike[str],
        *,
        num_frames: int | None = None,
        fps: float | None = None,
        threads: int = 1,
    ) -> Iterator[Any]:
        """A reader of ``path`` for the ``with`` block; kept open afterwards if the pool has
        room, closed if the block raised."""
        key = (os.fspath(path), num_frames, fps, threads)
        reader = self._open.pop(key, None)
        if reader is None:
            self.misses += 1
            reader = open_reader(path, decoder=self.decoder, device=self.device,
                                 num_frames=num_frames, fps=fps, threads=threads)
        else:
            self.hits += 1
        try:
            yield reader
        except BaseException:
            reader.close()
            raise
        if self.max_open == 0:
            reader.close()
            return
        self._open[key] = reader
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.close()

    def open(self, entry: VideoEntry) -> contextlib.AbstractContextManager[Any]:
        """A reader of ``entry``'s file for a ``with`` block (see :meth:`borrow`), with the
        index's frame count and rate and this pool's ``threads``."""
        return self.borrow(entry.path, num_frames=entry.num_frames, fps=entry.fps,
                           threads=self.threads)

    def close(self) -> None:
        """Closes every open reader."""
        while self._open:
            _, reader = self._open.popitem()
            reader.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()  # open files stay in their process
        state["hits"] = state["misses"] = 0
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (
            f"ReaderPool(max_open={self.max_open}, decoder={self.decoder!r}, "
            f"device={self.device!r}, threads={self.threads}, open={len(self._open)})"
        )
