from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from video3d.data.decoding import (
    VideoReader,
    _first_pts_at,
    _has_packet_pts,
    _open_container,
    _round_ratio,
    _Run,
    _RunEnd,
    probe_video,
)
from video3d.data.errors import VideoDecodeError

KINDS = ["h264-mp4", "mpeg4-avi", "vp9-webm", "h264-mp4-25fps"]
REQUESTS = {
    "consecutive": list(range(37, 53)),
    "strided": list(range(3, 99, 6)),
    "uniform": [2, 3, 4, 5, 27, 28, 29, 30, 52, 53, 54, 55, 77, 78, 79, 80],
    "repeated": [5, 5, 5, 41, 41, 99, 99],
    "out_of_order": [99, 0, 58, 12, 40, 39, 41, 1],
    "first_and_last": [0, 99],
    "single_keyframe": [40],
    "just_before_keyframe": [39],
    "last": [99],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_read_returns_exact_frames(videos, read_ids, kind: str, request_name: str) -> None:
    indices = REQUESTS[request_name]
    with VideoReader(videos[kind]) as reader:
        clip = reader.read(indices)
    assert clip.dtype == torch.uint8
    assert tuple(clip.shape) == (len(indices), 96, 128, 3)
    assert read_ids(clip) == indices


@pytest.mark.parametrize("kind", KINDS)
def test_every_single_frame_and_reader_reuse(videos, read_ids, kind: str) -> None:
    with VideoReader(videos[kind]) as reader:
        got = [read_ids(reader.read([i]))[0] for i in range(0, 100, 3)]
        assert got == list(range(0, 100, 3))
        assert read_ids(reader.read(np.array([10, 11]))) == [10, 11]
        assert read_ids(reader.read(torch.tensor([8, 2]))) == [8, 2]


@pytest.mark.parametrize(
    ("kind", "counted", "time_base"),
    [("h264-mp4", False, "1/15360"), ("h264-mp4-25fps", False, "1/12800"),
     ("mpeg4-avi", True, "1/30"), ("vp9-webm", True, "1/1000")],
)
def test_frame_count_and_rate(videos, kind: str, counted: bool, time_base: str) -> None:
    with VideoReader(videos[kind]) as reader:
        info = reader.info
        assert str(reader._time_base) == time_base
    assert info.num_frames == 100
    assert info.fps == pytest.approx(25.0 if "25fps" in kind else 30.0)
    assert (info.width, info.height) == (128, 96)
    assert info.counted is counted
    assert probe_video(videos[kind]).num_frames == 100


def test_webm_header_reports_no_frames_but_reader_counts(videos) -> None:
    import av

    with av.open(str(videos["vp9-webm"])) as container:
        assert container.streams.video[0].frames == 0
    assert VideoReader(videos["vp9-webm"], count_frames="header").num_frames > 0
    assert VideoReader(videos["vp9-webm"]).num_frames == 100


def test_known_frame_count_skips_counting(videos) -> None:
    reader = VideoReader(videos["vp9-webm"], num_frames=100, fps=30.0)
    assert reader.info.counted is False
    assert reader.num_frames == 100


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fps", [None, "stream"])
def test_known_frame_count_reads_exact_frames(videos, read_ids, kind: str, fps) -> None:
    # The dataset path: num_frames (and fps) come from the index, so nothing is counted.
    # A B-frame AVI's first frame is stamped one frame after the stream's start.
    with VideoReader(videos[kind]) as counted:
        rate = counted.fps
    with VideoReader(videos[kind], num_frames=100, fps=rate if fps else None) as reader:
        assert reader.info.counted is False
        for indices in REQUESTS.values():
            assert read_ids(reader.read(indices)) == indices
        assert [read_ids(reader.read([i]))[0] for i in range(0, 100, 7)] == list(range(0, 100, 7))


def _unwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict]:
    args = tuple(getattr(a, "inner", a) if isinstance(a, _StreamProxy) else a for a in args)
    if isinstance(kwargs.get("stream"), _StreamProxy):
        kwargs = {**kwargs, "stream": kwargs["stream"].inner}
    return args, kwargs


