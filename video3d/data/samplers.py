"""Clip samplers: which frame indices of a video make up a clip.

Every function here is a pure function of the video's frame count (plus a seeded
:class:`numpy.random.Generator` for training draws) and returns ``int64`` frame indices; nothing
is decoded. Two strategies, as in the paper:

* **consecutive**: one window of ``clip_len`` frames taken every ``stride`` frames;
* **uniform** (TSN style): the video is cut into ``clip_len // segment_len`` equal parts and each
  part contributes ``segment_len`` consecutive frames (``segment_len=4`` is the paper's planning
  setting, ``segment_len=1`` the classic one-frame-per-segment variant).

Training draws random offsets (``*_clip(..., rng=rng)``); testing places ``num_clips`` clips
evenly (``*_clips``; one centre clip for planning, ten for the final protocol).

A video shorter than the window never raises: the indices are computed on a virtual video just
long enough, then mapped back by the ``policy`` (default :data:`DEFAULT_SHORT_POLICY`, ``"loop"``):

* ``"loop"``: wrap around to the start (``i % num_frames``); the only non-monotone policy;
* ``"repeat_last"``: indices past the end repeat the last frame;
* ``"clamp"``: the window is centred on the video and indices outside it repeat the first or the
  last frame;
* ``"stretch"``: the virtual video is squeezed onto the real one (``i * num_frames // virtual``),
  so the clip spans the whole video and frames repeat evenly.

Example:
    >>> import numpy as np
    >>> from video3d.data.samplers import consecutive_clip, uniform_clips
    >>> consecutive_clip(100, 4, stride=2, rng=np.random.default_rng(0)).tolist()
    [79, 81, 83, 85]
    >>> uniform_clips(16, 8, 1, segment_len=2).tolist()
    [[1, 2, 5, 6, 9, 10, 13, 14]]
    >>> consecutive_clip(3, 5, policy="repeat_last").tolist()
    [0, 1, 2, 2, 2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

__all__ = [
    "DEFAULT_SHORT_POLICY",
    "ClipSampler",
    "SamplingStrategy",
    "ShortVideoPolicy",
    "consecutive_clip",
    "consecutive_clips",
    "uniform_clip",
    "uniform_clips",
]

ShortVideoPolicy = Literal["loop", "repeat_last", "clamp", "stretch"]
SamplingStrategy = Literal["consecutive", "uniform"]
DEFAULT_SHORT_POLICY: ShortVideoPolicy = "loop"
_POLICIES: tuple[str, ...] = get_args(ShortVideoPolicy)
_STRATEGIES: tuple[str, ...] = get_args(SamplingStrategy)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_policy(policy: object) -> None:
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {_POLICIES}, got {policy!r}")


def _check_segments(clip_len: int, segment_len: int) -> None:
    if clip_len % segment_len:
        raise ValueError(
            f"clip_len must be a multiple of segment_len, got clip_len={clip_len} "
            f"and segment_len={segment_len}"
        )


def _map_short(virtual: np.ndarray, num_frames: int, length: int, policy: str) -> np.ndarray:
    """Maps indices of a virtual video of ``length`` frames onto ``num_frames`` real frames."""
    if length <= num_frames:
        return virtual
    if policy == "loop":
        return virtual % num_frames
    if policy == "repeat_last":
        return np.minimum(virtual, num_frames - 1)
    if policy == "clamp":
        return np.clip(virtual - (length - num_frames) // 2, 0, num_frames - 1)
    return (virtual * num_frames) // length  # "stretch"


def _place(room: int, clip: int, num_clips: int) -> int:
    """Offset of clip ``clip`` of ``num_clips`` spread evenly over ``room + 1`` positions."""
    return (room * (2 * clip + 1)) // (2 * num_clips)


def _consecutive_offsets(
    num_frames: int, clip_len: int, stride: int, policy: str
) -> tuple[int, int, np.ndarray]:
    num_frames = _check_positive_int("num_frames", num_frames)
    clip_len = _check_positive_int("clip_len", clip_len)
    stride = _check_positive_int("stride", stride)
    _check_policy(policy)
    span = (clip_len - 1) * stride + 1
    length = max(num_frames, span)
    return length, length - span, np.arange(clip_len, dtype=np.int64) * stride


def consecutive_clip(
    num_frames: int,
    clip_len: int,
    *,
    stride: int = 1,
    rng: np.random.Generator | None = None,
    policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY,
) -> np.ndarray:
    """One window of ``clip_len`` frames, every ``stride``-th frame.

    Args:
        num_frames: Decoded frame count of the video (at least 1).
        clip_len: Frames in the clip (at least 1).
        stride: Step between taken frames.
        rng: Draws a random offset (training); ``None`` takes the centre window (testing).
        policy: What to do when the video is shorter than the window (see the module doc).

    Returns:
        ``int64`` array of shape ``[clip_len]``.
    """
    length, room, steps = _consecutive_offsets(num_frames, clip_len, stride, policy)
    offset = _place(room, 0, 1) if rng is None else int(rng.integers(0, room + 1))
    return _map_short(offset + steps, num_frames, length, policy)


def consecutive_clips(
    num_frames: int,
    clip_len: int,
    num_clips: int = 1,
    *,
    stride: int = 1,
    policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY,
) -> np.ndarray:
    """``num_clips`` windows placed evenly over the video (test protocol).

    Returns:
        ``int64`` array of shape ``[num_clips, clip_len]``; ``num_clips=1`` is the centre window.
    """
    num_clips = _check_positive_int("num_clips", num_clips)
    length, room, steps = _consecutive_offsets(num_frames, clip_len, stride, policy)
    offsets = np.array([_place(room, i, num_clips) for i in range(num_clips)], dtype=np.int64)
    return _map_short(offsets[:, None] + steps[None, :], num_frames, length, policy)


def _uniform_segments(
    num_frames: int, clip_len: int, segment_len: int, policy: str
) -> tuple[int, np.ndarray, np.ndarray]:
    num_frames = _check_positive_int("num_frames", num_frames)
    clip_len = _check_positive_int("clip_len", clip_len)
    segment_len = _check_positive_int("segment_len", segment_len)
    _check_policy(policy)
    _check_segments(clip_len, segment_len)
    num_segments = clip_len // segment_len
    length = max(num_frames, clip_len)
    bounds = (np.arange(num_segments + 1, dtype=np.int64) * length) // num_segments
    starts = bounds[:-1]
    rooms = bounds[1:] - starts - segment_len  # >= 0 because length >= clip_len
    return length, starts, rooms


def uniform_clip(
    num_frames: int,
    clip_len: int,
    *,
    segment_len: int = 4,
    rng: np.random.Generator | None = None,
    policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY,
) -> np.ndarray:
    """``clip_len // segment_len`` runs of ``segment_len`` frames, one per equal part.

    Args:
        num_frames: Decoded frame count of the video (at least 1).
        clip_len: Frames in the clip; a multiple of ``segment_len``.
        segment_len: Consecutive frames taken from each part (4 in the paper, 1 in TSN).
        rng: Draws each run's offset inside its part (training); ``None`` centres them.
        policy: What to do when the video has fewer than ``clip_len`` frames.

    Returns:
        ``int64`` array of shape ``[clip_len]``.
    """
    length, starts, rooms = _uniform_segments(num_frames, clip_len, segment_len, policy)
    shifts = rooms // 2 if rng is None else rng.integers(0, rooms + 1)
    offsets = starts + shifts
    steps = np.arange(segment_len, dtype=np.int64)
    virtual = (offsets[:, None] + steps[None, :]).reshape(-1)
    return _map_short(virtual, num_frames, length, policy)


def uniform_clips(
    num_frames: int,
    clip_len: int,
    num_clips: int = 1,
    *,
    segment_len: int = 4,
    policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY,
) -> np.ndarray:
    """``num_clips`` uniform clips whose runs are shifted evenly inside their parts.

    Returns:
        ``int64`` array of shape ``[num_clips, clip_len]``; ``num_clips=1`` centres every run.
    """
    num_clips = _check_positive_int("num_clips", num_clips)
    length, starts, rooms = _uniform_segments(num_frames, clip_len, segment_len, policy)
    clip = np.arange(num_clips, dtype=np.int64)[:, None]
    offsets = starts[None, :] + (rooms[None, :] * (2 * clip + 1)) // (2 * num_clips)
    steps = np.arange(segment_len, dtype=np.int64)
    virtual = (offsets[:, :, None] + steps).reshape(num_clips, clip_len)
    return _map_short(virtual, num_frames, length, policy)


@dataclass(frozen=True)
class ClipSampler:
    """A sampling configuration: strategy, clip length and step, short-video policy.

    Args:
        strategy: ``"consecutive"`` or ``"uniform"``.
        clip_len: Frames per clip.
        stride: Frame step of consecutive clips (ignored by uniform sampling).
        segment_len: Frames per run of uniform clips (ignored by consecutive sampling).
        policy: Short-video policy (see the module doc).

    Example:
        >>> import numpy as np
        >>> sampler = ClipSampler("uniform", 8, segment_len=4)
        >>> sampler.test_clips(40, 1).tolist()
        [[8, 9, 10, 11, 28, 29, 30, 31]]
        >>> sampler.train_clip(40, np.random.default_rng(0)).shape
        (8,)
    """

    strategy: SamplingStrategy
    clip_len: int
    stride: int = 1
    segment_len: int = 4
    policy: ShortVideoPolicy = DEFAULT_SHORT_POLICY

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {self.strategy!r}")
        _check_positive_int("clip_len", self.clip_len)
        _check_positive_int("stride", self.stride)
        _check_positive_int("segment_len", self.segment_len)
        _check_policy(self.policy)
        if self.strategy == "uniform":
            _check_segments(self.clip_len, self.segment_len)

    def train_clip(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """One randomly placed clip, ``int64[clip_len]``."""
        if self.strategy == "consecutive":
            return consecutive_clip(
                num_frames, self.clip_len, stride=self.stride, rng=rng, policy=self.policy
            )
        return uniform_clip(
            num_frames, self.clip_len, segment_len=self.segment_len, rng=rng, policy=self.policy
        )

    def test_clips(self, num_frames: int, num_clips: int = 1) -> np.ndarray:
        """``num_clips`` evenly placed clips, ``int64[num_clips, clip_len]``."""
        if self.strategy == "consecutive":
            return consecutive_clips(
                num_frames, self.clip_len, num_clips, stride=self.stride, policy=self.policy
            )
        return uniform_clips(
            num_frames, self.clip_len, num_clips, segment_len=self.segment_len, policy=self.policy
        )
