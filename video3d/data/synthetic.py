"""A small, real video classification dataset whose classes need motion and temporal order.

:func:`make_synthetic_dataset` renders and h264-encodes videos to ``root/videos/*.mp4`` and
writes ``root/classes.txt``, ``root/train.txt`` and ``root/test.txt`` (plain lists
``path num_frames label``, paths relative to ``root``, readable with
:func:`~video3d.data.indexes.read_video_list`) and ``root/info.json``.

What a video shows, on a static random background:

* a white disk crossing the frame (wrapping at the edges) in one of four **directions**;
* two **flashes**, a red square and a blue square, each visible for 26% of the video at a
  random place: one early (starting at 6-12% of the video), one late (starting 54% of the
  video after the early one, so 28% of the video lies between them);
* two distractor squares in other colours bouncing around at random.

The class is ``(direction, which flash comes first)``: with ``num_classes = 2 * D`` the
directions used are the first ``D`` of right, left, down, up (``num_classes=2``: direction is
a distractor and only the order counts). No single frame tells the class (the disk's position
is random and each flash colour appears in every class). Direction is visible in any two
consecutive frames. The order needs a clip that sees both flashes: a 16-frame consecutive clip
of a 64-frame video never does (the gap is 18 frames), so it is at chance on the order; uniform
clips (one run per quarter of the video) usually do, and long consecutive clips often do. That is
what makes clip length and sampling change accuracy on this dataset.

Example:
    >>> from video3d.data.synthetic import make_synthetic_dataset
    >>> info = make_synthetic_dataset("/tmp/synth", num_classes=4, videos_per_class=50,
    ...                               frames=64, size=64, seed=0)  # doctest: +SKIP
    >>> info.num_train, info.num_test, info.classes[0]  # doctest: +SKIP
    (160, 40, 'right-red-first')
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DIRECTIONS",
    "SyntheticDataset",
    "events_class_names",
    "events_options",
    "make_events_dataset",
    "make_synthetic_dataset",
    "render_events_video",
    "render_video",
]

DIRECTIONS: tuple[str, ...] = ("right", "left", "down", "up")
_VECTORS = {"right": (0.0, 1.0), "left": (0.0, -1.0), "down": (1.0, 0.0), "up": (-1.0, 0.0)}
_RED = np.array([220, 30, 30], np.uint8)
_BLUE = np.array([30, 60, 230], np.uint8)
_DISTRACTOR_COLOURS = np.array([[40, 200, 60], [230, 210, 40], [150, 60, 200], [40, 200, 200]],
                               np.uint8)


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`make_synthetic_dataset` wrote what.

    Attributes:
        root: Dataset folder.
        classes: Class names, index = label.
        train_list: ``root/train.txt``.
        test_list: ``root/test.txt``.
        num_train: Training videos.
        num_test: Test videos.
        frames: Frames per video.
        size: Frame side in pixels.
        fps: Frame rate of the files.
        seed: Generator seed.
        family: ``"flashes"`` (:func:`make_synthetic_dataset`) or ``"events"``
            (:func:`make_events_dataset`).
        options: The family's rendering options (difficulty and what it sets).
    """

    root: str
    classes: list[str]
    train_list: str
    test_list: str
    num_train: int
    num_test: int
    frames: int
    size: int
    fps: int
    seed: int
    family: str = "flashes"
    options: dict[str, Any] = field(default_factory=dict)


