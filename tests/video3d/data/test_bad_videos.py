"""Unreadable videos (random bytes, a real video cut in half), decoded by PyAV for real.

The two frame sources of ``VideoClipDataset``, the in-memory cache (``FrameCache``) and the
files (``ReaderPool``), must agree: the probe before training finds the same files, training
replaces them (the same replacements, the same failure counts) and reports each once, an
evaluation raises, ``load_data`` leaves them out and counts them, or stops the run above
``max_bad_video_share``.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from video3d.data import VideoDecodeError, VideoEntry
from video3d.data.datasets import BadVideoLog, UnreadableVideosError, VideoClipDataset
from video3d.trainer import ConfigError, DataError, TrainConfig, get_preset, load_data
from video3d.trainer._data import FrameCache, make_dataset, probe_videos

FRAMES = 48
PATHS = ["files", "cached"]


def _random_bytes(path: Path, like: Path) -> Path:
    path.write_bytes(os.urandom(like.stat().st_size))
    return path


def _cut_in_half(path: Path, source: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture
def clips(make_video: Callable[..., Path], tmp_path: Path) -> dict[str, Path]:
    """Four good videos (MP4, WebM, AVI) and the bad ones made from them."""
    good = make_video("good.mp4", num_frames=FRAMES)
    webm = make_video("good.webm", kind="vp9-webm", num_frames=FRAMES)
    avi = make_video("good.avi", kind="mpeg4-avi", num_frames=FRAMES)
    return {
        "good": good,
        "good2": make_video("good2.mp4", num_frames=FRAMES),
        "good-webm": webm,
        "good-avi": avi,
        "random bytes": _random_bytes(tmp_path / "random.mp4", good),
        "truncated": _cut_in_half(tmp_path / "half.mp4", good),
        # These open and decode their first frames: only their length gives them away.
        "truncated webm": _cut_in_half(tmp_path / "half.webm", webm),
        "truncated avi": _cut_in_half(tmp_path / "part.avi", avi, keep=0.8),
    }


def _config(**changes: object) -> TrainConfig:
    return get_preset("tiny").replace(**changes)


def test_probe_finds_the_same_videos_with_and_without_the_cache(clips: dict[str, Path]) -> None:
    entries = [VideoEntry(str(p), 0, num_frames=FRAMES) for p in clips.values()]
    bad = {str(clips[k]) for k in ("random bytes", "truncated", "truncated webm",
                                   "truncated avi")}
    on_files = probe_videos(entries)
    cache = FrameCache()
    cached = probe_videos(entries, cache=cache, threads=2)
    assert set(on_files) == set(cached) == bad
    assert "cannot open as a video" in on_files[str(clips["random bytes"])]
    for cut in ("truncated webm", "truncated avi"):  # found without decoding to the end
        assert "(cut short?)" in on_files[str(clips[cut])]
        assert "not found" in cached[str(clips[cut])]  # the whole decode breaks off
    assert len(cache) == 4  # the good videos are decoded into the cache on the way


@pytest.mark.parametrize("kind", ["random bytes", "truncated"])
@pytest.mark.parametrize("path", PATHS)
def test_training_replaces_an_unreadable_video_and_reports_it_once(
    clips: dict[str, Path], kind: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = str(clips[kind])
    entries = [VideoEntry(str(clips["good"]), 0, num_frames=FRAMES),
               VideoEntry(bad, 1, num_frames=FRAMES),
               VideoEntry(str(clips["good2"]), 0, num_frames=FRAMES)]
    log = BadVideoLog()
    data = make_dataset(entries, _config(), mode="train", sampling="uniform", clip_length=8,
                        cache=FrameCache() if path == "cached" else None, bad_videos=log)
    with caplog.at_level(logging.WARNING):
        for epoch in range(3):
            data.set_epoch(epoch)
            items = [data[i] for i in range(len(data))]
            assert len(items) == 3 and [label for _, label in items] == [0, 0, 0]
            assert all(tuple(clip.shape) == (3, 8, 32, 32) for clip, _ in items)
    assert list(log.errors) == [bad]
    warnings = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, however often it was drawn
    assert "unreadable video" in warnings[0] and log.errors[bad] in warnings[0]


def _full_frames(clip: object, rng: object) -> object:
    return clip


def test_both_sources_retry_and_count_unreadable_videos_alike(
    clips: dict[str, Path], tmp_path: Path, read_ids: Callable[[object], list[int]]
) -> None:
    """Random bytes and a missing file: each source records both, redraws the same
    replacements (the same seeds), counts the same failures."""
    entries = [VideoEntry(str(clips["good"]), 0, num_frames=FRAMES),
               VideoEntry(str(clips["random bytes"]), 1, num_frames=FRAMES),
               VideoEntry(str(tmp_path / "gone.mp4"), 2, num_frames=FRAMES),
               VideoEntry(str(clips["good-webm"]), 3, num_frames=FRAMES),
               VideoEntry(str(clips["good2"]), 4, num_frames=FRAMES)]
    runs = {}
    for path in PATHS:
        log = BadVideoLog()
        data = VideoClipDataset(entries, sampling="uniform", clip_len=8, seed=2,
                                transform=_full_frames, bad_videos=log,
                                source=FrameCache() if path == "cached" else None)
        items = []
        for epoch in range(3):
            data.set_epoch(epoch)
            items += [(read_ids(clip), label) for clip, label in (data[i] for i in range(5))]
        runs[path] = (items, data.num_failures, data.failed_paths, sorted(log.errors))
    files, cached = runs["files"], runs["cached"]
    assert files == cached
    items, failures, failed, errors = files
    assert {label for _, label in items} <= {0, 3, 4}  # every bad draw was replaced
    assert failures == len(failed) >= 6  # items 1 and 2, in each of 3 epochs
    assert set(failed) == set(errors) == {entries[1].path, entries[2].path}


def test_both_sources_give_up_alike(clips: dict[str, Path], tmp_path: Path) -> None:
    entries = [VideoEntry(str(clips["random bytes"]), 0, num_frames=FRAMES),
               VideoEntry(str(tmp_path / "gone.mp4"), 1, num_frames=FRAMES)]
    for path in PATHS:
        data = VideoClipDataset(entries, max_retries=2, transform=_full_frames,
                                source=FrameCache() if path == "cached" else None)
        with pytest.raises(UnreadableVideosError, match="3 videos in a row failed to decode "
                           "for item 1; last: "):
            data[1]
        assert data.num_failures == 3 and len(data.bad_videos) == len(set(data.failed_paths))


@pytest.mark.parametrize("path", PATHS)
def test_evaluation_raises_on_an_unreadable_video_and_records_it(
    clips: dict[str, Path], path: str
) -> None:
    bad = str(clips["random bytes"])
    log = BadVideoLog()
    for mode in ("val", "test"):
        data = make_dataset([VideoEntry(bad, 0, num_frames=FRAMES)], _config(), mode=mode,
                            sampling="consecutive", clip_length=8,
                            cache=FrameCache() if path == "cached" else None, bad_videos=log)
        with pytest.raises(VideoDecodeError, match="cannot open as a video"):
            data[0]
    assert list(log.errors) == [bad]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from video3d.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("bad-videos-tiny")
    make_synthetic_dataset(root, **get_preset("tiny").synthetic)
    return root


def _damaged_copy(tiny: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A copy of the tiny data with a training video of random bytes, a test video cut short."""
    root = tmp_path / "data"
    shutil.copytree(tiny, root)
    clean = load_data(root, _config(), probe=False)
    train_bad, test_bad = clean.train[0].path, clean.test[0].path
    _random_bytes(Path(train_bad), Path(clean.train[1].path))
    _cut_in_half(Path(test_bad), Path(clean.test[1].path))
    return root, train_bad, test_bad


