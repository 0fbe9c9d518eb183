"""Shared pieces of ``planning_vs_peers.py``: hand-tuned schedules and compute accounting.

* :func:`clip_sequence`, :func:`schedule_epochs`, :func:`grid_specs`: the paper's hand-tuned
  grid (Table 3 protocol) as pure functions: clip schedules ``l1-l3``, ``l2-l3``, ``l1-l2-l3``
  x learning-rate schedules ``step`` (3 steps: 50% / 25% / 25% of the epochs) and ``cosine``
  x total epochs x sampling strategies.
* :class:`CountingTrainer`: a :class:`video3d.trainer.VideoTrainer` that counts the compute it
  spends (epochs and clip-frames: videos x clip length, for training and for validation).
* :func:`train_epochs`: train one model through a per-epoch ``(clip, lr)`` schedule with one
  SGD optimiser (the LR is set per epoch, momentum carries over), as a hand-written schedule
  is trained; a callback after every epoch may stop it (pruning, budget).

Example:
    >>> schedule_epochs((8, 16, 32), (0.02, 0.002), clip_schedule="l1-l3",
    ...                 lr_schedule="step", total=4)
    [(8, 0.02), (8, 0.02), (32, 0.002), (32, 0.0002)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from video3d.trainer import VideoTrainer

#: Clip schedules of the hand-tuned grid, as indices into the preset's clip lengths.
CLIP_SCHEDULES: dict[str, tuple[int, ...]] = {
    "l1-l3": (0, -1),
    "l2-l3": (1, -1),
    "l1-l2-l3": (0, 1, -1),
}
#: Learning-rate schedules of the hand-tuned grid.
LR_SCHEDULES: tuple[str, ...] = ("step", "cosine")


def clip_sequence(clip_lengths: Sequence[int], clip_schedule: str) -> tuple[int, ...]:
    """The clip lengths a schedule visits, in order, repeats collapsed.

    With two clip lengths ``l2`` is ``l3``, so ``l2-l3`` is the longest clip alone.

    Example:
        >>> clip_sequence((8, 16, 32), "l1-l2-l3"), clip_sequence((4, 8), "l2-l3")
        ((8, 16, 32), (8,))
    """
    if clip_schedule not in CLIP_SCHEDULES:
        raise ValueError(
            f"clip_schedule must be one of {sorted(CLIP_SCHEDULES)}, got {clip_schedule!r}"
        )
    if not clip_lengths:
        raise ValueError("clip_lengths must not be empty")
    n = len(clip_lengths)
    picked = [clip_lengths[min(i, n - 1) if i >= 0 else i] for i in CLIP_SCHEDULES[clip_schedule]]
    out: list[int] = []
    for c in picked:
        if not out or out[-1] != c:
            out.append(int(c))
    return tuple(out)


def three_step_lrs(learning_rates: Sequence[float]) -> tuple[float, float, float]:
    """The three LRs of the step schedule: the preset's first three, continued by /10.

    Example:
        >>> three_step_lrs((0.02, 0.002))
        (0.02, 0.002, 0.0002)
    """
    if not learning_rates:
        raise ValueError("learning_rates must not be empty")
    lrs = [float(r) for r in learning_rates[:3]]
    while len(lrs) < 3:
        lrs.append(lrs[-1] / 10)
    return (float(f"{lrs[0]:.6g}"), float(f"{lrs[1]:.6g}"), float(f"{lrs[2]:.6g}"))


def schedule_epochs(
    clip_lengths: Sequence[int],
    learning_rates: Sequence[float],
    *,
    clip_schedule: str,
    lr_schedule: str,
    total: int,
) -> list[tuple[int, float]]:
    """``(clip_length, learning_rate)`` of every epoch of a hand-tuned schedule.

    The clip stages split the epochs evenly (stage ``i`` of ``k`` runs epochs
    ``[round(i E / k), round((i + 1) E / k))``). ``step``: the first LR for the first half, the
    second until 75%, the third after (the LRs of :func:`three_step_lrs`). ``cosine``: the first
    LR annealed to 0, ``r1 (1 + cos(pi e / E)) / 2`` at epoch ``e``.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {lr_schedule!r}")
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be an int >= 1, got {total!r}")
    clips = clip_sequence(clip_lengths, clip_schedule)
    k = len(clips)
    bounds = [round(i * total / k) for i in range(k + 1)]
    r1, r2, r3 = three_step_lrs(learning_rates)
    half, three_quarters = round(total * 0.5), round(total * 0.75)
    out: list[tuple[int, float]] = []
    for e in range(total):
        stage = max(i for i in range(k) if bounds[i] <= e)
        if lr_schedule == "step":
            lr = r1 if e < half else (r2 if e < three_quarters else r3)
        else:
            lr = r1 * 0.5 * (1.0 + math.cos(math.pi * e / total))
        out.append((clips[stage], float(f"{lr:.6g}")))
    return out


