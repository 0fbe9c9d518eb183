"""Data for the trainer: resolve an index, split it, and build clip datasets.

An *index directory* holds plain lists (``train.txt``, optionally ``test.txt``, one
``path num_frames label`` per line) and ``classes.txt`` — what ``video3d data index`` and
:func:`video3d.data.make_synthetic_dataset` write. Planning splits ``train.txt`` into a training
part and an internal validation part (seeded, class-stratified); ``test.txt`` is used only by the
final evaluation.

For small datasets (``cache_videos``) every video is decoded once and its frames are kept in
memory; clips are then sampled and cropped from the cached frames with the same samplers and
transforms as :class:`video3d.data.VideoClipDataset` uses on the files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from video3d.trainer._config import TrainConfig

if TYPE_CHECKING:
    import torch

    from video3d.data import VideoEntry

__all__ = [
    "CachedClipDataset",
    "DataBundle",
    "DataError",
    "FrameCache",
    "default_data_dir",
    "load_data",
    "make_dataset",
]


class DataError(ValueError):
    """The dataset is missing or inconsistent (index vs classes vs preset)."""


@dataclass
class DataBundle:
    """The videos of one run.

    Attributes:
        root: The index directory (or the train list's folder).
        classes: Class names, index = label.
        train: The training part of the training list.
        val: The internal validation part (planning's metric).
        test: The official test list (final evaluation only; may be empty).
        cache: Decoded frames, shared by every dataset of the run (``None``: decode on the
            fly from the files).
    """

    root: str
    classes: list[str]
    train: list[VideoEntry]
    val: list[VideoEntry]
    test: list[VideoEntry]
    cache: FrameCache | None = None
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def default_data_dir(config: TrainConfig) -> Path:
    """Where a preset that generates its own data keeps it: ``$VIDEO3D_DATA or .data/<name>``."""
    base = os.environ.get("VIDEO3D_DATA", ".data")
    return Path(base) / config.name


def _generate(root: Path, config: TrainConfig, stream: Any) -> None:
    from video3d.data import make_synthetic_dataset

    print(f"generating the synthetic dataset in {root} (first use) ...", file=stream, flush=True)
    args = dict(config.synthetic)
    args.setdefault("seed", config.seed)
    make_synthetic_dataset(root, **args)


def _lists(data: Path) -> tuple[Path, Path | None]:
    if data.is_dir():
        train = data / "train.txt"
        if not train.is_file():
            raise DataError(
                f"{data} is not an index directory: it has no train.txt (build one with "
                "`video3d data index`)"
            )
        test = data / "test.txt"
        return train, test if test.is_file() else None
    if data.is_file():
        test = data.with_name("test.txt")
        return data, test if test.is_file() and test != data else None
    raise DataError(f"dataset not found: {data}")


def load_data(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    stream: Any = None,
    generate: bool = True,
) -> DataBundle:
    """Resolve and check the dataset of a run (raises :class:`DataError` before any training).

    Args:
        data: An index directory or a train list; ``None``: the preset's generated dataset
            (only presets with ``synthetic`` settings have one).
        config: The run's configuration (class count, internal validation size, seed).
        stream: Where to print a note when the synthetic dataset is generated.
        generate: Generate the preset's synthetic dataset in its default folder when it is
            missing (only when ``data`` is ``None``; an explicit missing path is an error).
    """
    from video3d.data import IndexFormatError, read_video_list, split_train_val

    stream = sys.stderr if stream is None else stream
    if data is None:
        if not config.synthetic:
            raise DataError(f"preset {config.name!r} needs --data (an index directory)")
        path = default_data_dir(config)
    else:
        path = Path(data)
    if data is None and generate and not (path / "train.txt").is_file():
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            raise DataError(f"dataset not found: {path} has no train.txt (remove it to "
                            "regenerate the synthetic dataset)")
        _generate(path, config, stream)
    train_list, test_list = _lists(path)
    try:
        index = read_video_list(train_list)
        test = read_video_list(test_list, classes=index.classes) if test_list else None
    except (IndexFormatError, FileNotFoundError) as exc:
        raise DataError(f"index and classes disagree: {exc}") from None
    classes = list(index.classes)
    if config.num_classes is not None and len(classes) != config.num_classes:
        raise DataError(
            f"index and classes disagree: {train_list} has {len(classes)} classes, preset "
            f"{config.name!r} expects num_classes={config.num_classes}"
        )
    if len(classes) < 2:
        raise DataError(f"{train_list}: a classifier needs at least 2 classes, got {classes}")
    used = {e.label for e in index.entries}
    if len(used) < len(classes) and len(index.entries) >= len(classes):
        missing = [classes[i] for i in range(len(classes)) if i not in used]
        print(f"note: classes without training videos: {missing[:5]}", file=stream)
    entries = list(index.entries)
    test_entries = list(test.entries) if test else []
    _check_files(entries + test_entries, train_list)
    try:
        train, val = split_train_val(entries, config.val_size, seed=config.seed)
    except ValueError as exc:
        raise DataError(f"cannot split {len(entries)} training videos: {exc}") from None
    cache = FrameCache() if config.cache_videos else None
    return DataBundle(
        root=str(path), classes=classes, train=train, val=val, test=test_entries, cache=cache,
        description={"data": str(path), "train_list": str(train_list),
                     "test_list": str(test_list) if test_list else None},
    )


def _check_files(entries: Sequence[VideoEntry], listed_in: Path) -> None:
    missing = [e.path for e in entries if not os.path.isfile(e.path)]
    if missing:
        raise DataError(
            f"{len(missing)} video(s) listed in {listed_in.parent} are missing, e.g. {missing[0]}"
        )


# ------------------------------------------------------------------------------ datasets
class FrameCache:
    """Decoded frames of whole videos, keyed by path (decoded on first use)."""

    def __init__(self) -> None:
        self._frames: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, entry: VideoEntry) -> torch.Tensor:
        """``uint8 [T, H, W, 3]`` frames of ``entry``."""
        frames = self._frames.get(entry.path)
        if frames is None:
            from video3d.data import VideoReader

            with VideoReader(entry.path, num_frames=entry.num_frames, fps=entry.fps) as reader:
                frames = reader.read(np.arange(reader.num_frames))
            self._frames[entry.path] = frames
        return frames


class CachedClipDataset:
    """Like :class:`video3d.data.VideoClipDataset`, but samples clips from cached frames.

    Items: ``(clip, label)`` in train and val modes, ``(views, label, video_index)`` in test
    mode, exactly as the file-backed dataset returns them.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        cache: FrameCache,
        *,
        mode: str,
        sampler: Any,
        transform: Any,
        num_clips: int = 1,
        seed: int = 0,
    ) -> None:
        self.entries = list(entries)
        self.cache = cache
        self.mode = mode
        self.sampler = sampler
        self.transform = transform
        self.num_clips = num_clips if mode == "test" else 1
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries) * self.num_clips

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if self.mode == "train":
            entry = self.entries[index]
            frames = self.cache.get(entry)
            rng = np.random.default_rng([self.seed, self.epoch, index])
            indices = self.sampler.train_clip(len(frames), rng)
            return self.transform(frames[indices], rng), entry.label
        video, clip = divmod(index, self.num_clips)
        entry = self.entries[video]
        frames = self.cache.get(entry)
        indices = self.sampler.test_clips(len(frames), self.num_clips)[clip]
        views = self.transform(frames[indices])
        if self.mode == "val":
            return views[0], entry.label
        return views, entry.label, video