@pytest.mark.parametrize("path", PATHS)
def test_load_data_leaves_out_unreadable_videos_and_counts_them(
    tiny: Path, tmp_path: Path, path: str
) -> None:
    root, train_bad, test_bad = _damaged_copy(tiny, tmp_path)
    cfg = _config(cache_videos=path == "cached")
    stream = io.StringIO()
    data = load_data(root, cfg, stream=stream)
    lines = stream.getvalue().splitlines()
    for bad in (train_bad, test_bad):
        named = [line for line in lines if bad in line]
        assert len(named) == 1 and named[0].startswith("warning: unreadable video"), lines
    assert "left out 2 unreadable of 24 videos" in stream.getvalue()
    assert "1 training, 0 validation, 1 test" in stream.getvalue()
    kept = [e.path for e in data.train + data.val + data.test]
    assert len(kept) == 22 and train_bad not in kept and test_bad not in kept
    report = data.bad_video_report()
    assert report["count"] == 2 and report["share"] == pytest.approx(2 / 24, abs=1e-6)
    assert report["paths"] == sorted([train_bad, test_bad])
    assert report["max_share"] == cfg.max_bad_video_share
    assert "cannot open as a video" in report["errors"][train_bad]


@pytest.mark.parametrize("path", PATHS)
def test_load_data_stops_above_max_bad_video_share(
    tiny: Path, tmp_path: Path, path: str
) -> None:
    root, train_bad, _ = _damaged_copy(tiny, tmp_path)
    cfg = _config(cache_videos=path == "cached", max_bad_video_share=0.05)
    with pytest.raises(DataError) as info:
        load_data(root, cfg, stream=io.StringIO())
    message = str(info.value)
    assert "\n" not in message
    assert "unreadable videos: 1 of 14 training videos (7.1%), more than" in message
    assert "max_bad_video_share=0.05" in message and train_bad in message


def test_failures_met_in_training_reach_the_report_from_loader_workers(
    tiny: Path, tmp_path: Path
) -> None:
    """Not probed (as a file that breaks after the probe): two loader processes meet it."""
    from video3d.trainer import VideoTrainer

    root, train_bad, _ = _damaged_copy(tiny, tmp_path)
    cfg = _config(cache_videos=False, num_workers=2)
    data = load_data(root, cfg, probe=False)
    assert train_bad in [e.path for e in data.train]
    trainer = VideoTrainer(cfg, data, device="cpu")
    model = trainer.new_model()
    loss = trainer.train_epoch(model, model, trainer.new_optimizer(model, 0.01), "uniform", 4,
                               seed=0, epoch=1)
    assert loss == loss  # a finite epoch: the bad video was replaced, not fatal
    report = data.bad_video_report()
    assert report["paths"] == [train_bad] and report["count"] == 1


@pytest.mark.parametrize("value", [-0.1, 1.0, "1%", True])
def test_max_bad_video_share_is_validated(value: object) -> None:
    with pytest.raises(ConfigError, match=r"max_bad_video_share must be a fraction in \[0, 1\)"):
        _config(max_bad_video_share=value)
    assert TrainConfig().max_bad_video_share == 0.01
    assert _config(max_bad_video_share=0).max_bad_video_share == 0.0
