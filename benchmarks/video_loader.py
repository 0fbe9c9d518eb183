"""Training-clip loading throughput: video3d.data against the decode-then-resize-floats pipeline.

Generates 340x256 h264 MP4 videos, then for 16/32/64-frame clips, consecutive and uniform
sampling, measures training clips per second in ONE process with ONE torch thread and
single-threaded decoding (so the figure is per core) for:

* ``video3d``: :class:`video3d.data.VideoClipDataset` in train mode: sample indices, draw the
  crop in source coordinates, decode with the crop and the resize done on the YUV frame by
  libswscale, flip, normalise -> float [3, T, 224, 224];
* ``baseline``: the common pipeline: the same reader and indices, whole RGB frames, converted
  to float, the whole frame resized so the short side is in [256, 340], then cropped to 224,
  flipped and normalised;
* ``decode``: decoding every frame of every video without any conversion: the limit.

Both pipelines open their videos with the same :class:`video3d.data.VideoReader` defaults, so
the decoder-side speedups apply to both equally: the fast container open (the stream is probed
from its first keyframe only) and skipping the non-reference frames between the keyframe a
read seeks to and the first wanted frame. Only ``video3d`` uses the crop path (crop of the
YUV planes copied into a new frame, one libswscale call converts and resizes it).

Usage::

    python benchmarks/video_loader.py            # full run (a few minutes on 2 cores)
    python benchmarks/video_loader.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_videos(root: Path, count: int, frames: int, gop: int, seed: int = 0,
                size: tuple[int, int] = (340, 256)) -> list[Path]:
    """Writes ``count`` h264 videos (``size`` = width, height) with moving textured content."""
    import av

    rng = np.random.default_rng(seed)
    paths = []
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for v in range(count):
        path = root / f"bench_{v:03d}.mp4"
        texture = rng.integers(0, 255, size=(height // 8, width // 8 + 9, 3), dtype=np.uint8)
        texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream(
                "libx264", rate=30,
                options={"crf": "23", "preset": "veryfast", "threads": "1",
                         "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"},
            )
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for f in range(frames):
                shift = (2 * f) % 64
                img = texture[:, shift : shift + width].astype(np.float32)
                wave = 40 * np.sin((xx + 3 * f) / 17.0) * np.cos((yy - 2 * f) / 23.0)
                img += wave[..., None]
                cy = height / 2 + 80 * (height / 256) * np.sin(f / 20 + v)
                cx = width / 2 + 120 * (width / 340) * np.cos(f / 25)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < 900 * (height / 256) ** 2] = 250
                frame = np.clip(img, 0, 255).astype(np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        paths.append(path)
    return paths


def baseline_clip(path: str, num_frames: int, indices: np.ndarray,
                  rng: np.random.Generator) -> object:
    """Decode whole frames, float, resize whole frames, then crop, flip, normalise."""
    import torch
    import torch.nn.functional as F

    from video3d.data import VideoReader

    with VideoReader(path, num_frames=num_frames) as reader:
        frames = reader.read(indices)  # uint8 [T, H, W, 3] full frames
    x = frames.permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    h, w = x.shape[-2:]
    short = int(rng.integers(256, 341))
    size = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top = int(rng.integers(0, size[0] - 224 + 1))
    left = int(rng.integers(0, size[1] - 224 + 1))
    x = x[:, :, top : top + 224, left : left + 224]
    if rng.random() < 0.5:
        x = x.flip(-1)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return ((x - mean) / std).permute(1, 0, 2, 3).contiguous()


def _rates(fns: list, budget: float, minimum: int, rounds: int) -> list[tuple[float, float]]:
    """Calls per CPU-second of this process (per core: one thread) and per wall second.

    The pipelines take turns: ``rounds`` rounds of ``budget / rounds`` CPU-seconds each, so
    that a change of load on a shared machine hits all of them alike (their ratio is what the
    targets are about). The CPU-time rate is the per-core figure; the wall rate also counts
    time spent waiting for a core.
    """
    done = [0] * len(fns)
    cpu = [0.0] * len(fns)
    wall = [0.0] * len(fns)
    for r in range(rounds):
        for k, fn in enumerate(fns):
            goal = minimum * (r + 1) // rounds
            w0, c0 = time.perf_counter(), time.process_time()
            while done[k] < goal or time.process_time() - c0 < budget / rounds:
                fn(done[k])
                done[k] += 1
            cpu[k] += time.process_time() - c0
            wall[k] += time.perf_counter() - w0
    return [(n / c, n / w) for n, c, w in zip(done, cpu, wall, strict=True)]


def decode_rate(paths: list[Path]) -> float:
    """Frames decoded per CPU-second, single-threaded, no conversion."""
    import av

    count, start = 0, time.process_time()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for _ in container.decode(stream):
                count += 1
    return count / (time.process_time() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=300, help="frames per video (30 fps)")
    parser.add_argument("--gop", type=int, default=32, help="keyframe interval of the videos")
    parser.add_argument("--budget", type=float, default=4.0,
                        help="CPU-seconds per pipeline and measurement")
    parser.add_argument("--rounds", type=int, default=8,
                        help="turns the two pipelines take within each measurement")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames, args.budget, args.lengths = 2, 72, 0.2, [16]
        args.rounds = 2

    import torch

    from video3d.data import TrainTransform, VideoClipDataset, VideoEntry

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        paths = make_videos(root, args.videos, args.frames, args.gop)
        print(f"# wrote {len(paths)} videos 340x256, {args.frames} frames, keyint {args.gop} "
              f"in {time.perf_counter() - t0:.1f}s; torch threads 1, decoder threads 1")
        entries = [VideoEntry(str(p), 0, args.frames, 30.0) for p in paths]
        limit = decode_rate(paths)
        print(f"pure decode (no conversion): {limit:.0f} frames per CPU-second")
        print("rates per CPU-second of the single process (= per core); wall rates in brackets")
        print(f"{'sampling':<12}{'T':>4}{'video3d clips/s':>22}{'baseline clips/s':>22}"
              f"{'ratio':>7}{'video3d frames/s':>18}")
        minimum = 2 if args.quick else 5
        for length in args.lengths:
            for sampling in ("consecutive", "uniform"):
                data = VideoClipDataset(entries, sampling=sampling, clip_len=length,
                                        transform=TrainTransform(), seed=0)
                rng = np.random.default_rng(0)

                def base(i: int, d: VideoClipDataset = data,
                         rng: np.random.Generator = rng) -> None:
                    entry = d.entries[i % len(d)]
                    idx = d.sampler.train_clip(args.frames, rng)
                    baseline_clip(entry.path, args.frames, idx, rng)

                def ours_clip(i: int, d: VideoClipDataset = data) -> None:
                    d.set_epoch(i // len(d))  # a fresh draw of clip and crop every call
                    d[i % len(d)]

                ours, theirs = _rates([ours_clip, base],
                                      args.budget, minimum, args.rounds)
                ours_s = f"{ours[0]:.1f} ({ours[1]:.1f})"
                theirs_s = f"{theirs[0]:.1f} ({theirs[1]:.1f})"
                print(f"{sampling:<12}{length:>4}{ours_s:>22}{theirs_s:>22}"
                      f"{ours[0] / theirs[0]:>6.2f}x{ours[0] * length:>18.0f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