class _CountingContainer:
    """Proxy that counts seeks and decoded frames of the wrapped PyAV container."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seeks, self.decoded = inner, 0, 0

    def seek(self, *args: Any, **kwargs: Any) -> None:
        self.seeks += 1
        args, kwargs = _unwrap(args, kwargs)
        self.inner.seek(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any):
        args, kwargs = _unwrap(args, kwargs)
        for frame in self.inner.decode(*args, **kwargs):
            self.decoded += 1
            yield frame

    def demux(self, *args: Any, **kwargs: Any):
        args, kwargs = _unwrap(args, kwargs)
        yield from self.inner.demux(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("kind", ["h264-mp4", "vp9-webm", "h264-mp4-25fps"])
def test_one_seek_and_stop_after_last_wanted(videos, read_ids, kind: str) -> None:
    reader = VideoReader(videos[kind], skip_lead_in=False)
    proxy = _CountingContainer(reader._container)
    reader._container = proxy
    assert read_ids(reader.read([50, 45, 47])) == [50, 45, 47]
    assert proxy.seeks == 1
    # keyframes every 40 (mp4) / 30 (webm) frames: decoding runs from the keyframe to frame 50
    keyframe = 40 if "mp4" in kind else 30
    assert proxy.decoded == 50 - keyframe + 1
    proxy.inner.close()


def test_avi_dts_seek_lands_late_but_frames_stay_exact(videos, read_ids) -> None:
    # mpeg4 with B-frames in AVI: the demuxer seeks by decode time, so a seek to frame
    # 29 lands on the keyframe shown at 30; the reader retries earlier.
    with VideoReader(videos["mpeg4-avi"]) as reader:
        for first in (28, 29, 30, 31, 59, 60):
            assert read_ids(reader.read([first, first + 1])) == [first, first + 1]


@pytest.mark.parametrize("kind", ["h264-mp4", "vp9-webm", "mpeg4-avi"])
@pytest.mark.parametrize("box", [(0, 0, 96, 128), (32, 32, 64, 64), (31, 17, 50, 61)])
def test_crop_matches_slice_of_full_frame(videos, kind: str, box) -> None:
    top, left, h, w = box
    with VideoReader(videos[kind]) as reader:
        full = reader.read([3, 70]).numpy().astype(int)
        crop = reader.read([3, 70], crop=box).numpy().astype(int)
    assert crop.shape == (2, h, w, 3)
    assert np.abs(full[:, top : top + h, left : left + w] - crop).mean() < 2.0


def test_crop_and_resize_and_plain_resize(videos, read_ids) -> None:
    with VideoReader(videos["h264-mp4"]) as reader:
        small = reader.read([5, 6], crop=(0, 0, 96, 128), size=(48, 64))
        assert tuple(small.shape) == (2, 48, 64, 3)
        again = reader.read([5, 6], size=(48, 64))
        assert torch.equal(small, again)
        big = torch.nn.functional.interpolate(
            small.permute(0, 3, 1, 2).float(), size=(96, 128), mode="nearest"
        ).permute(0, 2, 3, 1)
        assert read_ids(big.round().clamp(0, 255).to(torch.uint8)) == [5, 6]


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_threads_setting(videos, read_ids, threads: int) -> None:
    with VideoReader(videos["h264-mp4"], threads=threads) as reader:
        assert read_ids(reader.read([10, 90])) == [10, 90]


# ------------------------------------------------------------------------ bad input
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodeError, match=r"nope\.mp4: no such file") as info:
        VideoReader(path)
    assert isinstance(info.value, OSError)
    assert info.value.path == str(path)


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoDecodeError, match=r"notes\.mp4: cannot open as a video"):
        VideoReader(path)


def test_truncated_mp4_fails_to_open(make_video) -> None:
    path = make_video("cut.mp4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the moov atom sits at the end
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4"):
        probe_video(path)


@pytest.mark.parametrize("kind", ["vp9-webm", "mpeg4-avi"])
def test_truncated_stream_reports_missing_frames(make_video, kind: str) -> None:
    suffix = ".webm" if kind == "vp9-webm" else ".avi"
    path = make_video("cut" + suffix, kind)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    counted = probe_video(path).num_frames
    assert 0 < counted < 100
    # A stale index that still says 100 frames: the tail is reported, not silently wrong.
    with VideoReader(path, num_frames=100) as reader, pytest.raises(
        VideoDecodeError, match=r"cut\.(webm|avi): (frames \[\d+.*not found|decoding failed)"
    ):
        reader.read([counted + 1, 99])


def test_bad_read_arguments(videos) -> None:
    with VideoReader(videos["h264-mp4"]) as reader:
        with pytest.raises(ValueError, match=r"out of range for .*v\.mp4, which has 100"):
            reader.read([0, 100])
        with pytest.raises(ValueError, match="out of range"):
            reader.read([-1])
        with pytest.raises(ValueError, match="no frame indices"):
            reader.read([])
        with pytest.raises(ValueError, match=r"crop \(90, 0, 10, 10\).*does not fit the 128x96"):
            reader.read([0], crop=(90, 0, 10, 10))
        with pytest.raises(ValueError, match="size must be"):
            reader.read([0], size=(0, 4))
    with pytest.raises(VideoDecodeError, match="closed"):
        reader.read([0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"threads": -1}, "threads"), ({"num_frames": 0}, "num_frames"),
     ({"count_frames": "guess"}, "count_frames"), ({"fps": 0.0}, "fps")],
)
def test_bad_constructor_arguments(videos, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoReader(videos["h264-mp4"], **kwargs)


def test_reader_is_not_picklable(videos) -> None:
    import pickle

    with VideoReader(videos["h264-mp4"]) as reader, pytest.raises(TypeError, match="picklable"):
        pickle.dumps(reader)


def test_decode_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(VideoDecodeError("broken", path="a.mp4")))
    assert str(err) == "a.mp4: broken"
    assert err.path == "a.mp4"


@pytest.mark.parametrize("kind", ["h264-mp4", "vp9-webm", "mpeg4-avi"])
def test_sparse_request_seeks_per_keyframe_run(videos, read_ids, kind: str) -> None:
    """Uniform clips: one seek per run whose keyframe skips decoding, never one per frame."""
    reader = VideoReader(videos[kind], skip_lead_in=False)
    proxy = _CountingContainer(reader._container)
    reader._container = proxy
    wanted = [2, 3, 45, 46, 85, 86]
    assert read_ids(reader.read(wanted)) == wanted
    keyint = 40 if kind == "h264-mp4" else 30
    runs = [(0, 3), (keyint, 46), (2 * keyint, 86)]
    assert proxy.decoded == sum(b - a + 1 for a, b in runs) < 87
    assert proxy.seeks <= 1 + len(runs) + 2  # keyframe scan + one per run (+ AVI retries)
    dense = [10, 11, 12, 13, 14, 15]
    proxy.decoded = 0
    assert read_ids(reader.read(dense)) == dense
    assert proxy.decoded == 16  # from keyframe 0 to frame 15, one run
    proxy.inner.close()


def test_non_420_video_crops_after_conversion(tmp_path: Path, read_ids) -> None:
    import av

    from video3d.data.transforms import resize_uint8

    path = tmp_path / "v444.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv444p"
        for i in range(12):
            image = np.zeros((96, 128, 3), np.uint8)
            image[:, : 8 * (i + 1)] = 200
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    with VideoReader(path) as reader:
        full = reader.read([3, 9])
        crop = reader.read([3, 9], crop=(10, 20, 40, 60), size=(20, 30))
    assert tuple(crop.shape) == (2, 20, 30, 3) and crop.dtype == torch.uint8
    expected = resize_uint8(full[:, 10:50, 20:80].contiguous(), (20, 30))
    assert (crop.int() - expected.int()).abs().max() <= 1


# ------------------------------------------------------------------------ fast paths
class _ContextProxy:
    """Counts the frames a codec context puts out and records its ``skip_frame`` settings."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "decoded", 0)
        object.__setattr__(self, "modes", [])

    def decode(self, *args: Any, **kwargs: Any):
        for frame in self.inner.decode(*args, **kwargs):
            object.__setattr__(self, "decoded", self.decoded + 1)
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "skip_frame":
            self.modes.append(value)
        setattr(self.inner, name, value)


