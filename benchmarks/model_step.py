"""Training-step speed of DG-P3D (and torchvision's r2plus1d_18 / r3d_18 where importable).

One step = forward, loss, backward and an SGD update (CUDA: mean over the timed steps; CPU:
median step, since the CPU is shared). Reports clips/s, the training FLOPs per clip
(forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device)
and model FLOPs utilisation (MFU) against a peak: on CUDA the H200's dense bf16 spec, 989 TFLOP/s
(``--peak-tflops`` to change it); on CPU no peak is assumed unless given.

Usage::

    python benchmarks/model_step.py --device cuda            # DG-P3D-50, 16x224^2, bf16, CL3d
    python benchmarks/model_step.py --device cpu             # small DG-P3D-10 (width 0.25)
    python benchmarks/model_step.py --quick                  # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn

H200_BF16_DENSE_TFLOPS = 989.0


@dataclass
class Result:
    model: str
    device: str
    batch: int
    clip: str
    step_ms: float
    timing: str
    clips_per_s: float
    train_gflop_per_clip: float
    achieved_tflops: float
    mfu: float | None
    peak_mem_gib: float | None


def _loss(model: nn.Module, out: object, y: torch.Tensor) -> torch.Tensor:
    loss_fn = getattr(model, "loss", None)
    if callable(loss_fn):
        return loss_fn(out, y)  # type: ignore[no-any-return]
    return nn.functional.cross_entropy(out, y)  # type: ignore[arg-type]


def train_flops_per_clip(build: Callable[[], nn.Module], clip: tuple[int, int, int]) -> int:
    """Forward + backward FLOPs of one clip, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build().train()
        x = torch.empty(1, 3, *clip)
        y = torch.zeros(1, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        _loss(model, model(x), y).backward()
    return int(counter.get_total_flops())


def time_steps(
    build: Callable[[], nn.Module], *, name: str, device: torch.device, batch: int,
    clip: tuple[int, int, int], steps: int, warmup: int, amp: bool, channels_last: bool,
    peak_tflops: float | None, num_classes: int,
) -> Result:
    torch.manual_seed(0)
    model = build().to(device).train()
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, *clip, device=device).to(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch,), device=device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    )
    cuda = device.type == "cuda"

    def step() -> None:
        with autocast:
            loss = _loss(model, model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    if cuda:  # one host sync at the end; mean over the steps
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
        step_s = (time.perf_counter() - t0) / steps
    else:  # a shared CPU is noisy: median of per-step times
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        step_s = statistics.median(times)
    flops = train_flops_per_clip(build, clip)
    clips_per_s = batch / step_s
    achieved = flops * clips_per_s / 1e12
    return Result(
        model=name, device=str(device), batch=batch, clip="x".join(map(str, clip)),
        step_ms=1e3 * step_s, timing="mean" if cuda else "median", clips_per_s=clips_per_s,
        train_gflop_per_clip=flops / 1e9, achieved_tflops=achieved,
        mfu=None if peak_tflops is None else achieved / peak_tflops,
        peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
    )


def _torchvision_models(num_classes: int) -> dict[str, Callable[[], nn.Module]] | str:
    try:
        from torchvision.models import video
    except Exception as exc:  # ImportError, or RuntimeError from a CPU/CUDA op mismatch
        return f"torchvision not importable ({type(exc).__name__}: {str(exc)[:80]})"
    return {
        "torchvision r2plus1d_18": lambda: video.r2plus1d_18(num_classes=num_classes),
        "torchvision r3d_18": lambda: video.r3d_18(num_classes=num_classes),
    }


def _format(r: Result) -> str:
    mfu = "n/a" if r.mfu is None else f"{100 * r.mfu:.1f}%"
    mem = "" if r.peak_mem_gib is None else f"  peak mem {r.peak_mem_gib:.1f} GiB"
    return (
        f"{r.model:<26} {r.device:<6} batch {r.batch:<3} clip {r.clip:<10} "
        f"{r.step_ms:9.1f} ms/step ({r.timing}) {r.clips_per_s:9.2f} clips/s  "
        f"{r.train_gflop_per_clip:8.3g} GFLOP/clip (fwd+bwd)  {r.achieved_tflops:8.3g} TFLOP/s  "
        f"MFU {mfu}{mem}"
    )


def main(argv: list[str] | None = None) -> list[Result]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda if available")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny input, 1 timed step")
    p.add_argument("--model", default=None, help="default: dg_p3d_resnet50 (cuda) / "
                   "dg_p3d_resnet10 width 0.25 (cpu)")
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for cuda)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last_3d (default: on for cuda)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help=f"MFU peak (default cuda: H200 dense bf16 {H200_BF16_DENSE_TFLOPS})")
    p.add_argument("--torchvision", action=argparse.BooleanOptionalAction, default=None,
                   help="also time torchvision r2plus1d_18 / r3d_18 (default: on for cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    from video3d.models import build_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = args.model or ("dg_p3d_resnet50" if cuda else "dg_p3d_resnet10")
    width = args.width if args.width is not None else (1.0 if cuda else 0.25)
    size = args.size or (224 if cuda else 64)
    batch = args.batch or (16 if cuda else 8)
    steps = args.steps or (20 if cuda else 10)
    warmup = args.warmup if args.warmup is not None else 5
    if args.quick:
        size, batch, steps, warmup = (args.size or 32), (args.batch or 2), 1, 1
        if not cuda:
            width = args.width if args.width is not None else 0.125
    amp = cuda if args.amp is None else args.amp
    channels_last = cuda if args.channels_last is None else args.channels_last
    peak = args.peak_tflops if args.peak_tflops is not None else (
        H200_BF16_DENSE_TFLOPS if cuda else None
    )
    want_tv = cuda if args.torchvision is None else args.torchvision
    clip = (args.frames, size, size)
    num_classes = 400
    header = (
        f"# device {dev} ({torch.cuda.get_device_name(dev) if cuda else 'cpu'}), torch "
        f"{torch.__version__}, threads {torch.get_num_threads()}, amp bf16 {amp}, "
        f"channels_last_3d {channels_last}, MFU peak "
        f"{'none' if peak is None else f'{peak:g} TFLOP/s'}"
    )
    print(header, flush=True)
    builds: dict[str, Callable[[], nn.Module]] = {
        f"{name} (width {width:g})": lambda: build_model(name, num_classes=num_classes,
                                                         width=width, dropout=0.5)
    }
    if want_tv:
        tv = _torchvision_models(num_classes)
        if isinstance(tv, str):
            print(f"# skipped torchvision r2plus1d_18 / r3d_18: {tv}", flush=True)
        else:
            builds.update(tv)
    else:
        print("# skipped torchvision r2plus1d_18 / r3d_18: off (pass --torchvision)", flush=True)
    results = []
    for label, build in builds.items():
        r = time_steps(build, name=label, device=dev, batch=batch, clip=clip, steps=steps,
                       warmup=warmup, amp=amp, channels_last=channels_last, peak_tflops=peak,
                       num_classes=num_classes)
        print(_format(r), flush=True)
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": [asdict(r) for r in results]}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
