"""ReaderPool / open_reader: decoder reuse in a loader worker, and the keyframe-index cache."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from video3d.data import (
    ClipSampler,
    ReaderPool,
    TorchCodecReader,
    VideoClipDataset,
    VideoEntry,
    VideoReader,
    clear_keyframe_cache,
    open_reader,
    torchcodec_status,
)
from video3d.data import decoding as decoding_module

NO_TORCHCODEC = torchcodec_status()
needs_torchcodec = pytest.mark.skipif(NO_TORCHCODEC is not None, reason=str(NO_TORCHCODEC))


def test_borrow_reuses_open_readers_least_recent_out(videos) -> None:
    pool = ReaderPool(max_open=2)
    paths = [videos["h264-mp4"], videos["vp9-webm"], videos["mpeg4-avi"]]
    with pool.borrow(paths[0]) as first:
        pass
    with pool.borrow(paths[0]) as again:
        assert again is first
    assert (pool.hits, pool.misses, len(pool)) == (1, 1, 1)
    with pool.borrow(paths[1]), pool.borrow(paths[2]):
        pass
    assert len(pool) == 2 and first._container is None  # the oldest was closed
    pool.close()
    assert len(pool) == 0


def test_no_room_closes_after_the_block_and_errors_close_the_reader(videos) -> None:
    pool = ReaderPool()
    with pool.borrow(videos["h264-mp4"]) as reader:
        assert reader.read([3]).shape[0] == 1
    assert reader._container is None and len(pool) == 0
    keep = ReaderPool(max_open=4)
    with pytest.raises(ValueError, match="out of range"), keep.borrow(videos["h264-mp4"]) as bad:
        bad.read([1000])
    assert bad._container is None and len(keep) == 0


def test_pool_pickles_to_its_settings(videos) -> None:
    pool = ReaderPool(max_open=3, decoder="pyav")
    with pool.borrow(videos["h264-mp4"]):
        pass
    copy = pickle.loads(pickle.dumps(pool))
    assert (copy.max_open, copy.decoder, len(copy), copy.hits, copy.misses) == (3, "pyav", 0, 0, 0)
    assert len(pool) == 1


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_open must be a non-negative integer, got -1"):
        ReaderPool(-1)
    with pytest.raises(ValueError, match="decoder must be one of"):
        ReaderPool(decoder="ffmpeg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decoder must be one of"):
        open_reader("x.mp4", decoder="nvdec")  # type: ignore[arg-type]


def test_auto_is_pyav_without_a_gpu(videos) -> None:
    with open_reader(videos["h264-mp4"], decoder="auto") as reader:
        assert isinstance(reader, VideoReader)
    with open_reader(videos["h264-mp4"], decoder="auto", device="cpu") as reader:
        assert isinstance(reader, VideoReader)


@needs_torchcodec
def test_torchcodec_choice_falls_back_to_pyav_for_avi(videos) -> None:
    with open_reader(videos["h264-mp4"], decoder="torchcodec") as reader:
        assert isinstance(reader, TorchCodecReader)
    with open_reader(videos["mpeg4-avi"], decoder="torchcodec") as reader:
        assert isinstance(reader, VideoReader)


def _raw(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return clip


DECODERS = ["pyav", pytest.param("torchcodec", marks=needs_torchcodec)]


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("sampling", ["consecutive", "uniform"])
def test_dataset_with_a_pool_reads_exact_frames(videos, read_ids, decoder: str,
                                                sampling: str) -> None:
    kinds = ["h264-mp4", "vp9-webm", "mpeg4-avi", "h264-mp4-25fps"]
    entries = [VideoEntry(str(videos[k]), 0, 100) for k in kinds]
    data = VideoClipDataset(entries, sampling=sampling, clip_len=16,  # type: ignore[arg-type]
                            transform=_raw, seed=3)
    data.readers = ReaderPool(max_open=4, decoder=decoder)  # type: ignore[arg-type]
    sampler = ClipSampler(sampling, 16)  # type: ignore[arg-type]
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(entries)):
            clip, _ = data[i]
            rng = np.random.default_rng([3, epoch, i, 0])
            assert read_ids(clip) == sampler.train_clip(100, rng).tolist()
    assert data.readers.hits > 0


def test_test_mode_items_match_with_and_without_reuse(videos) -> None:
    entries = [VideoEntry(str(videos[k]), 1, 100) for k in ("h264-mp4", "vp9-webm")]
    plain = VideoClipDataset(entries, mode="test", num_clips=3)
    pooled = VideoClipDataset(entries, mode="test", num_clips=3)
    pooled.readers = ReaderPool(max_open=1)
    for i in range(len(plain)):
        a, b = plain[i], pooled[i]
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert (pooled.readers.hits, pooled.readers.misses) == (4, 2)


# ------------------------------------------------------------------------ keyframe cache
class _NoDemux:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the container was used ({name}) though the index was cached")


def test_keyframe_index_is_cached_per_file(tmp_path: Path, make_video) -> None:
    path = make_video("k.mp4")
    clear_keyframe_cache()
    with VideoReader(path) as reader:
        keyframes = reader._keyframe_indices()
    assert keyframes.tolist() == [0, 40, 80]
    with VideoReader(path) as reader:
        container, reader._container = reader._container, _NoDemux()
        assert reader._keyframe_indices() is keyframes
        reader._container = container
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # "changed": scan again
    with VideoReader(path) as reader:
        again = reader._keyframe_indices()
    assert again is not keyframes and again.tolist() == [0, 40, 80]
    assert clear_keyframe_cache() == 2
    assert len(decoding_module._KEYFRAME_CACHE) == 0


def test_cached_keyframes_keep_sparse_reads_exact(videos, read_ids) -> None:
    clear_keyframe_cache()
    wanted = [2, 3, 4, 5, 27, 28, 29, 30, 52, 53, 54, 55, 77, 78, 79, 80]
    for kind in ("h264-mp4", "mpeg4-avi", "vp9-webm"):
        for _ in range(2):  # the second reader uses the cached index
            with VideoReader(videos[kind]) as reader:
                assert read_ids(reader.read(wanted)) == wanted


def test_docstring_examples() -> None:
    import doctest

    import video3d.data._pool as pool_module
    import video3d.data._torchcodec as torchcodec_module

    for module in (pool_module, torchcodec_module):
        assert doctest.testmod(module).failed == 0