class _StreamProxy:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.codec_context = _ContextProxy(inner.codec_context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _instrument(reader: VideoReader) -> tuple[_CountingContainer, _ContextProxy]:
    container = _CountingContainer(reader._container)
    stream = _StreamProxy(reader._stream)
    reader._container, reader._stream = container, stream
    return container, stream.codec_context


ALL_KINDS = [*KINDS, "h264-mp4-one-gop", "vp9-webm-altref"]


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_fast_paths_return_the_frames_of_a_full_decode(
    all_videos, read_ids, kind: str, request_name: str
) -> None:
    indices = REQUESTS[request_name]
    with VideoReader(all_videos[kind], skip_lead_in=False, fast_open=False) as reader:
        full = reader.read(indices)
        full_crop = reader.read(indices, crop=(17, 31, 64, 80), size=(32, 40))
    with VideoReader(all_videos[kind]) as reader:
        assert reader._skip_lead_in is (kind != "mpeg4-avi")
        fast = reader.read(indices)
        fast_crop = reader.read(indices, crop=(17, 31, 64, 80), size=(32, 40))
    assert read_ids(fast) == indices
    assert torch.equal(fast, full)
    assert torch.equal(fast_crop, full_crop)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_frame_alone_with_fast_paths(all_videos, read_ids, kind: str) -> None:
    with VideoReader(all_videos[kind]) as reader:
        assert [read_ids(reader.read([i]))[0] for i in range(100)] == list(range(100))


def _non_reference_frames(path: Path) -> set[int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        shown = {round(f.pts * stream.time_base * 30) for f in container.decode(stream)}
    return set(range(100)) - shown


@pytest.mark.parametrize("kind", ["h264-mp4", "h264-mp4-one-gop"])
def test_lead_in_skips_non_reference_frames(all_videos, read_ids, kind: str) -> None:
    skipped = _non_reference_frames(all_videos[kind])
    assert skipped, "the test video must have non-reference (B) frames"
    reader = VideoReader(all_videos[kind])
    container, context = _instrument(reader)
    wanted = [50, 45, 47]
    assert read_ids(reader.read(wanted)) == wanted
    keyframe = 40 if kind == "h264-mp4" else 0
    lead_in = set(range(keyframe, 45))
    assert container.seeks == 1
    # everything from the keyframe to frame 50 but the lead-in's non-reference frames
    # (the decoder also puts out nothing more than it must)
    assert context.decoded == 50 - keyframe + 1 - len(lead_in & skipped)
    assert context.modes[0] == "NONREF" and context.modes[-1] == "DEFAULT"
    assert str(reader._stream.codec_context.inner.skip_frame) == "DEFAULT"
    # a later read without a lead-in to skip leaves the setting alone
    assert read_ids(reader.read([keyframe, keyframe + 1])) == [keyframe, keyframe + 1]
    reader.close()


def test_lost_first_frame_falls_back_to_a_full_decode(all_videos, read_ids) -> None:
    """If a skipping run never sees its first wanted frame it is redone without skipping."""
    path = all_videos["h264-mp4"]
    target = min(i for i in _non_reference_frames(path) if i > 41)
    reader = VideoReader(path)
    container, context = _instrument(reader)
    # a wrong threshold: also skip the wanted frame's own (non-reference) packet
    reader._first_pts_at = lambda index: reader._pts_of(index + 3)  # type: ignore[method-assign]
    assert read_ids(reader.read([target])) == [target]
    assert container.seeks == 2  # the skipping run, then the full one
    assert container.decoded == target - 40 + 1  # the full run counted every frame
    reader.close()


@pytest.mark.parametrize("skip", [False, True])
def test_a_pass_says_how_it_ended_apart_from_frame_indices(videos, read_ids, skip: bool) -> None:
    """A pass's end is a typed result: a late landing names its frame, even frame 0, and is
    never mistaken for a lost lead-in (the sentinel integers this replaced could be)."""
    assert _RunEnd("late", 0) != _RunEnd("lead_in_lost")
    with VideoReader(videos["h264-mp4"]) as reader:  # keyframes every 40 frames
        late = _Run(41, 42, frozenset({41, 42}), None, None, {})
        assert reader._decode_run(late, 85, from_start=False, skip=skip) == _RunEnd("late", 80)
        assert late.got == {}  # nothing kept from a late landing
        done = _Run(41, 42, frozenset({41, 42}), None, None, {})
        assert reader._decode_run(done, 41, from_start=False, skip=skip) == _RunEnd("done")
        assert read_ids(np.stack([done.got[41], done.got[42]])) == [41, 42]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("mov,mp4,m4a,3gp,3g2,mj2", True), ("matroska,webm", True), ("avi", False),
     ("mpegts", False), ("flv", False)],
)
def test_has_packet_pts(name: str, expected: bool) -> None:
    assert _has_packet_pts(name) is expected


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_fast_open_reads_the_same_stream_facts(all_videos, kind: str) -> None:
    def facts(fast: bool) -> tuple[Any, ...]:
        container = _open_container(str(all_videos[kind]), fast=fast)
        stream = container.streams.video[0]
        out = (container.format.name, stream.codec_context.width, stream.codec_context.height,
               stream.average_rate, stream.time_base, stream.start_time, stream.frames,
               container.duration)
        container.close()
        return out

    assert facts(True) == facts(False)
    with VideoReader(all_videos[kind]) as fast, VideoReader(
        all_videos[kind], fast_open=False
    ) as full:
        assert fast.info == full.info