def make_dataset(
    entries: Sequence[VideoEntry],
    config: TrainConfig,
    *,
    mode: str,
    sampling: str,
    clip_length: int,
    cache: FrameCache | None,
    seed: int = 0,
) -> Any:
    """A train / val / test dataset of ``entries`` under ``config``'s transforms."""
    from video3d.data import ClipSampler, EvalTransform, TrainTransform, VideoClipDataset

    if mode == "train":
        transform: Any = TrainTransform(config.crop_size, config.short_side, flip=config.flip)
    elif mode == "val":
        transform = EvalTransform(config.eval_short_side, config.crop_size, num_crops=1)
    else:
        transform = EvalTransform(
            config.test_short_side, config.test_short_side, num_crops=config.test_crops
        )
    num_clips = config.test_clips if mode == "test" else None
    if cache is not None:
        sampler = ClipSampler(
            sampling, clip_length, config.frame_stride, config.segment_len  # type: ignore[arg-type]
        )
        return CachedClipDataset(
            entries, cache, mode=mode, sampler=sampler, transform=transform,
            num_clips=num_clips or 1, seed=seed,
        )
    return VideoClipDataset(
        entries, mode=mode, sampling=sampling, clip_len=clip_length,  # type: ignore[arg-type]
        stride=config.frame_stride, segment_len=config.segment_len, transform=transform,
        num_clips=num_clips, seed=seed,
    )