def class_names(num_classes: int) -> list[str]:
    """Names of the classes, ``"{direction}-{colour}-first"``."""
    directions = DIRECTIONS[: max(1, num_classes // 2)] if num_classes > 2 else ("any",)
    return [f"{d}-{first}-first" for d in directions for first in ("red", "blue")]


def render_video(label: int, num_classes: int, frames: int, size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Renders one video of class ``label`` as ``uint8 [frames, size, size, 3]``."""
    red_first = label % 2 == 0
    # With two classes the direction is drawn at random: a distractor.
    pick = label // 2 if num_classes > 2 else int(rng.integers(4))
    direction = DIRECTIONS[pick]
    scale = size / 64.0
    # Static background: a smooth colour field plus fixed grain.
    coarse = rng.integers(50, 150, size=(4, 4, 3)).astype(np.float32)
    grid = np.linspace(0, 3, size, dtype=np.float32)
    i0 = np.minimum(grid.astype(int), 2)
    t = (grid - i0)[:, None]
    rows = coarse[i0] * (1 - t[..., None]) + coarse[i0 + 1] * t[..., None]  # [size, 4, 3]
    field = rows[:, i0] * (1 - t.T[..., None]) + rows[:, i0 + 1] * t.T[..., None]
    background = np.clip(field + rng.normal(0, 6, size=field.shape), 0, 255).astype(np.uint8)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = 7.0 * scale
    speed = rng.uniform(1.0, 2.0) * scale
    dy, dx = _VECTORS[direction]
    cy, cx = rng.uniform(0, size, 2)

    # Each flash lasts 26% of the video; the late one starts 54% after the early one, so
    # 28% of the video separates them: more than a 16-of-64-frame consecutive clip spans.
    flash = max(2, round(0.26 * frames))
    early = int(round(rng.uniform(0.06, 0.12) * frames))
    late = early + int(round(0.54 * frames))
    side = max(4, round(14 * scale))
    spots = rng.integers(0, size - side + 1, size=(2, 2))
    first_colour, second_colour = (_RED, _BLUE) if red_first else (_BLUE, _RED)
    events = [(early, first_colour, spots[0]), (late, second_colour, spots[1])]

    dist_side = max(3, round(8 * scale))
    dist_pos = rng.uniform(0, size - dist_side, size=(2, 2))
    dist_vel = rng.uniform(-1.5, 1.5, size=(2, 2)) * scale
    dist_col = _DISTRACTOR_COLOURS[rng.choice(len(_DISTRACTOR_COLOURS), 2, replace=False)]

    video = np.empty((frames, size, size, 3), np.uint8)
    half = size / 2.0
    for f in range(frames):
        img = video[f]
        img[...] = background
        for start, colour, (top, left) in events:
            if start <= f < start + flash:
                img[top : top + side, left : left + side] = colour
        for k in range(2):
            top, left = (int(v) for v in dist_pos[k])
            img[top : top + dist_side, left : left + dist_side] = dist_col[k]
            dist_pos[k] += dist_vel[k]
            for axis in range(2):  # bounce off the edges
                if not 0 <= dist_pos[k, axis] <= size - dist_side:
                    dist_vel[k, axis] *= -1
                    dist_pos[k, axis] = np.clip(dist_pos[k, axis], 0, size - dist_side)
        py = (yy - (cy + dy * speed * f) + half) % size - half
        px = (xx - (cx + dx * speed * f) + half) % size - half
        img[py * py + px * px <= radius * radius] = 235
    return video


def _encode(path: Path, video: np.ndarray, fps: int, gop: int, crf: int) -> None:
    import av

    from video3d.data.prepare import x264_params  # byte-reproducible settings (mbtree off)

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=fps,
            options={"crf": str(crf), "preset": "veryfast", "threads": "1",
                     "x264-params": x264_params(gop)},
        )
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _write_one(job: tuple[Any, ...]) -> None:
    path, family, label, num_classes, frames, size, fps, gop, crf, seed, number, options = job
    rng = np.random.default_rng([seed, number])
    if family == "events":
        video = render_events_video(label, frames=frames, size=size, rng=rng, **options)
    else:
        video = render_video(label, num_classes, frames, size, rng)
    _encode(Path(path), video, fps, gop, crf)


def _write_dataset(
    out: Path, *, family: str, classes: list[str], videos_per_class: int, test_fraction: float,
    frames: int, size: int, fps: int, gop: int, crf: int, seed: int, workers: int,
    options: dict[str, Any],
) -> SyntheticDataset:
    """Render, encode and index a class-balanced dataset (shared by both families)."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    num_classes = len(classes)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), videos_per_class)
    order = rng.permutation(len(labels))
    labels = labels[order]
    num_test = max(1, round(test_fraction * videos_per_class))
    is_test = np.zeros(len(labels), dtype=bool)
    for label in range(num_classes):
        is_test[np.flatnonzero(labels == label)[:num_test]] = True
    jobs = [
        (str(out / "videos" / f"v{i:05d}.mp4"), family, int(label), num_classes, frames, size,
         fps, gop, crf, seed, i, options)
        for i, label in enumerate(labels)
    ]
    if workers == 1:
        for job in jobs:
            _write_one(job)
    else:
        import concurrent.futures as cf
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, mp_context=context) as pool:
            list(pool.map(_write_one, jobs, chunksize=8))
    lines: dict[bool, list[str]] = {True: [], False: []}
    for i, label_id in enumerate(labels.tolist()):
        lines[bool(is_test[i])].append(f"videos/v{i:05d}.mp4 {frames} {label_id}\n")
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes))
    (out / "train.txt").write_text("".join(lines[False]))
    (out / "test.txt").write_text("".join(lines[True]))
    info = SyntheticDataset(
        root=str(out), classes=classes, train_list=str(out / "train.txt"),
        test_list=str(out / "test.txt"), num_train=len(lines[False]),
        num_test=len(lines[True]), frames=frames, size=size, fps=fps, seed=seed,
        family=family, options=dict(options),
    )
    (out / "info.json").write_text(json.dumps(asdict(info), indent=2))
    return info


