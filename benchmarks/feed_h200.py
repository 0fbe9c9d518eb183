"""Can the video pipeline keep an H200 busy training DG-P3D-50 from the 16 cores that machine has?

For every state of the ``kinetics400`` preset (16/32/128 frames x consecutive/uniform) this
prints what the pipeline delivers per core, what the model consumes, and the cores needed
(``consumed / per-core rate``), and writes ``benchmarks/results/feed_h200.json`` as
``{"rows": [{"sampling", "clip_length", "clips_per_s_per_core", "consumed_clips_per_s",
"cores_needed", ...}]}``.

Delivered (per core): training clips (224x224, short side drawn from 256-340, random crop) per
CPU-second of ONE process with one torch thread and single-threaded decoding, from 340x256 H.264
videos of 300 frames (10 s at 30 fps) with a keyframe every 32 frames (the videos of
``video_loader.py``). All pipelines take turns within each state (8 rounds), so a change of
load on a shared machine hits them alike; compare the ratios against ``today``:

* ``today``: :class:`video3d.data.VideoClipDataset` as the trainer uses it (PyAV, a new reader
  per clip, crop before the colour conversion, flip and normalise on the CPU, float32 out);
* ``torchcodec``: the same with torchcodec's CPU decoder (crop and resize after decoding);
* ``reuse``: the same with a :class:`video3d.data.ReaderPool` holding every file open and the
  keyframe index cached: every read finds its file open. That is the best case; in training on
  Kinetics (240k files, random order) a worker almost never meets a file it has open, so this
  lever is left out of ``feed``;
* ``uint8``: the loader stops at the ``uint8`` crop (:class:`video3d.data.device_transforms.
  TrainCrop`); flips and normalisation run on the GPU (:func:`normalize_clips`, not counted);
* ``prepared``: ``today`` on the videos after ``video3d data prepare`` (short side 256, keyframe
  every 8 frames);
* ``prepared_fd``: the same with x264 ``tune=fastdecode`` (no CABAC, no deblocking);
* ``feed``: ``prepared_fd`` + ``uint8``: the CPU pipeline this issue proposes.

Consumed: computed, ``0.35 * 989e12 / (3 * 2 * MACs)`` with DG-P3D-50's MACs at ``T x 224^2``
counted by :func:`video3d.models.summarize` (35 % of the H200's dense bf16 peak), labelled
``computed``. With ``--device cuda`` it is also measured (training steps, bf16, channels-last),
and two more deliveries are measured on that machine: a DataLoader with ``--workers`` worker
processes running ``feed`` (wall clips/s), and torchcodec decoding on the GPU (NVDEC) in the
main process.

Usage::

    python benchmarks/feed_h200.py                 # CPU: ~10 minutes on 2 shared cores
    python benchmarks/feed_h200.py --quick         # smoke run (seconds)
    python benchmarks/feed_h200.py --device cuda --workers 16   # on the H200 machine
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from video_loader import _rates, make_videos  # noqa: E402

H200_BF16_TFLOPS = 989.0
TARGET_MFU = 0.35
H200_CORES = 16
RESULTS = Path(__file__).resolve().parent / "results" / "feed_h200.json"


def model_macs(clip_length: int, size: int = 224) -> int:
    """DG-P3D-50's multiply-accumulates for one ``clip_length x size^2`` clip (forward)."""
    from video3d.models import build_model, summarize

    summary = summarize(lambda: build_model("dg_p3d_resnet50", num_classes=400),
                        (1, 3, clip_length, size, size))
    return int(summary.macs)


def computed_consumption(macs: int) -> float:
    """Clips/s a training step consumes at 35 % of 989 bf16 TFLOP/s (3 x 2 x MACs a clip)."""
    return TARGET_MFU * H200_BF16_TFLOPS * 1e12 / (3 * 2 * macs)


def _prepare(paths: list[Path], root: Path, **settings: Any) -> list[Path]:
    from video3d.data.prepare import prepare_video

    out = []
    for path in paths:
        target = root / path.name
        if not target.exists():
            prepare_video(path, target, **settings)
        out.append(target)
    return out


def _datasets(sets: dict[str, list[Path]], frames: int, sampling: str, length: int,
              torchcodec_ok: bool) -> dict[str, Any]:
    """The pipelines of one state (see the module doc)."""
    from video3d.data import ReaderPool, TrainTransform, VideoClipDataset, VideoEntry
    from video3d.data.device_transforms import TrainCrop

    def data(name: str, transform: Any) -> VideoClipDataset:
        entries = [VideoEntry(str(p), 0, frames, 30.0) for p in sets[name]]
        return VideoClipDataset(entries, sampling=sampling, clip_len=length,  # type: ignore[arg-type]
                                transform=transform, seed=0)

    out = {"today": data("source", TrainTransform())}
    if torchcodec_ok:
        out["torchcodec"] = data("source", TrainTransform())
        out["torchcodec"].readers = ReaderPool(0, decoder="torchcodec")
    out["reuse"] = data("source", TrainTransform())
    out["reuse"].readers = ReaderPool(len(sets["source"]))
    out["uint8"] = data("source", TrainCrop())
    out["prepared"] = data("prepared", TrainTransform())
    out["prepared_fd"] = data("prepared_fd", TrainTransform())
    out["feed"] = data("prepared_fd", TrainCrop())
    return out


