"""Re-encode a dataset for fast training reads (``video3d data prepare``).

What mmaction2 and PySlowFast users do before training on Kinetics: shrink the videos to a short
side of 256-320 pixels and encode them with a short keyframe interval, so a clip decodes fewer
pixels and a read seeks close to its first frame (sparse uniform clips seek once per run of
frames). :func:`prepare_video` re-encodes one file (H.264 in MP4, yuv420p, constant frame rate,
no audio); :func:`prepare_dataset` does every list of an index directory (``train.txt``,
``test.txt``) and writes a new index directory whose lists point at the new files, with the
frame counts counted while encoding, and the same ``classes.txt``.

Frame identity is kept: frame ``i`` of the new file is frame ``i`` of the old one as
:class:`~video3d.data.decoding.VideoReader` numbers it. Every decoded frame's index is checked
against its timestamp; a video whose frames do not follow one another at its frame rate
(variable frame rate, dropped frames) is not re-encoded and stays listed with its old file (the
report says so). Videos are never enlarged: a source whose short side is already at most
``short_side`` keeps its size (rounded to even sides) and only gets the new keyframe interval.

:func:`decode_cost` measures what a clip costs to decode and crop (CPU milliseconds per clip,
the training read path), before and after.

Example:
    >>> from video3d.data.prepare import prepare_dataset
    >>> report = prepare_dataset("kinetics/index", "kinetics/prepared",
    ...                          short_side=256, keyint=8, workers=8)  # doctest: +SKIP
    >>> print(report.format())                                        # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from video3d.data.errors import VideoDecodeError
from video3d.data.indexes import VideoEntry, read_video_list, write_video_list

__all__ = [
    "PrepareReport",
    "decode_cost",
    "prepare_dataset",
    "prepare_video",
    "target_size",
    "x264_params",
]

_LISTS = ("train.txt", "test.txt")


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def x264_params(keyint: int) -> str:
    """The ``x264-params`` of every H.264 file video3d writes (prepared and synthetic videos).

    A key frame every ``keyint`` frames exactly (no scene-cut key frames), and ``mbtree=0``:
    with x264's macroblock-tree rate control on, its AVX-512 code reads heap memory it never
    wrote (x264 core 165 as PyAV ships it), so the same frames encoded to different bytes from
    one process, or one point of a process, to the next (up to 52 grey levels apart once
    decoded). Off, the bytes are the same whatever the heap holds, and the same as x264's
    AVX/AVX2 code writes.

    Example:
        >>> x264_params(8)
        'keyint=8:min-keyint=8:scenecut=0:mbtree=0'
    """
    return f"keyint={keyint}:min-keyint={keyint}:scenecut=0:mbtree=0"


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(width, height)`` with the short side at most ``short_side``, aspect kept, even sides.

    >>> target_size(1280, 720, 288), target_size(340, 256, 288), target_size(720, 1280, 256)
    ((512, 288), (340, 256), (256, 454))
    """
    short = min(width, height)
    scale = min(1.0, short_side / short)
    new_w, new_h = round(width * scale), round(height * scale)
    return max(2, new_w - new_w % 2), max(2, new_h - new_h % 2)


