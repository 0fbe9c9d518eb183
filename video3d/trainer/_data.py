"""Data for the trainer: resolve an index, split it, and build clip datasets.

An *index directory* holds plain lists (``train.txt``, optionally ``test.txt``, one
``path num_frames label`` per line) and ``classes.txt`` — what ``video3d data index`` and
:func:`video3d.data.make_synthetic_dataset` write. Planning splits ``train.txt`` into a training
part and an internal validation part (seeded, class-stratified); ``test.txt`` is used only by the
final evaluation.

For small datasets (``cache_videos``) every video is decoded once and its frames are kept in
memory (:class:`~video3d.data.FrameCache`); the same :class:`video3d.data.VideoClipDataset`
then reads its clips from the cached frames instead of the files: the same samplers, seeds,
short-video policy, transforms and handling of unreadable videos.

Unreadable videos: :func:`load_data` probes every video of the run before any training (in
parallel: it opens the file, decodes its first frame and reads its packets, or, for a cached
run, decodes it whole into the cache). Each unreadable video is reported once (a warning naming
the file and the decoder's error) and left out of its split; if more than
``max_bad_video_share`` of a split's videos are unreadable, :class:`DataError` stops the run
instead. Videos that break later, while training, are replaced by another draw (cached and
file-backed datasets alike) and recorded in the same :class:`~video3d.data.datasets.BadVideoLog`
(:attr:`DataBundle.bad_videos`), which the run's report and ``results.json`` count.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from video3d.data._cache import FrameCache
from video3d.trainer._config import TrainConfig

if TYPE_CHECKING:

    from video3d.data import VideoEntry
    from video3d.data.datasets import BadVideoLog

__all__ = [
    "DataBundle",
    "DataError",
    "FrameCache",
    "default_data_dir",
    "load_data",
    "make_dataset",
    "probe_videos",
]

_PROBE_THREADS = 16


class DataError(ValueError):
    """The dataset is missing or inconsistent (index vs classes vs preset), or too much of it
    is unreadable (``max_bad_video_share``)."""


class VideoList(list):  # type: ignore[type-arg]
    """A split of a :class:`DataBundle`: a list of entries that carries the run's bad-video log,
    so every dataset :func:`make_dataset` builds from it records into that log."""

    def __init__(self, entries: Iterable[VideoEntry] = (), bad_videos: BadVideoLog | None = None):
        super().__init__(entries)
        self.bad_videos = bad_videos


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
        bad_videos: The run's unreadable videos (left out by the probe, or met in training).
        num_listed: Videos the index lists (train, val and test, unreadable ones included).
        max_bad_share: The ``max_bad_video_share`` the run was checked against.
    """

    root: str
    classes: list[str]
    train: list[VideoEntry]
    val: list[VideoEntry]
    test: list[VideoEntry]
    cache: FrameCache | None = None
    description: dict[str, Any] = field(default_factory=dict)
    bad_videos: BadVideoLog | None = None
    num_listed: int = 0
    max_bad_share: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def bad_video_report(self) -> dict[str, Any]:
        """``{count, share, max_share, paths, errors}`` of the unreadable videos so far.

        ``share`` is of every listed video; ``errors`` maps each path to the decoder's error.
        """
        errors = self.bad_videos.errors if self.bad_videos is not None else {}
        listed = max(self.num_listed, len(errors), 1)
        return {"count": len(errors), "share": round(len(errors) / listed, 6),
                "max_share": self.max_bad_share, "paths": sorted(errors),
                "errors": dict(sorted(errors.items()))}


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
    probe: bool = True,
) -> DataBundle:
    """Resolve and check the dataset of a run (raises :class:`DataError` before any training).

    Args:
        data: An index directory or a train list; ``None``: the preset's generated dataset
            (only presets with ``synthetic`` settings have one).
        config: The run's configuration (class count, internal validation size, seed).
        stream: Where to print a note when the synthetic dataset is generated.
        generate: Generate the preset's synthetic dataset in its default folder when it is
            missing (only when ``data`` is ``None``; an explicit missing path is an error).
        probe: Probe every video and leave out the unreadable ones (see the module doc);
            :class:`DataError` when a split has more than ``config.max_bad_video_share`` of
            them.
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
    from video3d.data.datasets import BadVideoLog

    log = BadVideoLog.temporary()
    splits = {"training": train, "validation": val, "test": test_entries}
    if probe:
        splits = _leave_out_unreadable(splits, cache, log, config, stream)
    return DataBundle(
        root=str(path), classes=classes, cache=cache,
        train=VideoList(splits["training"], log), val=VideoList(splits["validation"], log),
        test=VideoList(splits["test"], log),
        description={"data": str(path), "train_list": str(train_list),
                     "test_list": str(test_list) if test_list else None},
        bad_videos=log, num_listed=len(train) + len(val) + len(test_entries),
        max_bad_share=config.max_bad_video_share,
    )


def probe_videos(
    entries: Sequence[VideoEntry], *, cache: FrameCache | None = None, threads: int | None = None
) -> dict[str, str]:
    """The unreadable videos among ``entries``: path -> the decoder's error.

    Without a cache each file is opened, its first frame decoded and its packets read without
    decoding (:func:`_check_length`), which finds files that are not videos, do not decode, or
    end well before the frame count their index lists (cut short); decoding up to the last
    frame instead would cost a whole decode for videos with one keyframe. With a cache each
    video is decoded whole into it, as a cached run needs anyway. ``threads`` (default: the
    CPU count, at most 16) probe in parallel.
    """
    from video3d.data import VideoDecodeError, VideoReader
    from video3d.data.datasets import decode_failure_reason

    def check(entry: VideoEntry) -> str | None:
        try:
            if cache is not None:
                cache.get(entry)
            else:
                with VideoReader(entry.path, num_frames=entry.num_frames,
                                 fps=entry.fps) as reader:
                    reader.read([0])
                    frames, rate = reader.num_frames, reader.fps
                _check_length(entry.path, frames, rate)
        except (VideoDecodeError, ValueError) as exc:
            return decode_failure_reason(exc)
        return None

    unique = list({e.path: e for e in entries}.values())
    workers = threads or min(_PROBE_THREADS, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique) or 1))) as pool:
        reasons = list(pool.map(check, unique))
    return {e.path: r for e, r in zip(unique, reasons) if r is not None}


def _check_length(path: str, frames: int, rate: float) -> None:
    """Reads the video packets of ``path`` (no decoding); raises when their timestamps end
    before ``frames`` frames at ``rate`` fps, by more than 5% of them (at least 2 frames,
    which leaves room for container headers that over-count by one)."""
    import av

    from video3d.data import VideoDecodeError

    first = last = None
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size and stamp is not None:
                    first = stamp if first is None else min(first, stamp)
                    last = stamp if last is None else max(last, stamp)
            base, start = stream.time_base, stream.start_time
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(f"cannot read its packets ({exc})", path=path) from exc
    if first is None or last is None or base is None:
        return  # no timestamps to judge by: the first frame decoded, trust the index
    origin = start if start is not None else first
    reach = round(float((last - origin) * base) * rate) + 1
    if reach < frames - max(2, frames // 20):
        raise VideoDecodeError(
            f"its packets end at frame {reach} of the {frames} its index lists (cut short?)",
            path=path,
        )


def _leave_out_unreadable(
    splits: dict[str, list[VideoEntry]], cache: FrameCache | None, log: BadVideoLog,
    config: TrainConfig, stream: Any,
) -> dict[str, list[VideoEntry]]:
    """Probe every split; warn once per unreadable video; stop above the allowed share."""
    everything = [e for entries in splits.values() for e in entries]
    errors = probe_videos(everything, cache=cache)
    if not errors:
        return splits
    for path, reason in sorted(errors.items()):
        log.record(path, reason)
        print(f"warning: unreadable video {path}: {reason}", file=stream)
    limit = config.max_bad_video_share
    for name, entries in splits.items():
        bad = [e.path for e in entries if e.path in errors]
        if entries and len(bad) / len(entries) > limit:
            raise DataError(
                f"unreadable videos: {len(bad)} of {len(entries)} {name} videos "
                f"({len(bad) / len(entries):.1%}), more than max_bad_video_share={limit:g} "
                f"allows (first: {bad[0]}; every one is named in a warning above); repair or "
                "remove them, or raise max_bad_video_share in a --config file"
            )
    kept = {name: [e for e in entries if e.path not in errors]
            for name, entries in splits.items()}
    counts = ", ".join(f"{len(splits[n]) - len(kept[n])} {n}" for n in splits)
    print(f"note: left out {len(errors)} unreadable of {len(everything)} videos ({counts}); "
          "training and evaluation go on without them", file=stream)
    return kept


def _check_files(entries: Sequence[VideoEntry], listed_in: Path) -> None:
    missing = [e.path for e in entries if not os.path.isfile(e.path)]
    if missing:
        raise DataError(
            f"{len(missing)} video(s) listed in {listed_in.parent} are missing, e.g. {missing[0]}"
        )


# ------------------------------------------------------------------------------ datasets
def make_dataset(
    entries: Sequence[VideoEntry],
    config: TrainConfig,
    *,
    mode: str,
    sampling: str,
    clip_length: int,
    cache: FrameCache | None,
    seed: int = 0,
    bad_videos: BadVideoLog | None = None,
    uint8: bool = False,
) -> Any:
    """A train / val / test dataset of ``entries`` under ``config``'s transforms.

    Its frames come from ``cache`` (decoded once, kept in memory) or, without one, from the
    files (a reader per item). Unreadable videos are recorded in ``bad_videos`` (default: the log a
    :class:`DataBundle` split carries, else a new one). With ``uint8`` a training dataset
    yields cropped ``uint8 [T, S, S, 3]`` clips, to be flipped and normalised on the device
    (:func:`video3d.data.device_transforms.normalize_clips`).
    """
    from video3d.data import EvalTransform, TrainTransform, VideoClipDataset
    from video3d.data.device_transforms import TrainCrop

    if mode == "train" and uint8:
        transform: Any = TrainCrop(config.crop_size, config.short_side)
    elif mode == "train":
        transform = TrainTransform(config.crop_size, config.short_side, flip=config.flip)
    elif mode == "val":
        transform = EvalTransform(config.eval_short_side, config.crop_size, num_crops=1)
    else:
        transform = EvalTransform(
            config.test_short_side, config.test_short_side, num_crops=config.test_crops
        )
    num_clips = config.test_clips if mode == "test" else None
    if bad_videos is None:
        bad_videos = getattr(entries, "bad_videos", None)
    return VideoClipDataset(
        entries, mode=mode, sampling=sampling, clip_len=clip_length,  # type: ignore[arg-type]
        stride=config.frame_stride, segment_len=config.segment_len, transform=transform,
        num_clips=num_clips, seed=seed, bad_videos=bad_videos, source=cache,
    )
