"""Frame-exact video decoding over PyAV.

:class:`VideoReader` opens a video file and returns exactly the frames asked for, by index, as a
``uint8`` tensor ``[T, H, W, 3]`` (RGB), in the order asked, repeats allowed. A read seeks once
to the keyframe before the first wanted frame, decodes forward and stops after the last wanted
frame; it never seeks per frame. Decoding is single-threaded by default, which is what DataLoader
workers want (the workers are the parallelism).

Frame identity: the first frame decoded after a seek gets its index from its timestamp,
``round((pts - start_pts) * time_base * frame_rate)`` in exact rational arithmetic (time bases
1/12800, 1/15360, 1/30 and 1/1000 all round to the right frame), and the frames after it are
counted. If a seek lands after the first wanted frame the reader falls back to decoding from the
start, so a misplaced keyframe costs time, never a wrong frame.

Lead-in skip (MP4/MOV and Matroska/WebM, where every packet carries its presentation time): the
packets shown before the first wanted frame are decoded with ``skip_frame="NONREF"``, so their
non-reference frames (most B-frames) are never decoded; no other frame depends on them, so every
frame that comes out is bit-identical to a full decode. Frames up to the first wanted one are
then identified by their own timestamps (counting would be wrong with frames left out) and the
frames after it are counted as before. A run that misses its first wanted frame anyway is
redone without skipping. AVI decodes its lead-in in full (its demuxer guesses timestamps).
Opening probes the stream from its first keyframe only (H.264 probing otherwise decodes 7 or
more frames), which is about 6x cheaper; ``skip_lead_in=False, fast_open=False`` turn both off.

Keyframe index: a sparse read (uniform sampling) splits where a keyframe lets a seek skip
decoding; the keyframe positions come from one demux pass over the file (no decoding), which
is kept per file in a process-wide cache (:func:`clear_keyframe_cache`), keyed by the file's
path, size and modification time and the reader's frame rate and start, so a loader worker
that meets a file again (a later epoch, another clip of it) does not demux it again.

Frame 0 is the first frame decoded; where a container guesses timestamps (AVI), its
timestamp is learnt by decoding it when the reader opens (a known ``num_frames`` skips the
count, not this), since a B-frame AVI stream's first frame is stamped after the stream's start.

Frame counts: MP4 headers are trusted; WebM/VP9 reports 0 frames and AVI headers can over-count,
so for those containers (or with ``count_frames="decode"``) the frames are counted by decoding
the video once. A dataset index stores the counted value and passes it back as ``num_frames``.

Crop and resize: ``read(indices, crop=(top, left, height, width), size=(h, w))`` crops the
decoded YUV 4:2:0 planes in source coordinates before the colour conversion and lets the same
libswscale call resize the crop, so nothing outside the crop is ever converted to RGB. For
4:2:0 video the crop's origin snaps to even pixels (one pixel at most). Other pixel formats
convert the whole frame and crop afterwards.

Example:
    >>> from video3d.data.decoding import VideoReader
    >>> with VideoReader("clip.mp4") as reader:  # doctest: +SKIP
    ...     clip = reader.read([0, 8, 8, 3])      # uint8 [4, H, W, 3], frame 8 twice
    ...     crop = reader.read(range(16), crop=(10, 20, 112, 112), size=(56, 56))
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from video3d.data._reader import Box, FrameReader, check_open_arguments
from video3d.data.errors import VideoDecodeError

if TYPE_CHECKING:
    import torch

__all__ = ["CountMode", "VideoInfo", "VideoReader", "clear_keyframe_cache", "probe_video"]

CountMode = Literal["auto", "decode", "header"]
_COUNT_MODES = ("auto", "decode", "header")
# Containers whose header frame count is missing (Matroska/WebM) or unreliable (AVI).
_UNTRUSTED_FORMATS = frozenset({"avi", "matroska", "webm", "matroska,webm", "flv", "mpeg", "ogg"})
_YUV420 = frozenset({"yuv420p", "yuvj420p"})
# Containers that store a presentation timestamp per packet, so that frames in the lead-in can
# be identified by timestamp and their packets classified before decoding (AVI is not one:
# its demuxer guesses timestamps, and packed B-frames put two frames in one packet).
_PTS_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})
# find_stream_info() decodes up to 7+ frames of an H.264 stream to guess its reorder delay;
# decoding only the first keyframe there makes opening ~6x cheaper. The option reaches only
# the probing decoder, not the stream's codec context used for reading.
_FAST_OPEN_OPTIONS = {"skip_frame": "nonkey"}
_SEEK_RETRIES = 4
_MIN_SKIP = 8  # frames of decoding a second seek must save to be worth it
# Keyframe indices per file: (path, size, mtime_ns, rate, start_pts) -> sorted frame indices.
_KEYFRAME_CACHE: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_KEYFRAME_CACHE_SIZE = 100_000  # files; ~100 bytes each for 10-second clips


def clear_keyframe_cache() -> int:
    """Empties this process's keyframe-index cache; returns how many files it held."""
    count = len(_KEYFRAME_CACHE)
    _KEYFRAME_CACHE.clear()
    return count


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video.

    Attributes:
        num_frames: Decoded frame count (or the header's, when not counted).
        fps: Frames per second.
        width: Frame width in pixels.
        height: Frame height in pixels.
        counted: Whether ``num_frames`` was counted by decoding.
    """

    num_frames: int
    fps: float
    width: int
    height: int
    counted: bool


def _frame_rate(stream: Any) -> Fraction | None:
    for name in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, name, None)
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _even_box(box: Box, width: int, height: int) -> tuple[int, int, int, int, int, int]:
    """Snaps a crop onto the 4:2:0 chroma grid; returns the even box and the shift inside it."""
    top, left, h, w = box
    top2, left2 = top - top % 2, left - left % 2
    bottom2 = min(top + h + (top + h) % 2, height)
    right2 = min(left + w + (left + w) % 2, width)
    return top2, left2, bottom2 - top2, right2 - left2, top - top2, left - left2


def _open_container(path: str, *, fast: bool) -> Any:
    """Opens ``path`` for reading; ``fast`` probes the stream from its first keyframe only.

    A fast open that leaves the video stream without a frame size or a frame rate (a format
    whose header carries neither) is redone the usual way.
    """
    import av

    if not fast:
        return av.open(path, mode="r")
    container = av.open(path, mode="r", options=dict(_FAST_OPEN_OPTIONS))
    video = container.streams.video
    if video and video[0].codec_context.width > 0 and _frame_rate(video[0]) is not None:
        return container
    container.close()
    return av.open(path, mode="r")


def _round_ratio(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` (ties to even, like ``round(Fraction)``) in ints."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


def _first_pts_at(index: int, start_pts: int, frames_per_tick: Fraction) -> int:
    """Smallest integer ``pts`` with ``round((pts - start_pts) * frames_per_tick) >= index``.

    ``round`` ties to even, so ``index - 1/2`` itself rounds up to ``index`` only when
    ``index`` is even.
    """
    bound = (Fraction(index) - Fraction(1, 2)) / frames_per_tick
    floor = bound.numerator // bound.denominator
    if bound.denominator == 1 and index % 2 == 0:
        return start_pts + floor
    return start_pts + floor + 1


def _has_packet_pts(format_name: str) -> bool:
    """Whether a demuxer (``container.format.name``) stores a presentation time per packet."""
    return any(name in _PTS_FORMATS for name in format_name.split(","))


def _plane(frame: Any, index: int, rows: int, cols: int) -> np.ndarray:
    """A ``[rows, cols]`` view of one plane of a frame (writable for frames we made)."""
    plane = frame.planes[index]
    flat = np.frombuffer(plane, dtype=np.uint8)
    return flat.reshape(-1, plane.line_size)[:rows, :cols]


@dataclass(frozen=True)
class _Run:
    """The frames one seek-and-decode pass of a read wants, and where they go.

    Attributes:
        first: The first wanted frame.
        last: The last wanted frame (decoding stops there).
        wanted: Every wanted frame index.
        box: Crop box in source pixels, or ``None``.
        size: Output size, or ``None``.
        got: Decoded frames by index (filled in by the pass).
    """

    first: int
    last: int
    wanted: frozenset[int]
    box: Box | None
    size: tuple[int, int] | None
    got: dict[int, np.ndarray]


@dataclass(frozen=True)
class _RunEnd:
    """How a pass ended.

    Attributes:
        status: ``"done"`` (every frame up to ``last`` went by); ``"late"`` (the seek landed
            on frame ``landed``, after the first wanted one: nothing was kept, seek earlier);
            ``"unidentified"`` (a frame without a timestamp: only a decode from the start is
            certain); ``"lead_in_lost"`` (skipping the lead-in lost the first wanted frame:
            redo the pass without skipping).
        landed: With ``"late"``: the index of the frame the seek landed on.
    """

    status: Literal["done", "late", "unidentified", "lead_in_lost"]
    landed: int = 0


class VideoReader(FrameReader):
    """Reads frames of one video by index.

    Args:
        path: The video file.
        num_frames: Known decoded frame count (from a dataset index); skips counting.
        fps: Known frame rate; defaults to the stream's.
        threads: Decoder threads; 1 (default) for DataLoader workers, 0 lets FFmpeg choose.
        count_frames: ``"auto"`` counts by decoding for containers whose header is missing or
            unreliable (WebM, Matroska, AVI, ...) and trusts MP4/MOV headers; ``"decode"``
            always counts; ``"header"`` never decodes to count (estimates from the duration
            when the header has no count).
        interpolation: libswscale scaler for ``read(..., size=...)``; ``"AREA"`` (default)
            averages when shrinking and is bilinear when enlarging.
        skip_lead_in: Skip decoding the non-reference frames between the keyframe a read
            seeks to and the first wanted frame (MP4/MOV and Matroska/WebM only, where every
            packet carries its presentation time; other containers decode the lead-in in
            full). Output frames are identical either way; ``False`` decodes everything.
        fast_open: Probe the stream from its first keyframe only when opening (falls back
            to a full probe when that leaves the frame size or rate unknown).

    Raises:
        VideoDecodeError: The file is missing, not a video, or has no video stream.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_frames: int | None = None,
        fps: float | None = None,
        threads: int = 1,
        count_frames: CountMode = "auto",
        interpolation: str = "AREA",
        skip_lead_in: bool = True,
        fast_open: bool = True,
    ) -> None:
        for name, flag in (("skip_lead_in", skip_lead_in), ("fast_open", fast_open)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be a bool, got {flag!r}")
        if count_frames not in _COUNT_MODES:
            raise ValueError(f"count_frames must be one of {_COUNT_MODES}, got {count_frames!r}")
        check_open_arguments(num_frames, fps, threads)
        self.path = os.fspath(path)
        self._interpolation = interpolation
        self._container: Any = None
        self._open(threads, fast_open)
        self._skip_lead_in = skip_lead_in and self._has_packet_pts
        stream = self._stream
        self.width: int = int(stream.codec_context.width)
        self.height: int = int(stream.codec_context.height)
        if self.width < 1 or self.height < 1:
            self.close()
            raise VideoDecodeError("video stream has no frame size", path=self.path)
        self._time_base = Fraction(stream.time_base) if stream.time_base else None
        self._start_pts = int(stream.start_time) if stream.start_time is not None else 0
        rate = Fraction(fps).limit_denominator(1_000_000) if fps is not None else None
        self._rate: Fraction | None = rate or _frame_rate(stream)
        self._counted = False
        self._keyframes: np.ndarray | None = None
        if num_frames is not None:
            self._num_frames: int = int(num_frames)
        else:
            self._num_frames = self._initial_count(count_frames)
        if self._rate is None:
            self.close()
            raise VideoDecodeError("video stream has no frame rate", path=self.path)
        if not self._counted and not self._has_packet_pts:
            self._start_pts = self._first_frame_pts()

    # ------------------------------------------------------------------ opening and counting
    def _open(self, threads: int, fast: bool) -> None:
        import av

        if not os.path.exists(self.path):
            raise VideoDecodeError("no such file", path=self.path)
        try:
            self._container = _open_container(self.path, fast=fast)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoDecodeError(f"cannot open as a video ({exc})", path=self.path) from exc
        if not self._container.streams.video:
            self.close()
            raise VideoDecodeError("file has no video stream", path=self.path)
        self._stream = self._container.streams.video[0]
        self._has_packet_pts = _has_packet_pts(self._container.format.name)
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()
        self._sws_threads = 1 if threads == 1 else 0
        ctx = self._stream.codec_context
        ctx.thread_count = threads
        ctx.thread_type = "AUTO" if threads != 1 else "SLICE"

    def _initial_count(self, mode: str) -> int:
        header = int(self._stream.frames or 0)
        fmt = self._container.format.name
        untrusted = header <= 0 or fmt in _UNTRUSTED_FORMATS or fmt.split(",")[0] == "avi"
        if mode == "decode" or (mode == "auto" and untrusted):
            return self._count_by_decoding()
        if header > 0:
            return header
        duration = self._container.duration  # microseconds
        if duration is None or self._rate is None:
            return self._count_by_decoding()
        return max(1, round(Fraction(duration, 1_000_000) * self._rate))

    def _first_frame_pts(self) -> int:
        """The timestamp of the first decoded frame (frame 0), or the stream's start.

        Containers that guess timestamps (AVI) give the first frame of a B-frame stream a
        timestamp after the stream's start (by the decoder delay); counting frames learns it
        on the way, and a reader opened with a known frame count must learn it too, by
        decoding that one frame, or every index would be off by the delay.
        """
        import av

        try:
            self._container.seek(self._start_pts, stream=self._stream, backward=True)
            for frame in self._container.decode(self._stream):
                if frame.pts is not None:
                    return int(frame.pts)
                break
        except av.FFmpegError:
            pass  # reads will report what they cannot find
        return self._start_pts

    def _count_by_decoding(self) -> int:
        import av

        count = 0
        first_pts: int | None = None
        last_pts: int | None = None
        try:
            self._container.seek(0, stream=self._stream, backward=True)
            for frame in self._container.decode(self._stream):
                if frame.pts is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    last_pts = frame.pts
                count += 1
        except av.FFmpegError as exc:
            if count == 0:
                raise VideoDecodeError(f"cannot decode ({exc})", path=self.path) from exc
            # A damaged tail: the frames decoded so far are what the video has.
        if count == 0:
            self.close()
            raise VideoDecodeError("video stream has no decodable frames", path=self.path)
        if first_pts is not None:
            self._start_pts = first_pts
        if (
            self._rate is None
            and count > 1
            and self._time_base
            and first_pts is not None
            and last_pts is not None
            and last_pts > first_pts
        ):
            self._rate = Fraction(count - 1) / ((last_pts - first_pts) * self._time_base)
        self._counted = True
        return count

    # ------------------------------------------------------------------ properties
    @property
    def fps(self) -> float:
        """Frames per second."""
        assert self._rate is not None
        return float(self._rate)

    @property
    def closed(self) -> bool:
        """Whether the file is closed."""
        return self._container is None

    # ------------------------------------------------------------------ frame identity
    def _index_of(self, pts: int | None) -> int | None:
        if pts is None or self._time_base is None or self._rate is None:
            return None
        tb, rate = self._time_base, self._rate
        return _round_ratio(
            (pts - self._start_pts) * tb.numerator * rate.numerator,
            tb.denominator * rate.denominator,
        )

    def _pts_of(self, index: int) -> int:
        assert self._time_base is not None and self._rate is not None
        return self._start_pts + int(Fraction(index) / (self._rate * self._time_base))

    # ------------------------------------------------------------------ reading
    def _read(
        self, wanted: np.ndarray, box: Box | None, size: tuple[int, int] | None
    ) -> torch.Tensor:
        """Decodes the frames at ``wanted`` (crop and resize before the colour conversion,
        see the module doc)."""
        import torch

        unique = np.unique(wanted)
        frames = self._decode(unique, box, size)
        stacked = np.stack([frames[i] for i in unique.tolist()])
        if np.array_equal(unique, wanted):
            return torch.from_numpy(stacked)
        return torch.from_numpy(stacked[np.searchsorted(unique, wanted)])

    def _decode(
        self,
        unique: np.ndarray,
        box: Box | None,
        size: tuple[int, int] | None,
    ) -> dict[int, np.ndarray]:
        import av

        got: dict[int, np.ndarray] = {}
        try:
            for group in self._runs(unique):
                self._decode_group(group, got, box, size)
        except av.FFmpegError as exc:
            raise VideoDecodeError(
                f"decoding failed before frame {int(unique[-1])} ({exc})", path=self.path
            ) from exc
        missing = sorted(set(unique.tolist()) - got.keys())
        if missing:
            more = "..." if len(missing) > 5 else ""
            raise VideoDecodeError(
                f"frames {missing[:5]}{more} not found: the stream ended or broke before them "
                f"(the reader expected {self._num_frames} frames)",
                path=self.path,
            )
        return got

    def _runs(self, unique: np.ndarray) -> list[np.ndarray]:
        """Splits sorted wanted frames where a keyframe lets a seek skip decoding.

        A contiguous request is one run (one seek). A sparse one (uniform sampling) starts a
        new run wherever a keyframe lies between two wanted frames far enough apart that
        seeking to it skips at least ``_MIN_SKIP`` frames of decoding.
        """
        if len(unique) < 2 or int(np.diff(unique).max()) <= _MIN_SKIP:
            return [unique]
        keyframes = self._keyframe_indices()
        if keyframes.size == 0:
            return [unique]
        slot = np.searchsorted(keyframes, unique, side="right") - 1
        before = np.where(slot >= 0, keyframes[np.maximum(slot, 0)], 0)
        skip = before[1:] - unique[:-1] - 1  # frames a seek to the next keyframe avoids
        cuts = np.flatnonzero(skip >= _MIN_SKIP) + 1
        return np.split(unique, cuts)

    def _keyframe_key(self) -> tuple[Any, ...] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (os.path.abspath(self.path), stat.st_size, stat.st_mtime_ns, self._rate,
                self._start_pts)

    def _keyframe_indices(self) -> np.ndarray:
        """Frame indices of the keyframes, from one demux pass (no decoding), cached per
        reader and per file (see the module doc)."""
        if self._keyframes is None:
            key = self._keyframe_key()
            cached = _KEYFRAME_CACHE.get(key) if key is not None else None
            if key is not None and cached is not None:
                _KEYFRAME_CACHE.move_to_end(key)
                self._keyframes = cached
                return cached
            found = []
            try:
                self._container.seek(self._start_pts, stream=self._stream, backward=True)
                for packet in self._container.demux(self._stream):
                    if packet.is_keyframe and packet.pts is not None:
                        index = self._index_of(packet.pts)
                        if index is not None:
                            found.append(index)
            except Exception:  # noqa: BLE001 - an unreadable index only costs speed
                found = []
                key = None  # not cached: the next reader tries again
            self._keyframes = np.unique(np.asarray(found, dtype=np.int64))
            self._keyframes.setflags(write=False)  # shared through the cache
            if key is not None:
                _KEYFRAME_CACHE[key] = self._keyframes
                while len(_KEYFRAME_CACHE) > _KEYFRAME_CACHE_SIZE:
                    _KEYFRAME_CACHE.popitem(last=False)
        return self._keyframes

    def _decode_group(
        self,
        unique: np.ndarray,
        got: dict[int, np.ndarray],
        box: Box | None,
        size: tuple[int, int] | None,
    ) -> None:
        run = _Run(int(unique[0]), int(unique[-1]), frozenset(unique.tolist()), box, size, got)
        # One seek to the keyframe at or before the first wanted frame. Some demuxers seek
        # by decode timestamp (AVI with B-frames), so a seek can land on a keyframe shown
        # after the wanted frame: then seek again a growing margin earlier, and finally to
        # the start. Each retry costs a seek and one decoded frame.
        margin = 0
        skip = self._skip_lead_in and run.first > 0
        for attempt in range(_SEEK_RETRIES + 1):
            for index in run.wanted:
                got.pop(index, None)
            seek_frame = run.first - margin
            from_start = seek_frame <= 0 or attempt == _SEEK_RETRIES
            end = self._decode_run(run, seek_frame, from_start=from_start, skip=skip)
            if end.status == "done":
                return
            if end.status == "lead_in_lost":  # never expected; the full decode is always right
                skip = False
            elif end.status == "unidentified":  # a frame without timestamps: only the start
                margin = run.first
            else:  # "late"
                margin = 2 * margin + (end.landed - run.first) + 1

    def _first_pts_at(self, index: int) -> int:
        """The smallest timestamp whose frame index is ``index`` or later."""
        assert self._time_base is not None and self._rate is not None
        return _first_pts_at(index, self._start_pts, self._time_base * self._rate)

    def _decode_run(
        self, run: _Run, seek_frame: int, *, from_start: bool, skip: bool
    ) -> _RunEnd:
        """Seeks to the keyframe at or before ``seek_frame`` (or the start), decodes forward
        to ``run.last`` and keeps the wanted frames in ``run.got``.

        Frame identity: without ``skip`` the first frame after the seek is identified by its
        timestamp (or is frame 0 when decoding from the start) and the frames after it are
        counted. With ``skip`` the packets shown before ``run.first`` (by their timestamps)
        are decoded with ``skip_frame="NONREF"``, so non-reference frames there never come
        out; every frame up to the first wanted one is identified by its own timestamp, and
        the frames after it, where nothing is skipped, are counted.
        """
        target = self._start_pts if from_start else self._pts_of(seek_frame)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        if not skip:
            return self._decode_frames(
                self._container.decode(self._stream), 0 if from_start else None, run
            )
        ctx = self._stream.codec_context
        limit = self._first_pts_at(run.first)
        skipping = False
        landed: int | None = None  # index of the first frame out of the decoder
        index: int | None = None
        try:
            for packet in self._container.demux(self._stream):
                lead_in = packet.pts is not None and packet.pts < limit
                if lead_in is not skipping:
                    ctx.skip_frame = "NONREF" if lead_in else "DEFAULT"
                    skipping = lead_in
                for frame in ctx.decode(packet):
                    if index is None:  # still in the lead-in: identify by timestamp
                        found = self._index_of(frame.pts)
                        if found is None:
                            return _RunEnd("lead_in_lost")
                        if landed is None:
                            landed = found
                            if found > run.first:  # the seek landed late
                                return _RunEnd("late", found)
                        elif found > run.first:  # the first wanted frame never came out
                            return _RunEnd("lead_in_lost")
                        if found < run.first:
                            continue
                        index = found
                    if index in run.wanted:
                        run.got[index] = self._convert(frame, run.box, run.size)
                    if index >= run.last:
                        return _RunEnd("done")
                    index += 1
        finally:
            if skipping:
                ctx.skip_frame = "DEFAULT"
        return _RunEnd("done")

    def _decode_frames(self, frames: Iterable[Any], index: int | None, run: _Run) -> _RunEnd:
        """Keeps the wanted frames of ``frames``, the first of which is frame ``index``
        (``None``: identify it by its timestamp), up to ``run.last``."""
        for frame in frames:
            if index is None:
                index = self._index_of(frame.pts)
                if index is None:
                    return _RunEnd("unidentified")
                if index > run.first:
                    return _RunEnd("late", index)
            if index in run.wanted:
                run.got[index] = self._convert(frame, run.box, run.size)
            if index >= run.last:
                break
            index += 1
        return _RunEnd("done")

    def _convert(
        self,
        frame: Any,
        box: Box | None,
        size: tuple[int, int] | None,
    ) -> np.ndarray:
        if box is not None and frame.format.name in _YUV420:
            return self._convert_yuv_crop(frame, box, size)
        if box is None and size is not None:
            out_h, out_w = size
            return self._to_rgb(frame, size)
        rgb = self._to_rgb(frame, None)
        if box is not None:
            top, left, h, w = box
            rgb = rgb[top : top + h, left : left + w]
        if size is not None and rgb.shape[:2] != size:
            from video3d.data.transforms import resize_uint8

            return resize_uint8(np.ascontiguousarray(rgb)[None], size)[0].numpy()
        return np.ascontiguousarray(rgb)

    def _convert_yuv_crop(
        self, frame: Any, box: Box, size: tuple[int, int] | None
    ) -> np.ndarray:
        import av

        top, left, h, w, dy, dx = _even_box(box, frame.width, frame.height)
        # Copy the crop of each plane straight into a new frame's planes (no packing and
        # no second copy, as VideoFrame.from_ndarray would make).
        cropped = av.VideoFrame(w, h, "yuv420p")
        cy, cx, ch, cw = top // 2, left // 2, (h + 1) // 2, (w + 1) // 2
        chroma_rows, chroma_cols = (frame.height + 1) // 2, (frame.width + 1) // 2
        _plane(cropped, 0, h, w)[...] = _plane(frame, 0, frame.height, frame.width)[
            top : top + h, left : left + w
        ]
        for index in (1, 2):
            _plane(cropped, index, ch, cw)[...] = _plane(
                frame, index, chroma_rows, chroma_cols
            )[cy : cy + ch, cx : cx + cw]
        if frame.colorspace is not None:
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                cropped.colorspace = frame.colorspace
                cropped.color_range = frame.color_range
        if size is not None:
            return self._to_rgb(cropped, size)
        rgb = self._to_rgb(cropped, None)
        return np.ascontiguousarray(rgb[dy : dy + box[2], dx : dx + box[3]])

    def _to_rgb(self, frame: Any, size: tuple[int, int] | None) -> np.ndarray:
        # One reformatter per reader: libswscale contexts are cached across frames (a
        # frame's own reformat() builds a new context per frame, ~10x slower on small frames).
        out_h, out_w = size if size is not None else (None, None)
        rgb = self._reformatter.reformat(
            frame, width=out_w, height=out_h, format="rgb24",
            interpolation=self._interpolation, threads=self._sws_threads,
        )
        return np.asarray(rgb.to_ndarray())

    # ------------------------------------------------------------------ lifetime
    def _release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def probe_video(
    path: str | os.PathLike[str], *, count_frames: CountMode = "decode"
) -> VideoInfo:
    """Opens a video once and returns its :class:`VideoInfo`.

    With ``count_frames="decode"`` (default) every frame is decoded, which both counts the
    frames exactly and proves the file readable.

    Raises:
        VideoDecodeError: The file is missing, not a video, or undecodable.
    """
    with VideoReader(path, count_frames=count_frames) as reader:
        return reader.info