def make_synthetic_dataset(
    root: str | os.PathLike[str],
    *,
    family: str = "flashes",
    num_classes: int = 4,
    videos_per_class: int = 50,
    frames: int = 64,
    size: int = 64,
    seed: int = 0,
    test_fraction: float = 0.2,
    fps: int = 25,
    gop: int = 16,
    crf: int = 18,
    workers: int = 1,
    **family_options: Any,
) -> SyntheticDataset:
    """Writes the synthetic dataset to ``root`` (see the module doc).

    Args:
        root: Output folder (created; existing files of the same names are overwritten).
        family: ``"flashes"`` (this module's doc) or ``"events"``
            (:func:`make_events_dataset`; its own options go in ``family_options``, and
            ``num_classes`` must equal its class count).
        num_classes: 2, 4, 6 or 8.
        videos_per_class: Videos per class, train and test together.
        frames: Frames per video (at least 16).
        size: Frame side (e.g. 64 or 112; at least 32, even).
        seed: Seed of everything random.
        test_fraction: Share of each class written to ``test.txt``.
        fps: Frame rate stored in the files.
        gop: Keyframe interval of the h264 streams.
        crf: x264 quality (lower is better).
        workers: Processes that render and encode (1: this process).
        family_options: Options of the ``"events"`` family (``num_events``,
            ``num_directions``, ``difficulty``).
    """
    if family == "events":
        info = make_events_dataset(
            root, videos_per_class=videos_per_class, frames=frames, size=size, seed=seed,
            test_fraction=test_fraction, fps=fps, gop=gop, crf=crf, workers=workers,
            **family_options,
        )
        if len(info.classes) != num_classes:
            raise ValueError(f"num_classes={num_classes} but the events family with "
                             f"{family_options} has {len(info.classes)} classes")
        return info
    if family != "flashes":
        raise ValueError(f"family must be 'flashes' or 'events', got {family!r}")
    if family_options:
        raise ValueError(f"unknown option(s) of the flashes family: {sorted(family_options)}")
    if num_classes not in (2, 4, 6, 8):
        raise ValueError(f"num_classes must be 2, 4, 6 or 8, got {num_classes!r}")
    for name, value, low in (("videos_per_class", videos_per_class, 2), ("frames", frames, 16),
                             ("size", size, 32), ("fps", fps, 1), ("gop", gop, 1),
                             ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if size % 2:
        raise ValueError(f"size must be even (yuv420p), got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    return _write_dataset(
        Path(root), family="flashes", classes=class_names(num_classes),
        videos_per_class=videos_per_class, test_fraction=test_fraction, frames=frames,
        size=size, fps=fps, gop=gop, crf=crf, seed=seed, workers=workers, options={},
    )


# ------------------------------------------------------------------------------ events family
_EVENT_COLOUR = np.array([240, 240, 240], np.uint8)
_DECOY_COLOURS = np.array([[230, 200, 40], [220, 60, 200], [60, 210, 220]], np.uint8)


def events_class_names(num_events: int, num_directions: int) -> list[str]:
    """Class names of the events family: the directions of the key events, in order.

    Example:
        >>> events_class_names(2, 2)
        ['right-right', 'right-left', 'left-right', 'left-left']
    """
    names = [""]
    for _ in range(num_events):
        names = [f"{n}-{d}" if n else d for n in names for d in DIRECTIONS[:num_directions]]
    return names


def events_options(difficulty: float, frames: int = 48) -> dict[str, Any]:
    """What the difficulty knob sets (linear in ``difficulty`` from 0 to 1).

    * ``event_frames``: frames a key event lasts, 20 % of the video at 0 down to 8 % at 1;
    * ``decoys``: look-alike events in other colours, 0 to 4;
    * ``movers``: squares bouncing around the whole video, 1 to 3;
    * ``noise``: per-pixel, per-frame Gaussian noise (std in grey levels), 3 to 30;
    * ``faint``: share of key events drawn *faint* (blended into the background at 5-25 %
      opacity, often below the noise), 0 to 0.6. A video with a faint event may be beyond
      recovery, so the share caps the reachable accuracy without making the clear videos
      harder to learn from (the task leaves chance as early as its clear videos allow).

    Example:
        >>> events_options(0.5, 48)
        {'event_frames': 7, 'decoys': 2, 'movers': 2, 'noise': 16.5, 'faint': 0.3}
    """
    d = float(difficulty)
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty!r}")
    return {
        "event_frames": max(3, round(frames * (0.20 - 0.12 * d))),
        "decoys": round(4 * d),
        "movers": 1 + round(2 * d),
        "noise": round(3.0 + 27.0 * d, 3),
        "faint": round(0.6 * d, 3),
    }


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(50, 150, size=(4, 4, 3)).astype(np.float32)
    grid = np.linspace(0, 3, size, dtype=np.float32)
    i0 = np.minimum(grid.astype(int), 2)
    t = (grid - i0)[:, None]
    rows = coarse[i0] * (1 - t[..., None]) + coarse[i0 + 1] * t[..., None]
    field_ = rows[:, i0] * (1 - t.T[..., None]) + rows[:, i0 + 1] * t.T[..., None]
    return np.clip(field_ + rng.normal(0, 6, size=field_.shape), 0, 255).astype(np.float32)