def _caller(dataset: Any) -> Any:
    def call(i: int) -> None:
        dataset.set_epoch(i // len(dataset))  # a fresh clip and crop every call
        dataset[i % len(dataset)]

    return call


# ------------------------------------------------------------------------------ CUDA only
def measured_consumption(length: int, batch: int, steps: int, *, device: str = "cuda",
                         width: float = 1.0, size: int = 224) -> dict[str, float]:
    """DG-P3D-50 training steps (CUDA: bf16 autocast, channels-last 3d): clips/s and MFU."""
    import model_step
    import torch

    from video3d.models import build_model

    cuda = device == "cuda"
    result = model_step.time_steps(
        lambda: build_model("dg_p3d_resnet50", num_classes=400, dropout=0.5, width=width),
        name="dg_p3d_resnet50", device=torch.device(device), batch=batch,
        clip=(length, size, size), steps=steps, warmup=3 if cuda else 1, amp=cuda,
        channels_last=cuda, peak_tflops=H200_BF16_TFLOPS, num_classes=400,
    )
    return {"clips_per_s": result.clips_per_s, "mfu": float(result.mfu or 0.0),
            "batch": batch}


def loader_rate(dataset: Any, workers: int, seconds: float, batch: int = 8) -> float:
    """Wall clips/s of a DataLoader with ``workers`` processes (after its first batch)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    size = max(len(dataset), 64 * workers * batch)
    items = Subset(dataset, [i % len(dataset) for i in range(size)])
    loader = DataLoader(items, batch_size=batch, shuffle=True, num_workers=workers,
                        pin_memory=torch.cuda.is_available(), drop_last=True)
    count, start = 0, None
    for clips, _ in loader:
        if start is None:
            start = time.perf_counter()  # workers are up
            continue
        count += len(clips)
        if time.perf_counter() - start > seconds:
            break
    return count / (time.perf_counter() - (start or time.perf_counter()))


def nvdec_rate(paths: list[Path], frames: int, sampling: str, length: int, seconds: float,
               reuse: bool, device: str = "cuda") -> dict[str, Any]:
    """Clips/s decoded on the GPU by torchcodec (NVDEC), cropped, resized, normalised there
    (``device="cpu"`` runs the same loop on torchcodec's CPU decoder)."""
    import torch

    from video3d.data import ClipSampler, TorchCodecReader
    from video3d.data.device_transforms import normalize_clips, random_flips
    from video3d.data.transforms import TrainTransform

    backends: list[tuple[str, Any]] = [("ffmpeg", contextlib.nullcontext)]
    if device == "cuda":  # FFmpeg's CUDA decoder, then torchcodec's own NVDEC backend
        with contextlib.suppress(ImportError):
            from torchcodec.decoders import set_cuda_backend

            backends.append(("beta", lambda: set_cuda_backend("beta")))
    sampler = ClipSampler(sampling, length)  # type: ignore[arg-type]
    plan = TrainTransform(flip=False)
    errors = []
    for name, backend in backends:
        try:
            open_readers: dict[str, Any] = {}
            rng = np.random.default_rng(0)
            count, start = 0, time.perf_counter()
            with backend():
                while time.perf_counter() - start < seconds or count < 4:
                    path = str(paths[count % len(paths)])
                    reader = open_readers.get(path) if reuse else None
                    if reader is None:
                        reader = TorchCodecReader(path, num_frames=frames, device=device)
                        if reuse:
                            open_readers[path] = reader
                    p = plan.plan(reader.height, reader.width, rng)
                    clip = reader.read(sampler.train_clip(frames, rng), crop=p.box, size=p.size)
                    normalize_clips(clip[None], flip=random_flips(1, device=device),
                                    dtype=torch.bfloat16)
                    count += 1
                if device == "cuda":
                    torch.cuda.synchronize()
            return {"backend": name, "clips_per_s": count / (time.perf_counter() - start)}
        except Exception as exc:  # noqa: BLE001 - report why, try the next backend
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    return {"error": "; ".join(errors)}


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300, help="frames per video (30 fps)")
    parser.add_argument("--gop", type=int, default=32, help="keyframe interval of the sources")
    parser.add_argument("--source-size", default="340x256",
                        help="WIDTHxHEIGHT of the sources (e.g. 640x360 for raw YouTube-like)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="CPU-seconds per pipeline and state")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 128])
    parser.add_argument("--short-side", type=int, default=256, help="data prepare setting")
    parser.add_argument("--keyint", type=int, default=8, help="data prepare setting")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--workers", type=int, default=H200_CORES,
                        help="DataLoader workers of the multi-core loader run")
    parser.add_argument("--loader", action="store_true",
                        help="also time `feed` in a DataLoader with --workers processes (always "
                        "with --device cuda)")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="wall seconds of each loader and NVDEC measurement (cuda only)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.videos, args.frames, args.budget, args.lengths, args.rounds = 2, 72, 0.2, [16], 2
    try:
        width, height = (int(v) for v in args.source_size.lower().split("x"))
    except ValueError:
        parser.error(f"--source-size must be WIDTHxHEIGHT, got {args.source_size!r}")

    import torch

    from video3d.data import torchcodec_status

    torch.set_num_threads(1)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    torchcodec_problem = torchcodec_status()
    header = {
        "machine_cores": os.cpu_count(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torchcodec": torchcodec_problem or _torchcodec_version(),
        "source": f"{args.videos} videos {width}x{height} h264, {args.frames} frames at 30 fps, "
                  f"keyframe every {args.gop}",
        "prepared": f"short side {args.short_side}, keyframe every {args.keyint}",
        "budget_cpu_s": args.budget, "rounds": args.rounds,
        "consumption": f"computed: {TARGET_MFU:.0%} of {H200_BF16_TFLOPS:g} bf16 TFLOP/s "
                       "over 3 x 2 x DG-P3D-50 MACs per clip",
    }
    print("# " + "; ".join(f"{k} {v}" for k, v in header.items()), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        for sub in ("source", "prepared", "prepared_fd"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        source = sorted((root / "source").glob("bench_*.mp4"))
        if len(source) != args.videos:
            source = make_videos(root / "source", args.videos, args.frames, args.gop,
                                 size=(width, height))
        sets = {
            "source": source,
            "prepared": _prepare(source, root / "prepared", short_side=args.short_side,
                                 keyint=args.keyint),
            "prepared_fd": _prepare(source, root / "prepared_fd", short_side=args.short_side,
                                    keyint=args.keyint, fastdecode=True),
        }
        sizes = {k: sum(p.stat().st_size for p in v) / len(v) / 2**20 for k, v in sets.items()}
        header["mib_per_video"] = {k: round(v, 3) for k, v in sizes.items()}
        print(f"# videos ready in {time.perf_counter() - t0:.0f}s; MiB per video: "
              + ", ".join(f"{k} {v:.2f}" for k, v in sizes.items()), flush=True)
        minimum = 2 if args.quick else 4
        for length in args.lengths:
            macs = model_macs(length)
            consumed = computed_consumption(macs)
            measured = (measured_consumption(length, max(1, 256 // length), 10)
                        if cuda else None)
            for sampling in ("consecutive", "uniform"):
                pipes = _datasets(sets, args.frames, sampling, length, torchcodec_problem is None)
                rates = _rates([_caller(d) for d in pipes.values()], args.budget, minimum,
                               args.rounds)
                per_core = {name: r[0] for name, r in zip(pipes, rates)}
                today, feed = per_core["today"], per_core["feed"]
                row: dict[str, Any] = {
                    "sampling": sampling, "clip_length": length,
                    "clips_per_s_per_core": round(feed, 2),
                    "consumed_clips_per_s": round(consumed, 1),
                    "consumed_source": "computed",
                    "cores_needed": round(consumed / feed, 1),
                    "meets_16_cores": consumed / feed <= H200_CORES,
                    "today_clips_per_s_per_core": round(today, 2),
                    "today_cores_needed": round(consumed / today, 1),
                    "model_gmacs": round(macs / 1e9, 2),
                    "levers": {name: {"clips_per_s_per_core": round(rate, 2),
                                      "vs_today": round(rate / today, 2),
                                      "wall_clips_per_s": round(r[1], 2)}
                               for (name, rate), r in zip(per_core.items(), rates)},
                }
                if cuda or args.loader:
                    row["loader_workers"] = args.workers
                    row["loader_clips_per_s"] = round(loader_rate(
                        pipes["feed"], args.workers, args.seconds), 1)
                if measured is not None:
                    row["measured_consumption"] = measured
                    row["cores_needed_measured"] = round(measured["clips_per_s"] / feed, 1)
                    for reuse in (False, True):
                        key = "nvdec_reuse" if reuse else "nvdec"
                        row[key] = nvdec_rate(sets["prepared"], args.frames, sampling, length,
                                              args.seconds, reuse)
                rows.append(row)
                _print_row(row)
    result = {"header": header, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"# wrote {args.json}")
    return result


def _torchcodec_version() -> str:
    import torchcodec

    return f"torchcodec {torchcodec.__version__}"


def _print_row(row: dict[str, Any]) -> None:
    levers = "  ".join(f"{k} {v['clips_per_s_per_core']:.1f} ({v['vs_today']:.2f}x)"
                       for k, v in row["levers"].items())
    print(f"{row['sampling']:<12}{row['clip_length']:>4}  per core: {levers}", flush=True)
    print(f"{'':<16}consumed {row['consumed_clips_per_s']:.0f} clips/s ({row['consumed_source']})"
          f"  cores needed: today {row['today_cores_needed']:.1f}, feed "
          f"{row['cores_needed']:.1f} ({'meets' if row['meets_16_cores'] else 'misses'} "
          f"{H200_CORES})", flush=True)
    for key in ("measured_consumption", "loader_clips_per_s", "nvdec", "nvdec_reuse"):
        if key in row:
            print(f"{'':<16}{key}: {row[key]}", flush=True)


if __name__ == "__main__":
    main()
