"""Clip datasets for training, planning evaluation and the final evaluation protocol.

:class:`VideoClipDataset` is a map-style :class:`torch.utils.data.Dataset` over index entries
(:class:`~video3d.data.indexes.VideoEntry`). Its frames come from a *frame source*
(:class:`FrameSource`), one of:

* the files, decoded per item: a :class:`~video3d.data._pool.ReaderPool` (the default,
  ``ReaderPool()``, opens a single-threaded PyAV :class:`~video3d.data.decoding.VideoReader` per
  item and closes it; a pool with ``max_open`` keeps readers open across items, and
  ``decoder="torchcodec"`` decodes with torchcodec). It pickles to its settings, so the dataset
  pickles into :class:`~torch.utils.data.DataLoader` workers;
* memory: a :class:`~video3d.data._cache.FrameCache`, which decodes each video whole once and
  serves clips from its frames (small datasets).

Sampling, seeding, the short-video policy, transforms and the handling of unreadable videos
are the dataset's, the same for every source: the source only opens a reader for an entry. So
both sources give the same frames, crops and flips for the same ``(seed, epoch, index)``; where
a crop is resized, the PyAV reader resizes it with libswscale before the colour conversion and
the cache with torch on RGB frames, so pixel values may differ by a few levels.

Modes:

* ``"train"``: one randomly placed clip, random scale/crop/flip; item ``(clip, label)`` with
  ``clip`` ``float32 [C, T, H, W]``. Randomness is a pure function of ``(seed, epoch, index,
  attempt)`` (call :meth:`~VideoClipDataset.set_epoch` each epoch; ``attempt`` counts the
  videos that failed for this item), so results depend neither on the number of workers nor
  on the source. A video that fails to decode is recorded in the dataset's
  :class:`BadVideoLog` (one warning naming the file and the decoder's error, the first time)
  and replaced by another one drawn at random (at most ``max_retries`` in a row; then
  :class:`UnreadableVideosError`); a video the log already holds is not opened again. Failures are
  counted in :attr:`~VideoClipDataset.num_failures` (per process).
* ``"val"`` (planning evaluation): one centre clip, one centre crop; item ``(clip, label)``.
* ``"test"`` (final protocol): ``num_clips`` (10) clips x ``num_crops`` (3) crops per video;
  one item per (video, clip): ``(views, label, video_index)`` with ``views``
  ``float32 [num_crops, C, T, H, W]``; :func:`average_video_scores` averages per video
  (:class:`VideoScores` does so batch by batch).
  Decoding errors in ``"val"``/``"test"`` are recorded in the log, then raised: an evaluation
  must not change its videos (the trainer probes and leaves out unreadable videos before it
  starts, see :func:`video3d.trainer.load_data`).

For train and val the crop box is computed from the frame size before decoding and handed to
the reader, so only the crop is colour-converted and resized (see :mod:`.transforms`).

Example:
    >>> from torch.utils.data import DataLoader
    >>> from video3d.data import VideoClipDataset, read_video_list, TrainTransform
    >>> index = read_video_list("synthetic/train.txt")  # doctest: +SKIP
    >>> data = VideoClipDataset(index.entries, mode="train", sampling="uniform", clip_len=16,
    ...                         transform=TrainTransform(56, (64, 80)))  # doctest: +SKIP
    >>> loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=2)  # doctest: +SKIP
    >>> clips, labels = next(iter(loader))  # clips: [8, 3, 16, 56, 56]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from video3d.data._pool import ReaderPool
from video3d.data._reader import FrameReader
from video3d.data.errors import VideoDecodeError
from video3d.data.indexes import VideoEntry
from video3d.data.samplers import (
    DEFAULT_SHORT_POLICY,
    ClipSampler,
    SamplingStrategy,
    ShortVideoPolicy,
)
from video3d.data.transforms import EvalTransform, TrainTransform

__all__ = [
    "BadVideoLog",
    "DatasetMode",
    "FrameSource",
    "UnreadableVideosError",
    "VideoClipDataset",
    "VideoScores",
    "average_video_scores",
]

_logger = logging.getLogger(__name__)
DatasetMode = Literal["train", "val", "test"]
_MODES = ("train", "val", "test")


class UnreadableVideosError(RuntimeError):
    """Every video drawn for one training item, replacements included, was unreadable."""


def _remove_if_owner(path: str, owner: int) -> None:
    if os.getpid() == owner:  # never from a forked loader worker holding a copy
        with contextlib.suppress(OSError):
            os.remove(path)


class BadVideoLog:
    """The unreadable videos of a run: each file once, with the decoder's error.

    Datasets record here every video they fail to decode, so that a video is reported once
    (the first :meth:`record` returns ``True``, and the caller warns) however often it is
    drawn, and a run can count its bad videos at the end. With a ``file`` (one JSON line per
    video), records made in DataLoader worker processes reach the process that reads
    :attr:`errors`; without one the log lives in memory (per process).

    Example:
        >>> log = BadVideoLog()
        >>> log.record("a.mp4", "cannot open as a video"), log.record("a.mp4", "again")
        (True, False)
        >>> "a.mp4" in log, len(log), log.errors
        (True, 1, {'a.mp4': 'cannot open as a video'})
    """

    def __init__(self, file: str | os.PathLike[str] | None = None) -> None:
        self.file = None if file is None else os.fspath(file)
        self._errors: dict[str, str] = {}

    @classmethod
    def temporary(cls) -> BadVideoLog:
        """A log kept in a new temporary file, removed when this object is collected."""
        fd, path = tempfile.mkstemp(prefix="video3d-bad-videos-", suffix=".jsonl")
        os.close(fd)
        log = cls(path)
        weakref.finalize(log, _remove_if_owner, path, os.getpid())
        return log

    def _read_file(self) -> None:
        if self.file is None:
            return
        try:
            with open(self.file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                path, reason = json.loads(line)
            except (ValueError, TypeError):
                continue  # a line another process is still writing
            self._errors.setdefault(str(path), str(reason))

    def record(self, path: str, reason: str) -> bool:
        """Records ``path`` as unreadable; ``True`` the first time it is recorded."""
        if path in self._errors:
            return False
        self._read_file()
        if path in self._errors:
            return False
        self._errors[path] = reason
        if self.file is not None:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(json.dumps([path, reason]) + "\n")
        return True

    @property
    def errors(self) -> dict[str, str]:
        """Every recorded video: path -> the decoder's error (records of all processes)."""
        self._read_file()
        return dict(self._errors)

    def __contains__(self, path: object) -> bool:
        """Whether this process knows ``path`` as unreadable (no file read: cheap per item)."""
        return path in self._errors

    def __len__(self) -> int:
        return len(self.errors)

    def __repr__(self) -> str:
        return f"BadVideoLog({len(self)} videos, file={self.file!r})"


