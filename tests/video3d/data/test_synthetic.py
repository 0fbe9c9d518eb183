from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from video3d.data import make_synthetic_dataset, probe_video, read_video_list
from video3d.data.samplers import consecutive_clip, uniform_clip
from video3d.data.synthetic import class_names, render_video


def _colour_frames(video: np.ndarray, colour: str) -> np.ndarray:
    r, g, b = (video[..., i].astype(int) for i in range(3))
    mask = (r > 180) & (g < 80) & (b < 80) if colour == "red" else (b > 180) & (r < 80) & (g < 100)
    return np.flatnonzero(mask.sum(axis=(1, 2)) > 20)


def test_dataset_on_disk(tmp_path: Path) -> None:
    info = make_synthetic_dataset(tmp_path, num_classes=4, videos_per_class=5, frames=32,
                                  size=32, seed=2)
    assert info.classes == ["right-red-first", "right-blue-first", "left-red-first",
                            "left-blue-first"]
    assert (tmp_path / "classes.txt").read_text().split() == info.classes
    train, test = read_video_list(info.train_list), read_video_list(info.test_list)
    assert (info.num_train, info.num_test) == (len(train), len(test)) == (16, 4)
    assert train.classes == info.classes
    assert sorted(e.label for e in test.entries) == [0, 1, 2, 3]
    assert len({e.path for e in train.entries + test.entries}) == 20
    probe = probe_video(train.entries[0].path)
    assert (probe.num_frames, probe.width, probe.height, probe.fps) == (32, 32, 32, 25.0)
    assert json.loads((tmp_path / "info.json").read_text())["seed"] == 2
    first = (tmp_path / "train.txt").read_text()
    assert first.splitlines()[0].startswith("videos/v")
    digest = hashlib.sha256(Path(train.entries[0].path).read_bytes()).hexdigest()
    again = make_synthetic_dataset(tmp_path / "again", num_classes=4, videos_per_class=5,
                                   frames=32, size=32, seed=2)
    assert (Path(again.train_list)).read_text() == first
    rel = first.split()[0]
    assert hashlib.sha256((tmp_path / "again" / rel).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("label", range(8))
def test_rendered_classes_follow_their_definition(label: int) -> None:
    video = render_video(label, 8, 64, 64, np.random.default_rng(label))
    red, blue = _colour_frames(video, "red"), _colour_frames(video, "blue")
    assert len(red) >= 10 and len(blue) >= 10
    assert (red.max() < blue.min()) == (label % 2 == 0)  # which flash comes first
    direction = class_names(8)[label].split("-")[0]
    # the white disk: track its centre with wrap-around, along its axis of motion
    axis = 1 if direction in ("right", "left") else 0
    centres = []
    for frame in video[:10]:
        coords = np.argwhere(frame.min(axis=2) > 225)[:, axis]
        angles = coords * 2 * np.pi / 64
        centres.append(np.angle(np.exp(1j * angles).mean()))
    step = np.angle(np.exp(1j * np.diff(np.unwrap(centres)))).mean()
    sign = 1 if direction in ("right", "down") else -1
    assert step * sign > 0


def test_order_is_invisible_to_short_consecutive_clips_but_not_to_uniform_ones() -> None:
    rng = np.random.default_rng(0)
    both = {"cons16": 0, "cons32": 0, "uni16": 0, "uni32": 0}
    trials = 30
    for t in range(trials):
        video = render_video(t % 4, 4, 64, 32, np.random.default_rng(100 + t))
        red, blue = set(_colour_frames(video, "red")), set(_colour_frames(video, "blue"))
        clips = {"cons16": consecutive_clip(64, 16, rng=rng),
                 "cons32": consecutive_clip(64, 32, rng=rng),
                 "uni16": uniform_clip(64, 16, rng=rng),
                 "uni32": uniform_clip(64, 32, rng=rng)}
        for name, idx in clips.items():
            seen = set(idx.tolist())
            both[name] += bool(seen & red) and bool(seen & blue)
    assert both["cons16"] == 0
    assert 0 < both["cons32"] < trials
    assert both["uni16"] >= 0.6 * trials
    assert both["uni32"] == trials


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_classes": 3}, "num_classes must be 2, 4, 6 or 8, got 3"),
     ({"frames": 8}, "frames must be an integer >= 16, got 8"),
     ({"size": 33}, "size must be even"),
     ({"videos_per_class": 1}, "videos_per_class must be an integer >= 2"),
     ({"test_fraction": 1.0}, "test_fraction must be in")],
)
def test_bad_arguments(tmp_path: Path, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(tmp_path, **kwargs)


# -- the events family -------------------------------------------------------------------------
def _white_track(video: np.ndarray) -> list[tuple[int, float, float]]:
    """(frame, centre y, centre x) of the white key-event square in every frame showing it."""
    mask = (video.astype(int) > 225).all(axis=-1)
    out = []
    for f in np.flatnonzero(mask.sum(axis=(1, 2)) >= 4):
        ys, xs = np.nonzero(mask[f])
        out.append((int(f), float(ys.mean()), float(xs.mean())))
    return out


@pytest.mark.parametrize("label", range(9))
def test_events_video_shows_the_class_directions_in_order(label: int) -> None:
    from video3d.data.synthetic import events_class_names, render_events_video

    names = events_class_names(2, 3)
    video = render_events_video(label, frames=48, size=32, rng=np.random.default_rng(label),
                                num_events=2, num_directions=3, event_frames=8, decoys=3,
                                movers=2, noise=0.0)
    track = _white_track(video)
    for part, expected in enumerate(names[label].split("-")):
        points = [(y, x) for f, y, x in track if part * 24 <= f < (part + 1) * 24]
        assert len(points) >= 6, (label, part)  # each event lies in its own half
        (y0, x0), (y1, x1) = points[0], points[-1]
        moved = {"right": x1 - x0, "left": x0 - x1, "down": y1 - y0}[expected]
        assert moved > 4, (label, part, expected, points)


def test_faint_key_events_are_blended_into_the_background() -> None:
    from video3d.data.synthetic import render_events_video

    def video(faint: float) -> np.ndarray:
        return render_events_video(4, frames=48, size=32, rng=np.random.default_rng(7),
                                   num_events=2, num_directions=3, event_frames=8, decoys=0,
                                   movers=0, noise=0.0, faint=faint)

    clear, faint = video(0.0), video(1.0)
    assert len(_white_track(clear)) >= 12  # both events, 8 frames each, in full white
    assert _white_track(faint) == []  # every key event faint: no frame shows a white square
    assert np.array_equal(faint, video(1.0))  # the same draws for the same seed
    # Still there, only weak: without noise or distractors, the frames are not all the same.
    assert np.abs(np.diff(faint.astype(int), axis=0)).max() > 0


def test_events_options_follow_the_difficulty_knob() -> None:
    from video3d.data.synthetic import events_options

    easy, hard = events_options(0.0, 48), events_options(1.0, 48)
    assert easy["event_frames"] > hard["event_frames"] >= 3
    assert easy["decoys"] < hard["decoys"] and easy["noise"] < hard["noise"]
    assert easy["faint"] == 0.0 < events_options(0.25, 48)["faint"] < hard["faint"] <= 0.6
    with pytest.raises(ValueError, match="difficulty must be in \\[0, 1\\], got 1.5"):
        events_options(1.5)


def test_events_dataset_on_disk_through_make_synthetic_dataset(tmp_path: Path) -> None:
    info = make_synthetic_dataset(tmp_path, family="events", num_classes=4, num_events=2,
                                  num_directions=2, difficulty=0.3, videos_per_class=4,
                                  frames=32, size=32, test_fraction=0.5)
    assert info.family == "events" and info.classes[1] == "right-left"
    assert (info.num_train, info.num_test) == (8, 8)
    saved = json.loads((tmp_path / "info.json").read_text())
    assert saved["difficulty"] == 0.3 and saved["options"]["num_directions"] == 2
    entry = read_video_list(info.test_list).entries[0]
    assert probe_video(entry.path).num_frames == 32
    with pytest.raises(ValueError, match="num_classes=9 but the events family"):
        make_synthetic_dataset(tmp_path / "x", family="events", num_classes=9,
                               num_directions=2, videos_per_class=2, frames=32, size=32)
    with pytest.raises(ValueError, match="family must be 'flashes' or 'events', got 'dots'"):
        make_synthetic_dataset(tmp_path / "y", family="dots")
    with pytest.raises(ValueError, match="num_directions must be an integer in \\[2, 4\\]"):
        make_synthetic_dataset(tmp_path / "z", family="events", num_directions=5)


# -- byte-reproducibility ----------------------------------------------------------------------

_GENERATE = """
import sys
from video3d.data import make_synthetic_dataset
workers = int(sys.argv[1])
make_synthetic_dataset("flashes", num_classes=4, videos_per_class=6, frames=32, size=32,
                       seed=3, workers=workers)
make_synthetic_dataset("events", family="events", num_classes=4, num_directions=2,
                       difficulty=0.5, videos_per_class=3, frames=32, size=32, seed=3,
                       workers=workers)
"""


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generated_files_are_byte_identical_from_process_to_process(tmp_path: Path) -> None:
    """The same seed writes the same bytes, whichever process writes them and whatever its
    heap holds: glibc fills fresh heap memory with the byte ``MALLOC_PERTURB_`` names, so an
    encoder that reads memory it never wrote (x264's mbtree in its AVX-512 code did) gives
    other bytes under another value. Each run writes to a relative root from its own folder,
    so ``info.json`` is comparable too."""
    trees = []
    for name, workers, perturb in (("a", 1, None), ("b", 1, "85"), ("c", 2, "170")):
        folder = tmp_path / name
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        if perturb is not None:
            env["MALLOC_PERTURB_"] = perturb
        done = subprocess.run([sys.executable, "-c", _GENERATE, str(workers)], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        trees.append(_digests(folder))
    assert len(trees[0]) == 2 * 4 + 24 + 12  # 4 index files per dataset, 24 + 12 videos
    for name, tree in zip("bc", trees[1:]):
        assert tree.keys() == trees[0].keys()
        differ = sorted(k for k in tree if tree[k] != trees[0][k])
        assert not differ, f"run {name} wrote other bytes than run a: {differ}"
