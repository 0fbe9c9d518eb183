"""What the unreadable-video probe before training costs, per video, on one core.

``video3d.trainer.load_data`` probes every video of a run before training (issue 11): without a
frame cache it opens the file, decodes the first frame and reads the packets without decoding
them (a file cut short ends before the frame count its index lists); with a cache it decodes
the whole video into the cache, as a cached run has to anyway. This script times, per video,
single-threaded, on 340x256 H.264 MP4 files (``video_loader.make_videos``):

* ``open + first frame``: the least a probe can do;
* ``probe, no cache``: :func:`video3d.trainer._data.probe_videos` as ``load_data`` runs it;
* ``open + first and last frame``: the obvious way to find a file cut short, which decodes
  from the last keyframe before the end: the whole video when there is one keyframe;
* ``probe, cached``: the whole decode of a cached run's probe.

for a long keyframe interval (one keyframe per video) and a short one (every 30 frames).

Usage::

    python benchmarks/bad_video_probe.py            # 16 videos of 300 frames (a minute)
    python benchmarks/bad_video_probe.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _best_ms(run: Callable[[], object], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return 1000 * best / count


def _row(entries: Sequence[Any], frames: int, rounds: int) -> list[float]:
    from video3d.data import VideoReader
    from video3d.trainer._data import FrameCache, probe_videos

    def read(indices: list[int]) -> None:
        for e in entries:
            with VideoReader(e.path, num_frames=frames) as reader:
                reader.read(indices)

    read([0])  # warm-up: imports and the first open are not the probe's cost
    n = len(entries)
    return [
        _best_ms(lambda: read([0]), n, rounds),
        _best_ms(lambda: probe_videos(entries, threads=1), n, rounds),
        _best_ms(lambda: read([0, frames - 1]), n, rounds),
        _best_ms(lambda: probe_videos(entries, cache=FrameCache(), threads=1), n, rounds),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many timings")
    parser.add_argument("--quick", action="store_true", help="2 videos of 60 frames, 1 round")
    parser.add_argument("--workdir", help="where to write the videos (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames, args.rounds = 2, 60, 1

    from video_loader import make_videos

    from video3d.data import VideoEntry

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bad_video_probe_"))
    print(f"{args.videos} videos of {args.frames} frames, 340x256 H.264, one thread; "
          f"best of {args.rounds}; ms per video")
    print(f"{'keyframe every':>14} {'open+first':>11} {'probe':>9} {'first+last':>11} "
          f"{'cached':>9}")
    for gop in (args.frames, 30):
        folder = root / f"gop{gop}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = make_videos(folder, args.videos, args.frames, gop)
        entries = [VideoEntry(str(p), 0, num_frames=args.frames) for p in paths]
        times = _row(entries, args.frames, args.rounds)
        print(f"{gop:>14} " + " ".join(f"{t:>{w}.1f}" for t, w in zip(times, (11, 9, 11, 9))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