def prepare_video(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    short_side: int = 256,
    keyint: int = 8,
    crf: int = 23,
    preset: str = "veryfast",
    fastdecode: bool = False,
) -> int:
    """Re-encodes ``source`` into ``target`` (MP4/H.264); returns the frame count.

    Args:
        short_side: Largest short side of the output (never enlarges).
        keyint: Frames between keyframes (fixed; no scene-cut keyframes).
        crf: x264 constant rate factor (quality; 23 is x264's default).
        preset: x264 speed preset.
        fastdecode: x264 ``tune=fastdecode`` (no CABAC, no deblocking: faster to decode,
            larger files).

    Raises:
        VideoDecodeError: The source cannot be decoded, or its frames do not follow one
            another at its frame rate (the output could not keep frame numbers).
    """
    import av
    from av.video.frame import PictureType

    from video3d.data.decoding import VideoReader

    _positive("short_side", short_side)
    _positive("keyint", keyint)
    src, dst = os.fspath(source), Path(target)
    tmp = dst.with_name(dst.name + ".part")
    with VideoReader(src, count_frames="header", fast_open=False) as reader:
        width, height = target_size(reader.width, reader.height, short_side)
        rate = reader._rate
        assert rate is not None
        options = {"crf": str(crf), "preset": preset, "x264-params": x264_params(keyint),
                   "threads": "1"}
        if fastdecode:
            options["tune"] = "fastdecode"
        count = 0
        strict = reader._has_packet_pts
        try:
            with av.open(str(tmp), "w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=Fraction(rate), options=options)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.time_base = Fraction(1) / Fraction(rate)
                reader._container.seek(reader._start_pts, stream=reader._stream, backward=True)
                for frame in reader._container.decode(reader._stream):
                    # Where packets carry timestamps, each frame's must be its number; other
                    # containers (AVI) guess them, and frames are counted, as the reader does.
                    index = reader._index_of(frame.pts) if strict else None
                    if index is not None and index != count:
                        raise VideoDecodeError(
                            f"frame {count} has the timestamp of frame {index}: not a "
                            "constant frame rate, kept as it is",
                            path=src,
                        )
                    small = reader._reformatter.reformat(
                        frame, width=width, height=height, format="yuv420p",
                        interpolation="AREA", threads=1,
                    )
                    small.pts, small.time_base = count, stream.codec_context.time_base
                    small.pict_type = PictureType.NONE  # the source's keyframes force none
                    out.mux(stream.encode(small))
                    count += 1
                out.mux(stream.encode())
        except av.FFmpegError as exc:
            tmp.unlink(missing_ok=True)
            raise VideoDecodeError(f"cannot re-encode ({exc})", path=src) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if count == 0:
        tmp.unlink(missing_ok=True)
        raise VideoDecodeError("no decodable frames", path=src)
    os.replace(tmp, dst)
    return count


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did.

    Attributes:
        lists: Per written list (``train.txt``, ...), its new entries.
        kept: ``(path, why)`` of videos listed with their old file (not re-encoded).
        num_encoded: Videos re-encoded now.
        num_reused: Videos already prepared by an earlier run (left as they were).
        bytes_in: Size of the source files.
        bytes_out: Size of the files the new lists point at.
        seconds: Wall time.
    """

    lists: dict[str, list[VideoEntry]] = field(default_factory=dict)
    kept: list[tuple[str, str]] = field(default_factory=list)
    num_encoded: int = 0
    num_reused: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0

    def format(self) -> str:
        videos = sum(len(v) for v in self.lists.values())
        ratio = self.bytes_out / self.bytes_in if self.bytes_in else float("nan")
        text = (
            f"{videos} videos listed: {self.num_encoded} re-encoded, {self.num_reused} already "
            f"prepared, {len(self.kept)} kept as they were; {self.bytes_in / 2**20:.1f} MiB -> "
            f"{self.bytes_out / 2**20:.1f} MiB ({ratio:.2f}x) in {self.seconds:.1f}s"
        )
        for path, why in self.kept[:5]:
            text += f"\n  kept {path}: {why}"
        return text


def _target_name(path: str) -> str:
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8")).hexdigest()[:10]
    return f"{Path(path).stem}-{digest}.mp4"


def _prepare_one(source: str, target: str, settings: dict[str, Any]) -> dict[str, Any]:
    if os.path.isfile(target):
        from video3d.data.decoding import probe_video

        try:
            return {"num_frames": probe_video(target, count_frames="header").num_frames,
                    "reused": True}
        except VideoDecodeError:
            os.unlink(target)
    try:
        return {"num_frames": prepare_video(source, target, **settings), "reused": False}
    except (VideoDecodeError, ValueError, OSError) as exc:
        return {"error": str(exc)}


def prepare_dataset(
    index_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    short_side: int = 256,
    keyint: int = 8,
    crf: int = 23,
    preset: str = "veryfast",
    fastdecode: bool = False,
    workers: int = 1,
) -> PrepareReport:
    """Re-encodes every video of an index directory and writes the new index directory.

    ``out_dir`` gets ``videos/`` (one MP4 per source video), the lists of ``index_dir``
    (``train.txt``, ``test.txt`` where present) pointing at the new files with their frame
    counts, and a copy of ``classes.txt``. Running again re-encodes only what is missing.

    Raises:
        FileNotFoundError: ``index_dir`` has no ``train.txt``.
        ValueError: A setting is out of range, or ``out_dir`` is ``index_dir``.
    """
    start = time.perf_counter()
    _positive("short_side", short_side)
    _positive("keyint", keyint)
    workers = _positive("workers", workers)
    src_dir, dst_dir = Path(index_dir), Path(out_dir)
    if not (src_dir / "train.txt").is_file():
        raise FileNotFoundError(f"{src_dir} is not an index directory: it has no train.txt")
    if dst_dir.resolve() == src_dir.resolve():
        raise ValueError(f"out_dir must differ from index_dir, got {dst_dir} for both")
    settings = {"short_side": short_side, "keyint": keyint, "crf": crf, "preset": preset,
                "fastdecode": fastdecode}
    indexes = {name: read_video_list(src_dir / name) for name in _LISTS
               if (src_dir / name).is_file()}
    videos = dst_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    sources = sorted({e.path for index in indexes.values() for e in index.entries})
    targets = [str(videos / _target_name(p)) for p in sources]
    if workers == 1 or len(sources) <= 1:
        results = [_prepare_one(s, t, settings) for s, t in zip(sources, targets)]
    else:
        import multiprocessing

        with cf.ProcessPoolExecutor(
            max_workers=min(workers, len(sources)),
            mp_context=multiprocessing.get_context("spawn"),
        ) as pool:
            results = list(pool.map(_prepare_one, sources, targets,
                                    [settings] * len(sources)))
    report = PrepareReport()
    done: dict[str, tuple[str, int] | None] = {}
    for source, target, result in zip(sources, targets, results):
        report.bytes_in += os.path.getsize(source) if os.path.isfile(source) else 0
        if "error" in result:
            report.kept.append((source, str(result["error"])))
            done[source] = None
            continue
        report.num_reused += bool(result["reused"])
        report.num_encoded += not result["reused"]
        report.bytes_out += os.path.getsize(target)
        done[source] = (target, int(result["num_frames"]))
    for source, new in done.items():
        if new is None and os.path.isfile(source):
            report.bytes_out += os.path.getsize(source)
    for name, index in indexes.items():
        entries = []
        for entry in index.entries:
            new = done[entry.path]
            entries.append(entry if new is None else
                           replace(entry, path=new[0], num_frames=new[1], fps=None))
        write_video_list(dst_dir / name, entries, root=dst_dir)
        report.lists[name] = entries
    if (src_dir / "classes.txt").is_file():
        shutil.copyfile(src_dir / "classes.txt", dst_dir / "classes.txt")
    report.seconds = time.perf_counter() - start
    return report


def decode_cost(
    entries: Sequence[VideoEntry],
    *,
    sampling: str = "consecutive",
    clip_len: int = 16,
    clips: int = 32,
    crop_size: int = 224,
    short_side: tuple[int, int] = (256, 340),
    seed: int = 0,
) -> float:
    """CPU milliseconds per training clip: open, sample, decode with the crop, resize.

    The same clip positions and crops (drawn from ``seed``, relative to each video's size) are
    used whatever the files, so a dataset and its prepared copy are timed on the same clips.
    """
    from video3d.data.decoding import VideoReader
    from video3d.data.samplers import ClipSampler
    from video3d.data.transforms import TrainTransform

    if not entries:
        raise ValueError("entries is empty")
    sampler = ClipSampler(sampling, clip_len)  # type: ignore[arg-type]
    transform = TrainTransform(crop_size, short_side, flip=False)

    def one(k: int) -> None:
        entry = entries[k % len(entries)]
        rng = np.random.default_rng([seed, k])
        with VideoReader(entry.path, num_frames=entry.num_frames, fps=entry.fps) as reader:
            indices = sampler.train_clip(reader.num_frames, rng)
            plan = transform.plan(reader.height, reader.width, rng)
            reader.read(indices, crop=plan.box, size=plan.size)

    clips = _positive("clips", clips)
    one(clips)  # untimed: the first read pays for imports and libswscale's set-up
    cpu = time.process_time()
    for k in range(clips):
        one(k)
    return 1e3 * (time.process_time() - cpu) / clips
