from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from video3d.data.samplers import (
    ClipSampler,
    consecutive_clip,
    consecutive_clips,
    uniform_clip,
    uniform_clips,
)

POLICIES = ["loop", "repeat_last", "clamp", "stretch"]
MONOTONE = ["repeat_last", "clamp", "stretch"]

frames = st.integers(1, 400)
lengths = st.integers(1, 64)
policies = st.sampled_from(POLICIES)
seeds = st.integers(0, 2**32 - 1)


def _check(indices: np.ndarray, num_frames: int, policy: str) -> None:
    assert indices.dtype == np.int64
    assert indices.min() >= 0
    assert indices.max() < num_frames
    if policy != "loop":
        assert np.all(np.diff(indices, axis=-1) >= 0)


@settings(max_examples=300, deadline=None)
@given(frames, lengths, st.integers(1, 4), policies, seeds)
def test_consecutive_train_properties(n: int, length: int, stride: int, policy, seed) -> None:
    rng = np.random.default_rng(seed)
    idx = consecutive_clip(n, length, stride=stride, rng=rng, policy=policy)
    assert idx.shape == (length,)
    _check(idx, n, policy)
    span = (length - 1) * stride + 1
    if n >= span:  # long enough: an exact strided window, whatever the policy
        assert np.all(np.diff(idx) == stride)


@settings(max_examples=300, deadline=None)
@given(frames, lengths, st.integers(1, 4), st.integers(1, 12), policies)
def test_consecutive_test_properties(n: int, length: int, stride: int, clips: int, policy) -> None:
    idx = consecutive_clips(n, length, clips, stride=stride, policy=policy)
    assert idx.shape == (clips, length)
    _check(idx, n, policy)
    if n >= (length - 1) * stride + 1:
        assert np.all(np.diff(idx[:, 0]) >= 0)  # clips placed in order
        # the centre clip leaves (almost) the same room on both sides
        centre = consecutive_clips(n, length, 1, stride=stride, policy=policy)[0]
        assert abs(centre[0] - (n - 1 - centre[-1])) <= 1


@settings(max_examples=300, deadline=None)
@given(frames, st.integers(1, 16), st.sampled_from([1, 2, 4]), policies, seeds)
def test_uniform_train_properties(n: int, segments: int, seg: int, policy, seed) -> None:
    length = segments * seg
    idx = uniform_clip(n, length, segment_len=seg, rng=np.random.default_rng(seed), policy=policy)
    assert idx.shape == (length,)
    _check(idx, n, policy)
    if n >= length:
        runs = idx.reshape(segments, seg)
        assert np.all(np.diff(runs, axis=1) == 1)  # consecutive inside a run
        assert np.all(np.diff(idx) >= 1)  # strictly increasing, no repeats
        bounds = (np.arange(segments + 1) * n) // segments
        assert np.all(runs[:, 0] >= bounds[:-1])  # each run inside its own part
        assert np.all(runs[:, -1] < bounds[1:])


@settings(max_examples=300, deadline=None)
@given(frames, st.integers(1, 16), st.sampled_from([1, 4]), st.integers(1, 10), policies)
def test_uniform_test_properties(n: int, segments: int, seg: int, clips: int, policy) -> None:
    length = segments * seg
    idx = uniform_clips(n, length, clips, segment_len=seg, policy=policy)
    assert idx.shape == (clips, length)
    _check(idx, n, policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_short_video_never_raises_and_policy_shapes(policy: str) -> None:
    idx = consecutive_clip(5, 8, policy=policy)
    expected = {
        "loop": [0, 1, 2, 3, 4, 0, 1, 2],
        "repeat_last": [0, 1, 2, 3, 4, 4, 4, 4],
        "clamp": [0, 0, 1, 2, 3, 4, 4, 4],
        "stretch": [0, 0, 1, 1, 2, 3, 3, 4],
    }[policy]
    assert idx.tolist() == expected


def test_one_frame_video() -> None:
    for policy in POLICIES:
        assert uniform_clip(1, 16, policy=policy).tolist() == [0] * 16
        assert consecutive_clips(1, 4, 10, policy=policy).tolist() == [[0] * 4] * 10


def test_train_draws_are_seeded_and_vary() -> None:
    a = [consecutive_clip(300, 16, rng=np.random.default_rng(7)).tolist() for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    starts = {int(uniform_clip(300, 16, rng=rng)[0]) for _ in range(50)}
    assert len(starts) > 5


def test_ten_clips_cover_video_evenly() -> None:
    idx = consecutive_clips(310, 16, 10)
    assert idx[:, 0].tolist() == [14, 44, 73, 102, 132, 161, 191, 220, 249, 279]


def test_uniform_classic_one_frame_per_segment() -> None:
    assert uniform_clips(80, 8, 1, segment_len=1).tolist() == [[4, 14, 24, 34, 44, 54, 64, 74]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: consecutive_clip(10, 0), "clip_len must be a positive integer, got 0"),
        (lambda: consecutive_clip(0, 4), "num_frames must be a positive integer, got 0"),
        (lambda: consecutive_clip(10, 4, stride=0), "stride must be a positive integer"),
        (lambda: consecutive_clip(10, 4, policy="wrap"), "policy must be one of"),
        (lambda: uniform_clip(10, 6, segment_len=4), "multiple of segment_len"),
        (lambda: uniform_clips(10, 8, 0), "num_clips must be a positive integer, got 0"),
        (lambda: ClipSampler("random", 8), "strategy must be one of"),
        (lambda: ClipSampler("uniform", 0), "clip_len must be a positive integer, got 0"),
        (lambda: ClipSampler("uniform", 6), "multiple of segment_len"),
    ],
)
def test_bad_arguments(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_clip_sampler_dispatch() -> None:
    rng = np.random.default_rng(3)
    cons = ClipSampler("consecutive", 8, stride=2)
    assert cons.test_clips(100, 2).tolist() == consecutive_clips(100, 8, 2, stride=2).tolist()
    uni = ClipSampler("uniform", 8, segment_len=2, policy="clamp")
    assert uni.test_clips(5, 1).tolist() == uniform_clips(5, 8, 1, segment_len=2,
                                                          policy="clamp").tolist()
    assert uni.train_clip(100, rng).shape == (8,)