@pytest.mark.parametrize("name", ["skip_lead_in", "fast_open"])
def test_fast_path_flags_must_be_bools(videos, name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} must be a bool, got 1"):
        VideoReader(videos["h264-mp4"], **{name: 1})


@given(st.integers(-10**12, 10**12), st.integers(1, 10**9))
def test_round_ratio_matches_fraction_rounding(numerator: int, denominator: int) -> None:
    assert _round_ratio(numerator, denominator) == round(Fraction(numerator, denominator))


@pytest.mark.parametrize(("n", "d", "expected"), [(1, 2, 0), (3, 2, 2), (-1, 2, 0), (-3, 2, -2),
                                                  (5, 3, 2), (-5, 3, -2), (7, 7, 1)])
def test_round_ratio_ties_to_even(n: int, d: int, expected: int) -> None:
    assert _round_ratio(n, d) == expected


@given(
    st.integers(0, 5000),
    st.integers(-3000, 3000),
    st.sampled_from([Fraction(1, 12800), Fraction(1, 15360), Fraction(1, 30), Fraction(1, 1000),
                     Fraction(1, 90000), Fraction(1001, 30000)]),
    st.sampled_from([Fraction(30), Fraction(25), Fraction(30000, 1001), Fraction(24),
                     Fraction(1, 2)]),
)
def test_first_pts_at_is_the_smallest_timestamp_of_the_frame(
    index: int, start: int, time_base: Fraction, rate: Fraction
) -> None:
    scale = time_base * rate
    pts = _first_pts_at(index, start, scale)
    assert round((pts - start) * scale) >= index
    assert round((pts - 1 - start) * scale) < index