def _moving_square(
    video: np.ndarray, start: int, length: int, direction: str, side: int, colour: np.ndarray,
    rng: np.random.Generator, opacity: float = 1.0,
) -> None:
    """Draw a square moving in ``direction`` during frames ``[start, start + length)``,
    blended over what is there at ``opacity``."""
    frames, size = video.shape[:2]
    speed = rng.uniform(1.0, 1.6) * size / 32.0
    dy, dx = _VECTORS[direction]
    travel = speed * max(length - 1, 0)
    low = [travel if v < 0 else 0.0 for v in (dy, dx)]
    high = [size - side - (travel if v > 0 else 0.0) for v in (dy, dx)]
    y0, x0 = (rng.uniform(lo, max(lo, hi)) for lo, hi in zip(low, high))
    for k in range(length):
        f = start + k
        if not 0 <= f < frames:
            continue
        top = int(round(np.clip(y0 + dy * speed * k, 0, size - side)))
        left = int(round(np.clip(x0 + dx * speed * k, 0, size - side)))
        patch = video[f, top : top + side, left : left + side]
        patch[...] = opacity * colour + (1.0 - opacity) * patch


def render_events_video(
    label: int,
    *,
    frames: int,
    size: int,
    rng: np.random.Generator,
    num_events: int = 2,
    num_directions: int = 3,
    event_frames: int = 7,
    decoys: int = 2,
    movers: int = 2,
    noise: float = 16.5,
    faint: float = 0.0,
) -> np.ndarray:
    """One video of the events family, ``uint8 [frames, size, size, 3]`` (see
    :func:`make_events_dataset`)."""
    digits = []
    rest = int(label)
    for _ in range(num_events):
        digits.append(rest % num_directions)
        rest //= num_directions
    directions = [DIRECTIONS[i] for i in reversed(digits)]
    video = np.empty((frames, size, size, 3), np.float32)
    video[...] = _background(size, rng)
    # Movers: squares in other colours bouncing around for the whole video.
    mover_side = max(3, round(size / 7))
    pos = rng.uniform(0, size - mover_side, size=(movers, 2))
    vel = rng.uniform(-1.2, 1.2, size=(movers, 2)) * size / 32.0
    colours = _DISTRACTOR_COLOURS[rng.integers(len(_DISTRACTOR_COLOURS), size=movers)]
    for f in range(frames):
        for k in range(movers):
            top, left = (int(v) for v in pos[k])
            video[f, top : top + mover_side, left : left + mover_side] = colours[k]
            pos[k] += vel[k]
            for axis in range(2):
                if not 0 <= pos[k, axis] <= size - mover_side:
                    vel[k, axis] *= -1
                    pos[k, axis] = np.clip(pos[k, axis], 0, size - mover_side)
    side = max(3, round(size / 8))
    # Decoys: the key events' shape and motion in other colours, at any time.
    for _ in range(decoys):
        start = int(rng.integers(0, max(1, frames - event_frames + 1)))
        colour = _DECOY_COLOURS[rng.integers(len(_DECOY_COLOURS))]
        _moving_square(video, start, event_frames, DIRECTIONS[rng.integers(4)], side, colour,
                       rng)
    # Key events: event i happens somewhere in the i-th of num_events equal parts of the video.
    for i, direction in enumerate(directions):
        lo = i * frames // num_events
        hi = (i + 1) * frames // num_events - event_frames
        start = int(rng.integers(lo, max(lo, hi) + 1))
        opacity = float(rng.uniform(0.05, 0.25)) if rng.random() < faint else 1.0
        _moving_square(video, start, event_frames, direction, side, _EVENT_COLOUR, rng,
                       opacity)
    if noise > 0:
        video += rng.normal(0.0, noise, size=video.shape).astype(np.float32)
    return np.clip(video, 0, 255).astype(np.uint8)


