"""FrameCache and MemoryReader: the in-memory frame source, read like a file reader."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from video3d.data import (
    FrameCache,
    FrameReader,
    MemoryReader,
    ReaderPool,
    VideoDecodeError,
    VideoEntry,
    VideoReader,
)
from video3d.data.transforms import resize_uint8


@pytest.fixture
def entry(videos) -> VideoEntry:
    return VideoEntry(str(videos["h264-mp4"]), 0, 100, 30.0)


def test_the_cache_decodes_each_video_once(entry: VideoEntry, read_ids) -> None:
    cache = FrameCache()
    with cache.open(entry) as reader:
        assert isinstance(reader, FrameReader)
        assert (reader.num_frames, reader.width, reader.height) == (100, 128, 96)
        assert reader.fps == pytest.approx(30.0)
        assert read_ids(reader.read([99, 0, 50, 50])) == [99, 0, 50, 50]
    assert reader.closed and len(cache) == 1
    frames = cache.get(entry)
    with cache.open(entry) as again:
        assert again.read(range(100)).data_ptr() != frames.data_ptr()  # a copy, not the cache
    assert cache.get(entry) is frames and len(cache) == 1  # decoded once
    assert read_ids(frames) == list(range(100))


def test_memory_reads_match_the_file_reader(entry: VideoEntry) -> None:
    """Whole frames are the decoder's bytes; crops of them are the same pixels; a resize is
    the transforms' uint8 resize."""
    wanted = [3, 41, 41, 7]
    with VideoReader(entry.path) as file, FrameCache().open(entry) as memory:
        assert torch.equal(memory.read(wanted), file.read(wanted))
        crop = memory.read(wanted, crop=(10, 20, 32, 48))
        assert torch.equal(crop, file.read(wanted)[:, 10:42, 20:68])
        small = memory.read(wanted, crop=(10, 20, 32, 48), size=(16, 24))
        assert tuple(small.shape) == (4, 16, 24, 3) and small.dtype == torch.uint8
        # the crop resized as TrainTransform resizes decoded clips (not as libswscale does)
        assert torch.equal(small, resize_uint8(crop, (16, 24)))


@pytest.mark.parametrize(
    ("indices", "crop", "size"),
    [([100], None, None), ([-1, 2], None, None), ([], None, None),
     ([0], (90, 0, 10, 10), None), ([0], (0, 0, 4), None), ([0], None, (0, 5))],
)
def test_bad_requests_are_refused_alike(entry: VideoEntry, indices, crop, size) -> None:
    """One check for every reader: the same request fails with the same message."""
    messages = []
    with VideoReader(entry.path) as file, FrameCache().open(entry) as memory:
        for reader in (file, memory):
            with pytest.raises(ValueError) as info:
                reader.read(indices, crop=crop, size=size)
            messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_a_closed_memory_reader_refuses_reads_and_pickling(entry: VideoEntry) -> None:
    reader = FrameCache().open(entry)
    with pytest.raises(TypeError, match="MemoryReader holds decoded frames and is not "
                       "picklable"):
        pickle.dumps(reader)
    reader.close()
    reader.close()  # twice is fine
    with pytest.raises(VideoDecodeError, match="reader is closed"):
        reader.read([0])
    assert repr(reader).startswith(f"MemoryReader({entry.path!r}, num_frames=100, fps=30.000")


def test_memory_reader_checks_its_frames() -> None:
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T, H, W, 3\].*got \(4, 6\)"):
        MemoryReader("x.mp4", torch.zeros(4, 6, dtype=torch.uint8))
    assert MemoryReader("x.mp4", torch.zeros(2, 4, 4, 3, dtype=torch.uint8)).fps == 0.0


def test_an_unreadable_video_is_not_cached(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    cache = FrameCache()
    for _ in range(2):  # raised on every open: a cache of failures would hide a repaired file
        with pytest.raises(VideoDecodeError, match=r"junk\.mp4: cannot open as a video"):
            cache.open(VideoEntry(str(junk), 0))
    assert len(cache) == 0


def test_the_cache_pickles_with_its_frames(entry: VideoEntry) -> None:
    cache = FrameCache()
    cache.get(entry)
    copy = pickle.loads(pickle.dumps(cache))
    assert len(copy) == 1 and torch.equal(copy.get(entry), cache.get(entry))
    assert repr(copy) == "FrameCache(1 videos)"


def test_the_file_source_lends_readers_of_entries(entry: VideoEntry, read_ids) -> None:
    pool = ReaderPool(max_open=1, threads=2)
    for _ in range(2):
        with pool.open(entry) as reader:
            assert isinstance(reader, VideoReader) and reader.num_frames == 100
            assert read_ids(reader.read([5])) == [5]
    assert (pool.hits, pool.misses) == (1, 1) and "threads=2" in repr(pool)
    pool.close()
    with pytest.raises(ValueError, match="threads must be a non-negative integer, got -1"):
        ReaderPool(threads=-1)