def multigrid_epochs(
    clip_lengths: Sequence[int], learning_rates: Sequence[float], *, total: int
) -> list[tuple[int, float]]:
    """A multigrid-style long cycle (Wu et al., 2020): short-to-long clips within every LR step.

    The 3-step LR schedule of :func:`schedule_epochs` (50 % / 25 % / 25 %); inside each LR
    stage the clip lengths run from the shortest to the longest, splitting the stage's epochs
    evenly, so every stage ends at the longest clip.

    Example:
        >>> [c for c, _ in multigrid_epochs((8, 16, 32), (0.02, 0.002), total=12)]
        [8, 8, 16, 16, 32, 32, 8, 16, 32, 8, 16, 32]
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be an int >= 1, got {total!r}")
    r1, r2, r3 = three_step_lrs(learning_rates)
    half, three_quarters = round(total * 0.5), round(total * 0.75)
    clips = [int(c) for c in clip_lengths]
    out: list[tuple[int, float]] = []
    for lr, lo, hi in ((r1, 0, half), (r2, half, three_quarters), (r3, three_quarters, total)):
        n = hi - lo
        for e in range(n):
            # part k of len(clips) equal parts of the stage; a short stage keeps the longest
            k = len(clips) - 1 - min(len(clips) - 1, (n - 1 - e) * len(clips) // max(n, 1))
            out.append((clips[k], lr))
    return out


@dataclass(frozen=True)
class GridSpec:
    """One hand-tuned schedule of the grid."""

    sampling: str
    clip_schedule: str
    lr_schedule: str
    total: int

    @property
    def name(self) -> str:
        return f"{self.sampling[:4]} {self.clip_schedule} {self.lr_schedule} {self.total}ep"

    def epochs(self, clip_lengths: Sequence[int],
               learning_rates: Sequence[float]) -> list[tuple[int, float]]:
        return schedule_epochs(clip_lengths, learning_rates, clip_schedule=self.clip_schedule,
                               lr_schedule=self.lr_schedule, total=self.total)


def grid_specs(
    clip_lengths: Sequence[int],
    learning_rates: Sequence[float],
    *,
    samplings: Sequence[str],
    totals: Sequence[int],
    clip_schedules: Sequence[str] = tuple(CLIP_SCHEDULES),
    lr_schedules: Sequence[str] = LR_SCHEDULES,
) -> list[GridSpec]:
    """Every distinct schedule of the grid (schedules with identical epochs are listed once).

    Example:
        >>> len(grid_specs((8, 16, 32), (0.02, 0.002), samplings=("consecutive", "uniform"),
        ...                totals=(8, 16)))
        24
    """
    if not totals:
        raise ValueError("totals must not be empty")
    seen: set[tuple[Any, ...]] = set()
    out: list[GridSpec] = []
    for sampling in samplings:
        for clip_schedule in clip_schedules:
            for lr_schedule in lr_schedules:
                for total in totals:
                    spec = GridSpec(sampling, clip_schedule, lr_schedule, int(total))
                    key = (sampling, tuple(spec.epochs(clip_lengths, learning_rates)))
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(spec)
    return out


# ------------------------------------------------------------------------------ compute
@dataclass
class Compute:
    """Compute spent: trained epochs and clip-frames (videos x clip length per pass)."""

    epochs: int = 0
    clip_frames: int = 0
    eval_clip_frames: int = 0

    def copy(self) -> Compute:
        return Compute(self.epochs, self.clip_frames, self.eval_clip_frames)

    def minus(self, other: Compute) -> Compute:
        return Compute(self.epochs - other.epochs, self.clip_frames - other.clip_frames,
                       self.eval_clip_frames - other.eval_clip_frames)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def make_counting_trainer(*args: Any, **kwargs: Any) -> VideoTrainer:
    """A :class:`CountingTrainer` (built lazily so this module imports without torch)."""
    return _counting_class()(*args, **kwargs)


_CLASS: list[type] = []


def _counting_class() -> type:
    if _CLASS:
        return _CLASS[0]
    from video3d.trainer import VideoTrainer

    class CountingTrainer(VideoTrainer):  # type: ignore[misc, valid-type]
        """A video trainer that adds up the epochs and clip-frames it trains and validates."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.compute = Compute()

        def train_epoch(self, model: Any, wrapped: Any, optimizer: Any, sampling: str,
                        clip_length: int, **kwargs: Any) -> float:
            self.compute.epochs += 1
            self.compute.clip_frames += len(self.data.train) * int(clip_length)
            return float(super().train_epoch(model, wrapped, optimizer, sampling, clip_length,
                                             **kwargs))

        def evaluate(self, model: Any, sampling: str, clip_length: int,
                     entries: Any = None) -> dict[str, float]:
            n = len(entries) if entries is not None else len(self.data.val)
            self.compute.eval_clip_frames += n * int(clip_length)
            return dict(super().evaluate(model, sampling, clip_length, entries))

    _CLASS.append(CountingTrainer)
    return CountingTrainer


def epoch_cost(trainer: VideoTrainer, clip_length: int) -> int:
    """Training clip-frames of one epoch at ``clip_length``."""
    return len(trainer.data.train) * int(clip_length)


def train_epochs(
    trainer: VideoTrainer,
    sampling: str,
    epochs: Sequence[tuple[int, float]],
    *,
    key: str,
    before_epoch: Callable[[int, int], bool] | None = None,
    after_epoch: Callable[[int, nn.Module, int], bool] | None = None,
) -> tuple[nn.Module, int]:
    """Train a fresh model through ``epochs`` with one optimiser
    (:meth:`video3d.trainer.VideoTrainer.train_epochs`)."""
    return trainer.train_epochs(sampling, epochs, key=key, before_epoch=before_epoch,
                                after_epoch=after_epoch)
