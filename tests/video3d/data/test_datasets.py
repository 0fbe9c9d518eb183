from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from video3d.data import (
    ClipSampler,
    EvalTransform,
    FrameCache,
    ReaderPool,
    TrainTransform,
    VideoClipDataset,
    VideoDecodeError,
    VideoEntry,
    VideoScores,
    average_video_scores,
    consecutive_clips,
    make_synthetic_dataset,
    read_video_list,
    uniform_clips,
)


def _raw_train(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return clip  # identity: keep full frames so the frame numbers can be read back


def _raw_eval(clip: torch.Tensor) -> torch.Tensor:
    return clip


def _raw_flipped(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Full frames, mirrored by a draw from ``rng`` after the clip's own: the output depends on
    the whole random stream of the item."""
    return clip.flip(2) if rng.random() < 0.5 else clip


SOURCES = ["files", "memory"]


def _source(kind: str) -> FrameCache | None:
    return FrameCache() if kind == "memory" else None


@pytest.fixture
def entries(videos) -> list[VideoEntry]:
    return [VideoEntry(str(videos["h264-mp4"]), 0, 100, 30.0),
            VideoEntry(str(videos["vp9-webm"]), 1)]  # second one: frames counted on open


@pytest.mark.parametrize("sampling", ["consecutive", "uniform"])
def test_train_items_are_exact_seeded_clips(entries, read_ids, sampling: str) -> None:
    data = VideoClipDataset(entries, mode="train", sampling=sampling, clip_len=16, stride=2,
                            transform=_raw_train, seed=3)
    clip, label = data[1]
    ids = read_ids(clip)
    assert label == 1 and len(ids) == 16
    if sampling == "consecutive":
        assert np.all(np.diff(ids) == 2)
    else:
        runs = np.array(ids).reshape(4, 4)
        assert np.all(np.diff(runs, axis=1) == 1)
        assert [r[0] // 25 for r in runs] == [0, 1, 2, 3]  # one run per quarter
    assert read_ids(data[1][0]) == ids  # same (seed, epoch, index): same clip
    draws = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        draws.add(tuple(read_ids(data[1][0])))
    assert len(draws) > 1


def test_train_default_pipeline_shapes(entries) -> None:
    data = VideoClipDataset(entries, clip_len=8, transform=TrainTransform(32, (40, 48)))
    clip, label = data[0]
    assert clip.dtype == torch.float32 and tuple(clip.shape) == (3, 8, 32, 32)


def test_val_mode_is_centre_clip_centre_crop(entries, read_ids) -> None:
    raw = VideoClipDataset(entries, mode="val", clip_len=16, transform=_raw_eval)
    assert read_ids(raw[0][0]) == consecutive_clips(100, 16, 1)[0].tolist()
    data = VideoClipDataset(entries, mode="val", clip_len=16,
                            transform=EvalTransform(64, 56))
    clip, label = data[1]
    assert tuple(clip.shape) == (3, 16, 56, 56) and label == 1
    assert torch.equal(data[1][0], clip)  # deterministic
    assert len(data) == 2


def test_test_mode_ten_clips_three_crops(entries, read_ids) -> None:
    raw = VideoClipDataset(entries, mode="test", sampling="uniform", clip_len=8,
                           transform=_raw_eval)
    assert len(raw) == 20
    expected = uniform_clips(100, 8, 10)
    for k in (0, 4, 9):
        clip, label, video = raw[10 + k]
        assert (label, video) == (1, 1)
        assert read_ids(clip) == expected[k].tolist()
    data = VideoClipDataset(entries, mode="test", clip_len=8,
                            transform=EvalTransform(64, 64, num_crops=3))
    views, label, video = data[3]
    assert tuple(views.shape) == (3, 3, 8, 64, 64) and video == 0
    single = VideoClipDataset(entries, mode="test", clip_len=8, num_clips=2,
                              transform=EvalTransform(64, 56))
    assert tuple(single[0][0].shape) == (1, 3, 8, 56, 56)


def test_training_replaces_broken_videos(entries, tmp_path: Path, caplog) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    bad = [VideoEntry(str(junk), 5), VideoEntry(str(tmp_path / "gone.mp4"), 6)]
    stale = VideoEntry(entries[0].path, 0, num_frames=500)  # index claims frames that are not
    data = VideoClipDataset(bad + [stale] + entries, clip_len=8, transform=_raw_train,
                            max_retries=50)
    with caplog.at_level(logging.WARNING, logger="video3d.data.datasets"):
        labels = [data[i][1] for i in range(len(data)) for _ in range(2)]
    assert set(labels) <= {0, 1}
    assert data.num_failures >= 3
    assert {Path(p).name for p in data.failed_paths} >= {"junk.mp4", "gone.mp4"}
    assert "replacing it with another video" in caplog.text


def test_training_gives_up_after_bounded_retries(tmp_path: Path) -> None:
    data = VideoClipDataset([VideoEntry(str(tmp_path / "gone.mp4"), 0)], max_retries=3)
    with pytest.raises(RuntimeError, match=r"4 videos in a row failed .*gone\.mp4"):
        data[0]
    assert data.num_failures == 4


def test_evaluation_does_not_hide_broken_videos(tmp_path: Path) -> None:
    data = VideoClipDataset([VideoEntry(str(tmp_path / "gone.mp4"), 0)], mode="val")
    with pytest.raises(VideoDecodeError, match=r"gone\.mp4: no such file"):
        data[0]


@pytest.mark.parametrize("source", SOURCES)
def test_short_videos_follow_the_policy(make_video, read_ids, source: str) -> None:
    path = make_video("short.mp4", num_frames=5)
    data = VideoClipDataset([VideoEntry(str(path), 0)], mode="val", clip_len=8,
                            short_policy="repeat_last", transform=_raw_eval,
                            source=_source(source))
    assert read_ids(data[0][0]) == [0, 1, 2, 3, 4, 4, 4, 4]
    loop = VideoClipDataset([VideoEntry(str(path), 0)], clip_len=8, short_policy="loop",
                            transform=_raw_train, source=_source(source))
    assert read_ids(loop[0][0]) == [0, 1, 2, 3, 4, 0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "eval"}, "mode must be one of"),
        ({"clip_len": 0}, "clip_len must be a positive integer, got 0"),
        ({"sampling": "dense"}, "strategy must be one of"),
        ({"mode": "val", "num_clips": 3}, "val mode takes one clip"),
        ({"mode": "test", "num_clips": 0}, "num_clips must be a positive integer"),
        ({"max_retries": -1}, "max_retries"),
        ({"threads": 2, "source": FrameCache()}, r"threads=2 sets the default source's"),
    ],
)
def test_bad_dataset_arguments(entries, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoClipDataset(entries, **kwargs)
    with pytest.raises(ValueError, match="entries is empty"):
        VideoClipDataset([])


def test_index_bounds(entries) -> None:
    data = VideoClipDataset(entries, mode="val", transform=EvalTransform(64, 56))
    assert torch.equal(data[-1][0], data[1][0])
    with pytest.raises(IndexError, match="index 2 out of range"):
        data[2]


# ------------------------------------------------------------------------ frame sources
@pytest.mark.parametrize("sampling", ["consecutive", "uniform"])
def test_both_sources_give_identical_training_clips(entries, read_ids, sampling: str) -> None:
    """The file decoder and the in-memory cache: same frames, same (seed, epoch, index,
    attempt) draws, so the same clips item by item."""
    files, memory = (
        VideoClipDataset(entries, sampling=sampling, clip_len=8, stride=3,
                         transform=_raw_flipped, seed=11, source=_source(kind))
        for kind in SOURCES
    )
    assert isinstance(files.source, ReaderPool) and isinstance(memory.source, FrameCache)
    sampler = ClipSampler(sampling, 8, stride=3)  # type: ignore[arg-type]
    flips = 0
    for epoch in range(4):
        files.set_epoch(epoch)
        memory.set_epoch(epoch)
        for i in range(len(entries)):
            (a, la), (b, lb) = files[i], memory[i]
            assert la == lb == entries[i].label
            assert torch.equal(a, b), (epoch, i)
            rng = np.random.default_rng([11, epoch, i, 0])  # attempt 0: no failure
            want = sampler.train_clip(100, rng).tolist()
            flipped = bool(rng.random() < 0.5)
            flips += flipped
            assert read_ids(a.flip(2) if flipped else a) == want
    assert 0 < flips < 8  # both branches ran
    assert len(memory.source) == 2  # type: ignore[arg-type]


class _RecordingTransform(TrainTransform):
    """A TrainTransform that keeps every crop plan it draws."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.plans: list[object] = []

    def plan(self, height: int, width: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
        self.plans.append(super().plan(height, width, rng))
        return self.plans[-1]


@pytest.mark.parametrize("crop", [96, 64])
def test_both_sources_draw_the_same_crops(entries, crop: int) -> None:
    """TrainTransform's crop, scale and flip are drawn alike from both sources; the pixels
    differ only by how the crop is converted and resized (libswscale in the decoder, torch
    on the cached RGB frames)."""
    files, memory = (
        VideoClipDataset(entries, clip_len=8, transform=_RecordingTransform(crop, (96, 120)),
                         seed=5, source=_source(kind))
        for kind in SOURCES
    )
    for epoch in range(4):
        for data in (files, memory):
            data.set_epoch(epoch)
        for i in range(len(entries)):
            a, b = files[i][0], memory[i][0]
            assert a.shape == b.shape == (3, 8, crop, crop)
            assert (a - b).abs().mean() < 0.25  # a few levels (one level is 0.017 here)
    plans = [t.plans for t in (files.transform, memory.transform)]  # type: ignore[attr-defined]
    assert plans[0] == plans[1] and len(plans[0]) == 8
    assert len({p.box for p in plans[0]}) > 2 and {p.flip for p in plans[0]} == {True, False}


def test_both_sources_give_identical_test_views(entries) -> None:
    files, memory = (
        VideoClipDataset(entries, mode="test", num_clips=3, sampling="uniform", clip_len=8,
                         transform=EvalTransform(96, 96, num_crops=3), source=_source(kind))
        for kind in SOURCES
    )
    for i in range(len(files)):
        (a, la, va), (b, lb, vb) = files[i], memory[i]
        assert tuple(a.shape) == (3, 3, 8, 96, 96)
        assert torch.equal(a, b) and (la, va) == (lb, vb)


def test_a_source_replaces_the_readers_attribute(entries) -> None:
    pool = ReaderPool(max_open=2)
    data = VideoClipDataset(entries, mode="val", transform=_raw_eval)
    data.readers = pool  # the former name of the source
    assert data.source is pool and data.readers is pool
    data[0]
    assert pool.misses == 1 and len(pool) == 1
    data.readers = None
    assert isinstance(data.source, ReaderPool) and data.source is not pool


def test_video_scores_add_batches_and_sum_over_processes() -> None:
    torch.manual_seed(0)
    scores = torch.randn(12, 3, 5, dtype=torch.float64)  # 12 items, 3 crops, 5 classes
    index = torch.tensor([0, 1, 2, 3] * 3)
    whole = average_video_scores(scores, index, num_videos=5)
    assert torch.allclose(whole[:4], scores.mean(dim=1).view(3, 4, 5).mean(dim=0))
    assert whole[4].abs().sum() == 0  # no items: zeros
    batches = VideoScores(5, 5, dtype=torch.float64)
    for part in torch.arange(12).split(5):
        batches.add(scores[part], index[part])
    assert torch.allclose(batches.mean(), whole)
    # two processes with every other item each, as DDP shards them; all_sum adds theirs up
    ranks = [VideoScores(5, 5, dtype=torch.float64) for _ in range(2)]
    for rank, acc in enumerate(ranks):
        acc.add(scores[rank::2], index[rank::2])
    totals = {id(t): t for t in (ranks[0].sums, ranks[0].counts)}
    other = {id(ranks[0].sums): ranks[1].sums, id(ranks[0].counts): ranks[1].counts}

    def all_sum(t: torch.Tensor) -> torch.Tensor:
        return totals[id(t)] + other[id(t)]

    assert torch.allclose(ranks[0].mean(all_sum=all_sum), whole)
    assert not torch.allclose(ranks[0].mean(), whole)


def test_average_video_scores() -> None:
    scores = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    out = average_video_scores(scores, torch.tensor([1, 1, 0]), num_videos=3)
    assert out.tolist() == [[5.0, 5.0], [2.0, 1.0], [0.0, 0.0]]
    crops = scores[:, None, :].expand(3, 3, 2)
    assert torch.equal(average_video_scores(crops, torch.tensor([1, 1, 0])), out[:2])
    with pytest.raises(ValueError, match="expected scores"):
        average_video_scores(scores, torch.tensor([0, 1]))


def test_dataloader_workers_match_single_process(tmp_path: Path) -> None:
    info = make_synthetic_dataset(tmp_path / "synth", num_classes=2, videos_per_class=4,
                                  frames=24, size=32, seed=1)
    index = read_video_list(info.train_list)
    data = VideoClipDataset(index.entries, sampling="uniform", clip_len=8,
                            transform=TrainTransform(24, (28, 32)), seed=5)
    pickle.loads(pickle.dumps(data))
    ref = [b for b in DataLoader(data, batch_size=3)]
    par = [b for b in DataLoader(data, batch_size=3, num_workers=2)]
    assert len(ref) == len(par) == 2
    for (a, la), (b, lb) in zip(ref, par):
        assert a.shape[1:] == (3, 8, 24, 24)
        assert torch.equal(a, b) and torch.equal(la, lb)