def make_events_dataset(
    root: str | os.PathLike[str],
    *,
    num_events: int = 2,
    num_directions: int = 3,
    difficulty: float = 0.5,
    videos_per_class: int = 150,
    frames: int = 48,
    size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.75,
    fps: int = 25,
    gop: int = 16,
    crf: int = 18,
    workers: int = 1,
) -> SyntheticDataset:
    """Writes a video family whose class is the order and direction of short events.

    Every video has ``num_events`` *key events*: a white square moving in one of the first
    ``num_directions`` of right, left, down, up for a few frames, event ``i`` somewhere in the
    ``i``-th of ``num_events`` equal parts of the video. The class is the sequence of their
    directions (``num_directions ** num_events`` classes; e.g. ``left-right`` differs from
    ``right-left`` only by the order). Around them: *decoys* (the same moving square in other
    colours, at any time), *movers* (squares bouncing for the whole video), pixel noise and,
    for a share of the key events, a faint square (an irreducible error that caps the
    reachable accuracy); :func:`events_options` says how ``difficulty`` sets their number, the
    events' length, the noise and the faint share.

    Why the schedule matters here, by construction: a consecutive clip shorter than about
    ``frames / num_events`` sees at most one key event (it cannot tell the order, nor the other
    direction); a sparse uniform clip (few runs of ``segment_len`` frames) often falls between
    short events; long uniform clips see every event but cost the most per epoch.

    Args:
        root: Output folder (``videos/``, ``train.txt``, ``test.txt``, ``classes.txt``,
            ``info.json``).
        num_events: Key events per video, 1 to 4.
        num_directions: Directions an event may take, 2 to 4.
        difficulty: The knob, in [0, 1].
        videos_per_class: Videos per class, train and test together.
        frames: Frames per video (at least 8 per key event).
        size: Frame side in pixels (even, at least 16).
        seed: Seed of everything random.
        test_fraction: Share of each class written to ``test.txt``.
        fps, gop, crf: Encoding settings (as :func:`make_synthetic_dataset`).
        workers: Processes that render and encode.

    Example:
        >>> info = make_events_dataset("/tmp/ev", difficulty=0.5,
        ...                            videos_per_class=4)  # doctest: +SKIP
        >>> info.classes[:2], info.options["event_frames"]  # doctest: +SKIP
        (['right-right', 'right-left'], 7)
    """
    for name, value, low, high in (("num_events", num_events, 1, 4),
                                   ("num_directions", num_directions, 2, 4),
                                   ("videos_per_class", videos_per_class, 2, None),
                                   ("frames", frames, 8 * max(num_events, 1), None),
                                   ("size", size, 16, None), ("fps", fps, 1, None),
                                   ("gop", gop, 1, None), ("workers", workers, 1, None)):
        if (isinstance(value, bool) or not isinstance(value, int) or value < low
                or (high is not None and value > high)):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    if size % 2:
        raise ValueError(f"size must be even (yuv420p), got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    options = {"num_events": num_events, "num_directions": num_directions,
               **events_options(difficulty, frames)}
    info = _write_dataset(
        Path(root), family="events", classes=events_class_names(num_events, num_directions),
        videos_per_class=videos_per_class, test_fraction=test_fraction, frames=frames,
        size=size, fps=fps, gop=gop, crf=crf, seed=seed, workers=workers, options=options,
    )
    extra = json.loads((Path(root) / "info.json").read_text())
    extra["difficulty"] = float(difficulty)
    (Path(root) / "info.json").write_text(json.dumps(extra, indent=2))
    return info