class FrameSource(Protocol):
    """Where a :class:`VideoClipDataset` gets its frames: a reader per index entry.

    ``open(entry)`` returns a context manager that yields a
    :class:`~video3d.data._reader.FrameReader` of the video (``num_frames``, ``height``,
    ``width``, ``read(indices, crop=..., size=...)``) and raises
    :class:`~video3d.data.errors.VideoDecodeError` when the video cannot be read.
    :class:`~video3d.data._pool.ReaderPool` (files) and :class:`~video3d.data._cache.FrameCache`
    (memory) are the two sources.
    """

    def open(self, entry: VideoEntry) -> contextlib.AbstractContextManager[FrameReader]:
        """A reader of ``entry`` for a ``with`` block."""
        ...


def decode_failure_reason(exc: BaseException) -> str:
    """The decoder's message of a failure, without the file name a VideoDecodeError prefixes."""
    return exc.reason if isinstance(exc, VideoDecodeError) else str(exc)


class VideoClipDataset(Dataset[Any]):
    """Clips of encoded videos, read from a frame source (decoded per item by default).

    Args:
        entries: Index entries (``num_frames``/``fps`` from :func:`build_index` avoid counting
            frames at load time).
        mode: ``"train"``, ``"val"`` or ``"test"`` (see the module doc).
        sampling: ``"consecutive"`` or ``"uniform"``.
        clip_len: Frames per clip.
        stride: Frame step of consecutive clips.
        segment_len: Frames per run of uniform clips (4 in the paper).
        short_policy: Policy for videos shorter than the clip window.
        transform: A :class:`TrainTransform` (train) or :class:`EvalTransform` (val/test), or
            any callable ``(uint8 [T, H, W, 3], rng) -> tensor`` (train) /
            ``(uint8 clip) -> tensor`` (val/test). Defaults: ``TrainTransform()``,
            ``EvalTransform()`` (val), ``EvalTransform(256, 256, num_crops=3)`` (test).
        num_clips: Evenly placed clips per video in test mode (default 10); 1 in val mode.
        seed: Seed of all training randomness.
        max_retries: Replacement attempts after a training decode failure.
        threads: Decoder threads per reader of the default source.
        bad_videos: Where unreadable videos are recorded (and known ones skipped); default:
            a new in-memory log of this dataset.
        source: The frame source (see the module doc); default ``ReaderPool(threads=threads)``,
            a new PyAV reader per item.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        *,
        mode: DatasetMode = "train",
        sampling: SamplingStrategy = "consecutive",
        clip_len: int = 16,
        stride: int = 1,
        segment_len: int = 4,
        short_policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY,
        transform: Callable[..., torch.Tensor] | None = None,
        num_clips: int | None = None,
        seed: int = 0,
        max_retries: int = 10,
        threads: int = 1,
        bad_videos: BadVideoLog | None = None,
        source: FrameSource | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.entries = list(entries)
        if not self.entries:
            raise ValueError("entries is empty")
        self.mode = mode
        self.sampler = ClipSampler(sampling, clip_len, stride, segment_len, short_policy)
        if num_clips is None:
            num_clips = 10 if mode == "test" else 1
        if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
            raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
        if mode == "val" and num_clips != 1:
            raise ValueError(f"val mode takes one clip per video, got num_clips={num_clips}")
        self.num_clips = num_clips if mode == "test" else 1
        defaults: dict[str, Callable[..., torch.Tensor]] = {
            "train": TrainTransform(),
            "val": EvalTransform(),
            "test": EvalTransform(256, 256, num_crops=3),
        }
        self.transform: Callable[..., torch.Tensor] = (
            transform if transform is not None else defaults[mode]
        )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.max_retries = max_retries
        self.seed = int(seed)
        if source is not None and threads != 1:
            raise ValueError(f"threads={threads!r} sets the default source's decoder threads; "
                             "with a source, set its own (ReaderPool(threads=...))")
        self.source: FrameSource = source if source is not None else ReaderPool(threads=threads)
        self.epoch = 0
        self.num_failures = 0
        self.failed_paths: list[str] = []
        self.bad_videos = bad_videos if bad_videos is not None else BadVideoLog()

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that, with the seed and the index, determines training draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries) * self.num_clips

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        if self.mode == "train":
            return self._train_item(index)
        video, clip = divmod(index, self.num_clips)
        entry = self.entries[video]
        try:
            views = self._eval_views(entry, clip)
        except VideoDecodeError as exc:
            if self.bad_videos.record(entry.path, decode_failure_reason(exc)):
                _logger.warning("unreadable video %s: %s; the %s evaluation cannot go on",
                                entry.path, decode_failure_reason(exc), self.mode)
            raise
        if self.mode == "val":
            return views, entry.label
        return views, entry.label, video

    # ------------------------------------------------------------------ training
    def _train_item(self, index: int) -> tuple[torch.Tensor, int]:
        candidate = index
        for attempt in range(self.max_retries + 1):
            rng = np.random.default_rng([self.seed, self.epoch, index, attempt])
            entry = self.entries[candidate]
            if entry.path not in self.bad_videos:
                try:
                    return self._train_clip(entry, rng), entry.label
                except (VideoDecodeError, ValueError) as exc:
                    reason = decode_failure_reason(exc)
                    if self.bad_videos.record(entry.path, reason):
                        _logger.warning(
                            "unreadable video %s: %s; skipping it, replacing it with another "
                            "video", entry.path, reason,
                        )
            self.num_failures += 1
            self.failed_paths.append(entry.path)
            # Its own stream: the draw does not depend on how far the failed decode got.
            redraw = np.random.default_rng([self.seed, self.epoch, index, attempt, 1])
            candidate = int(redraw.integers(len(self.entries)))
        raise UnreadableVideosError(
            f"{self.max_retries + 1} videos in a row failed to decode for item {index}; "
            f"last: {self.failed_paths[-1]}"
        )

    def _train_clip(self, entry: VideoEntry, rng: np.random.Generator) -> torch.Tensor:
        with self.source.open(entry) as reader:
            indices = self.sampler.train_clip(reader.num_frames, rng)
            transform = self.transform
            if isinstance(transform, TrainTransform):
                plan = transform.plan(reader.height, reader.width, rng)
                frames = reader.read(indices, crop=plan.box, size=plan.size)
                return transform.finish(frames, plan)
            return transform(reader.read(indices), rng)

    # ------------------------------------------------------------------ evaluation
    def _eval_views(self, entry: VideoEntry, clip: int) -> torch.Tensor:
        with self.source.open(entry) as reader:
            indices = self.sampler.test_clips(reader.num_frames, self.num_clips)[clip]
            transform = self.transform
            if isinstance(transform, EvalTransform):
                plans = transform.plans(reader.height, reader.width)
                if len(plans) == 1:
                    (plan,) = plans
                    frames = reader.read(indices, crop=plan.box, size=plan.size)
                    out = transform.finish(frames, plan)
                    return out if self.mode == "val" else out.unsqueeze(0)
                views = transform(reader.read(indices))
                return views
            return transform(reader.read(indices))

    @property
    def readers(self) -> FrameSource:
        """The frame source under its former name (scripts set a
        :class:`~video3d.data._pool.ReaderPool` here); the same as :attr:`source`."""
        return self.source

    @readers.setter
    def readers(self, source: FrameSource | None) -> None:
        self.source = source if source is not None else ReaderPool()

    def __repr__(self) -> str:
        s = self.sampler
        return (
            f"VideoClipDataset({len(self.entries)} videos, mode={self.mode!r}, "
            f"sampling={s.strategy!r}, clip_len={s.clip_len}, num_clips={self.num_clips}, "
            f"transform={self.transform!r}, source={self.source!r})"
        )


class VideoScores:
    """Per-video sums of view scores, added batch by batch; their mean per video at the end.

    The final protocol scores every (video, clip) item, with one or more crops each; a video's
    score is the mean over all its views. Adding keeps only ``[num_videos, K]`` sums and counts,
    so a whole test set never sits in memory, and sums from several processes can be added up
    before the mean (``mean(all_sum=...)``).

    Args:
        num_videos: Rows of the result.
        num_classes: Scores per view.
        dtype: Dtype of the sums (scores are converted to it).
        device: Device of the sums.

    Example:
        >>> import torch
        >>> acc = VideoScores(2, 2, dtype=torch.float64)
        >>> acc.add(torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([1, 1]))
        >>> acc.mean().tolist()
        [[0.0, 0.0], [2.0, 1.0]]
    """

    def __init__(
        self, num_videos: int, num_classes: int, *, dtype: Any = None, device: Any = None
    ) -> None:
        self.sums = torch.zeros(num_videos, num_classes, dtype=dtype, device=device)
        self.counts = torch.zeros(num_videos, dtype=self.sums.dtype, device=device)

    def add(self, scores: torch.Tensor, video_index: torch.Tensor) -> None:
        """Adds the scores ``[N, K]`` (or ``[N, V, K]``: the mean over the ``V`` crops is one
        view) of ``N`` items, item ``i`` of video ``video_index[i]``."""
        if scores.ndim == 3:
            scores = scores.mean(dim=1)
        if scores.ndim != 2 or video_index.ndim != 1 or len(video_index) != len(scores):
            raise ValueError(
                f"expected scores [N, K] or [N, V, K] and video_index [N], got "
                f"{tuple(scores.shape)} and {tuple(video_index.shape)}"
            )
        index = video_index.to(device=self.sums.device, dtype=torch.long)
        self.sums.index_add_(0, index, scores.to(self.sums))
        self.counts.index_add_(0, index, torch.ones_like(index, dtype=self.counts.dtype))

    def mean(
        self, all_sum: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``[num_videos, K]`` mean score of each video (zeros for videos without items);
        ``all_sum`` first adds up the sums and counts of every process (DDP)."""
        sums, counts = self.sums, self.counts
        if all_sum is not None:
            sums, counts = all_sum(sums), all_sum(counts)
        return sums / counts.clamp(min=1).unsqueeze(1)


def average_video_scores(
    scores: torch.Tensor, video_index: torch.Tensor, num_videos: int | None = None
) -> torch.Tensor:
    """Averages per-view scores ``[N, K]`` (or ``[N, V, K]``) over views of the same video.

    Args:
        scores: Scores of ``N`` items (with ``V`` crops each, optionally).
        video_index: ``[N]`` video index of every item (the third element of a test item).
        num_videos: Rows of the result (default ``max(video_index) + 1``).

    Returns:
        ``[num_videos, K]`` mean score of each video (zeros for videos without items).
    """
    count = int(video_index.max()) + 1 if num_videos is None else int(num_videos)
    acc = VideoScores(count, scores.shape[-1], dtype=scores.dtype, device=scores.device)
    acc.add(scores, video_index)
    return acc.mean()
