"""The ``video3d`` command: datasets, planning, retraining and evaluation of 3D ConvNets.

Commands::

    video3d data synth OUT                      # the synthetic motion-and-order dataset
    video3d data index --format ucf101 --videos ROOT --annotations DIR --out INDEX
    video3d data prepare INDEX --out PREPARED   # re-encode: short side 256, keyframe every 8
    video3d plan --preset NAME [--data INDEX] [--config FILE] [--storage URL] [--workers N]
                 [--out DIR]                    # plan, pictures, test accuracy, hand-tuned
    video3d train --plan DIR/plan.json          # retrain the plan's fixed schedule
    video3d evaluate CHECKPOINT                 # final protocol (10 clips x 3 crops)
    video3d presets                             # list the presets

Bad input (a missing dataset, an index whose classes disagree, an unknown preset or config key,
a clip length the model cannot take, more unreadable videos than ``max_bad_video_share``
allows) ends with one ``video3d: error: ...`` line and exit status 2 before any training. So
do the expected failures after it starts (a plan with no reachable final state, a storage
error, an unreadable file): the line says where the details were recorded. An interrupted
``video3d plan`` resumes when run again with the same arguments: finished transitions are not
re-run.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


class UsageError(Exception):
    """Bad input found before any training: printed as one line, exit status 2."""


def _check_device(device: str | None) -> None:
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") \
            from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device!r}: CUDA is not available here (use --device cpu)")


def _fail(message: str) -> int:
    print(f"video3d: error: {' '.join(message.split())}", file=sys.stderr)  # one line
    return 2


# ------------------------------------------------------------------------------ config
def _config(args: argparse.Namespace, base: Any = None) -> Any:
    from video3d.trainer import ConfigError, get_preset, load_config_file

    try:
        preset = getattr(args, "preset", None)
        cfg = get_preset(str(preset)) if preset or base is None else base
        if getattr(args, "config", None):
            cfg = load_config_file(args.config, cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return cfg


def _data(args: argparse.Namespace, cfg: Any, stream: Any) -> Any:
    from video3d.trainer import DataError, check_model, load_data
    from video3d.trainer._config import ConfigError

    try:
        data = load_data(getattr(args, "data", None), cfg, stream=stream)
        check_model(cfg, data.num_classes)
    except (DataError, ConfigError) as exc:
        raise UsageError(str(exc)) from None
    return data


# ------------------------------------------------------------------------------ data
def _cmd_synth(args: argparse.Namespace) -> int:
    from video3d.data import make_synthetic_dataset

    try:
        info = make_synthetic_dataset(
            args.out, num_classes=args.classes, videos_per_class=args.videos_per_class,
            frames=args.frames, size=args.size, seed=args.seed, workers=args.workers,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {info.num_train} training and {info.num_test} test videos of "
          f"{len(info.classes)} classes to {info.root}")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from video3d.data import (
        IndexFormatError,
        build_index,
        read_dataset_layout,
        write_video_list,
    )

    videos, ann, out = Path(args.videos), Path(args.annotations), Path(args.out)
    if not videos.is_dir():
        raise UsageError(f"video folder not found: {videos}")
    if not ann.exists():
        raise UsageError(f"annotations not found: {ann}")
    try:
        train, test = read_dataset_layout(args.format, videos, ann, split=args.split)
    except (IndexFormatError, FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "probe_cache.json"
    (out / "classes.txt").write_text("".join(c + "\n" for c in train.classes), encoding="utf-8")
    for name, index in (("train", train), ("test", test)):
        if index is None:
            continue
        report = build_index(index, cache, workers=args.workers)
        print(f"{name}: {report.format()}")
        write_video_list(out / f"{name}.txt", report.entries, root=out)
    print(f"index written to {out} ({len(train.classes)} classes)")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from video3d.data import read_video_list
    from video3d.data.prepare import decode_cost, prepare_dataset

    index, out = Path(args.index), Path(args.out)
    if not (index / "train.txt").is_file():
        raise UsageError(f"{index} is not an index directory: it has no train.txt (build one "
                         "with `video3d data index`)")
    if not 64 <= args.short_side <= 4096 or args.keyint < 1 or args.workers < 1:
        raise UsageError(f"need 64 <= --short-side <= 4096, --keyint >= 1 and --workers >= 1, "
                         f"got {args.short_side}, {args.keyint} and {args.workers}")
    try:
        report = prepare_dataset(index, out, short_side=args.short_side, keyint=args.keyint,
                                 crf=args.crf, preset=args.preset, fastdecode=args.fastdecode,
                                 workers=args.workers)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(report.format())
    print(f"index written to {out}")
    if args.measure > 0:
        before = read_video_list(index / "train.txt").entries
        after = report.lists["train.txt"]
        for sampling in ("consecutive", "uniform"):
            cost = [decode_cost(e, sampling=sampling, clips=args.measure)
                    for e in (before, after)]
            print(f"decode cost, {sampling} 16-frame training clips: {cost[0]:.1f} -> "
                  f"{cost[1]:.1f} CPU ms per clip ({cost[0] / cost[1]:.2f}x)")
    return 0


# ------------------------------------------------------------------------------ plan
def _fmt_acc(result: dict[str, float] | None) -> str:
    if result is None:
        return "n/a"
    return f"top-1 {100 * result['top1']:.1f}%  top-5 {100 * result['top5']:.1f}%"


def _cmd_plan(args: argparse.Namespace) -> int:
    from video3d.trainer import close_distributed, init_distributed

    ctx = init_distributed()
    code = _plan_job(args, ctx)
    close_distributed()  # on success only: a barrier after one rank failed could hang
    return code


def _plan_job(args: argparse.Namespace, ctx: Any) -> int:
    from stageplan import PlanningError, StorageError, StorageMismatchError
    from video3d.trainer import run_planning

    started = time.monotonic()
    stream = None if args.quiet or not ctx.is_main else sys.stderr
    cfg = _config(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if ctx.enabled and args.workers != 1:
        raise UsageError("with torchrun, use --workers 1 (the ranks share each transition)")
    if args.checkpoints is not None:
        from stageplan import resolve_storage

        if args.storage is None:
            raise UsageError("--checkpoints needs --storage with a database or journal URL "
                             "(the default directory storage keeps checkpoints inside it)")
        try:
            resolve_storage(args.storage, checkpoints=args.checkpoints)
        except ValueError as exc:
            raise UsageError(f"--checkpoints: {exc}") from None
    # rank 0 alone names each unreadable video (every rank probes the same files)
    data = _data(args, cfg, sys.stderr if ctx.is_main else io.StringIO())
    out = Path(args.out or f"runs/{cfg.name}")
    if ctx.is_main:
        print(f"planning preset {cfg.name!r}: model {cfg.model} (width {cfg.width}), clips "
              f"{list(cfg.clip_lengths)}, lrs {list(cfg.learning_rates)}, samplings "
              f"{list(cfg.samplings)}, knee delay {cfg.knee_delay}, max {cfg.max_epochs} "
              f"epochs; {len(data.train)} train / {len(data.val)} val / {len(data.test)} test "
              f"videos; output {out}", file=sys.stderr)
    try:
        job = run_planning(
            cfg, data, out=out, storage=args.storage, checkpoints=args.checkpoints,
            workers=args.workers, stream=stream,
            dist=ctx, device=args.device, baseline=not args.no_baseline,
            run_info={"preset": cfg.name, "config_file": args.config},
        )
    except StorageMismatchError as exc:
        raise UsageError(f"{exc} (use another --out or --storage)") from None
    except StorageError as exc:
        raise UsageError(str(exc)) from None
    except PlanningError as exc:
        raise UsageError(
            f"{exc}. Every transition's record, a failed one's with its traceback, is in the "
            f"plan storage {args.storage or out / 'storage'}"
        ) from None
    if job is None:
        return 0
    print(job.plan.summary())
    reasons: dict[str, int] = {}
    for rec in job.plan.transitions:
        reason = (rec.decision or {}).get("reason", rec.status)
        reasons[reason] = reasons.get(reason, 0) + 1
    print("transition stop reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    protocol = f"{cfg.test_clips} clips x {cfg.test_crops} crops"
    if job.planned is not None:
        chance = 100.0 / data.num_classes
        print(f"test accuracy ({protocol}, {int(job.planned['videos'])} videos, chance "
              f"{chance:.1f}%):")
        print(f"  planned    ({job.plan.total_epochs} epochs): {_fmt_acc(job.planned)}")
        if job.baseline is not None and job.baseline_plan is not None:
            table = job.baseline_plan.schedule_table()
            print(f"  hand-tuned ({job.baseline_plan.total_epochs} epochs; clips "
                  f"{table['clip_length']}, lrs {table['learning_rate']}, epochs "
                  f"{table['epochs']}): {_fmt_acc(job.baseline)}")
    else:
        print("no test list: test accuracy skipped")
    bad = job.bad_videos or {}
    if bad.get("count"):
        print(f"unreadable videos left out or replaced: {bad['count']} "
              f"({100 * bad['share']:.1f}% of the listed videos; each named in results.json)")
    print(f"plan: {out / 'plan.json'}" + (f"; pictures: {', '.join(job.pictures)}"
                                           if job.pictures else ""))
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


# ------------------------------------------------------------------------------ train
def _run_info(plan_path: Path) -> dict[str, Any]:
    info = plan_path.with_name("run.json")
    if not info.is_file():
        return {}
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _cmd_train(args: argparse.Namespace) -> int:
    from stageplan import Plan, PlanFormatError
    from video3d.trainer import ConfigError, TrainConfig, VideoTrainer

    plan_path = Path(args.plan)
    try:
        plan = Plan.load(plan_path)
    except PlanFormatError as exc:
        raise UsageError(str(exc)) from None
    info = _run_info(plan_path)
    if args.preset:
        cfg = _config(args)
    elif "config" in info:
        try:
            cfg = _config(args, TrainConfig.from_dict(info["config"]))
        except ConfigError as exc:
            raise UsageError(f"{plan_path.with_name('run.json')}: {exc}") from None
    else:
        raise UsageError(f"no run.json next to {plan_path}: give --preset (and --data)")
    if args.data is None and info.get("data"):
        args.data = info["data"]
    data = _data(args, cfg, sys.stderr)
    if plan.total_epochs == 0:
        raise UsageError(f"{plan_path}: the plan has no epochs to train")
    trainer = VideoTrainer(cfg, data, stream=None if args.quiet else sys.stderr,
                           device=args.device)
    started = time.monotonic()
    model = trainer.train_schedule(plan, name="replay")
    out = Path(args.out) if args.out else plan_path.with_name("retrained.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    last = plan.stages[-1].params
    trainer.save_checkpoint(model, str(out), last)
    print(f"retrained {plan.total_epochs} epochs in {time.monotonic() - started:.0f} s; "
          f"weights: {out}")
    if data.test:
        sampling, clip, _ = trainer.state_settings(last)
        print(f"test accuracy: {_fmt_acc(trainer.final_evaluate(model, sampling, clip))}")
    return 0


# ------------------------------------------------------------------------------ evaluate
def _cmd_evaluate(args: argparse.Namespace) -> int:
    from video3d.trainer import ConfigError, TrainConfig, VideoTrainer, load_checkpoint_file

    try:
        payload = load_checkpoint_file(args.checkpoint)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    except pickle.UnpicklingError as exc:  # not a torch file, or not only weights
        reason = str(exc).split(". ")[0]
        raise UsageError(f"{args.checkpoint} is not a video3d trainer checkpoint: torch.load "
                         f"cannot read it ({reason})") from None
    try:
        cfg = TrainConfig.from_dict(payload.get("config", {}))
    except ConfigError as exc:
        raise UsageError(f"{args.checkpoint}: {exc}") from None
    cfg = _config(args, cfg)
    if args.data is None and payload.get("data"):
        args.data = payload["data"]
    data = _data(args, cfg, sys.stderr)
    params = dict(payload.get("params", {}))
    if args.sampling:
        params["sampling"] = args.sampling
    if args.clip_length:
        params["clip_length"] = args.clip_length
    params.setdefault("learning_rate", 0.0)
    trainer = VideoTrainer(cfg, data, stream=None if args.quiet else sys.stderr,
                           device=args.device)
    sampling, clip, _ = trainer.state_settings(params)
    model = trainer.new_model()
    try:
        trainer.load_checkpoint(model, args.checkpoint)
    except RuntimeError as exc:
        raise UsageError(f"{args.checkpoint} does not fit preset {cfg.name!r}: "
                         f"{str(exc).splitlines()[0]}") from None
    entries = data.val if args.split == "val" else data.test
    if not entries:
        raise UsageError(f"the dataset has no {args.split} videos")
    result = trainer.final_evaluate(model, sampling, clip, entries)
    print(f"{args.checkpoint}: {args.split} accuracy ({cfg.test_clips} clips x "
          f"{cfg.test_crops} crops, {int(result['videos'])} videos, {sampling} clip {clip}): "
          f"{_fmt_acc(result)}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from video3d.trainer import PRESETS

    for name in sorted(PRESETS):
        c = PRESETS[name]
        print(f"{name:12s} {c.model} clips {list(c.clip_lengths)} lrs "
              f"{list(c.learning_rates)} dropout {c.dropout} flip {c.flip} frozen-BN "
              f"{list(c.frozen_bn_clip_lengths)} crop {c.crop_size}")
    return 0


# ------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    from video3d.data.indexes import DATASET_LAYOUTS  # light: numpy, no torch or av

    parser = argparse.ArgumentParser(
        prog="video3d", description="Plan, train and evaluate 3D ConvNets with stageplan."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="make or index datasets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the synthetic motion-and-order dataset")
    synth.add_argument("out")
    synth.add_argument("--classes", type=int, default=4)
    synth.add_argument("--videos-per-class", type=int, default=48)
    synth.add_argument("--frames", type=int, default=64)
    synth.add_argument("--size", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=1)
    synth.set_defaults(func=_cmd_synth)
    index = dsub.add_parser("index", help="build an index directory from a dataset's layout")
    index.add_argument("--format", required=True, choices=DATASET_LAYOUTS,
                       help="the dataset's layout on disk (see video3d.data.read_dataset_layout)")
    index.add_argument("--videos", required=True, help="folder of the video files")
    index.add_argument("--annotations", required=True,
                       help="annotation folder (Kinetics CSVs, UCF101 lists, HMDB51 splits, "
                       "SS-V2 jsons)")
    index.add_argument("--split", type=int, default=1, help="UCF101/HMDB51 split (1-3)")
    index.add_argument("--out", required=True, help="index directory to write")
    index.add_argument("--workers", type=int, default=1, help="parallel probes")
    index.set_defaults(func=_cmd_index)
    prep = dsub.add_parser("prepare", help="re-encode an index's videos for fast training "
                           "reads (smaller, short keyframe interval) and write a new index")
    prep.add_argument("index", help="index directory (train.txt, test.txt, classes.txt)")
    prep.add_argument("--out", required=True, help="new index directory (videos/ inside)")
    prep.add_argument("--short-side", type=int, default=256,
                      help="largest short side in pixels (256-320 is usual; never enlarges)")
    prep.add_argument("--keyint", type=int, default=8, help="frames between keyframes")
    prep.add_argument("--crf", type=int, default=23, help="x264 quality (lower: better)")
    prep.add_argument("--preset", default="veryfast", help="x264 speed preset")
    prep.add_argument("--fastdecode", action="store_true",
                      help="x264 tune=fastdecode (faster decoding, larger files)")
    prep.add_argument("--workers", type=int, default=1, help="parallel encodes")
    prep.add_argument("--measure", type=int, default=0, metavar="CLIPS",
                      help="time this many training clips before and after (0: skip)")
    prep.set_defaults(func=_cmd_prepare)

    def common(p: argparse.ArgumentParser, preset_required: bool) -> None:
        p.add_argument("--preset", required=preset_required, help="preset name (video3d presets)")
        p.add_argument("--data", help="index directory or train list (default: the preset's "
                       "generated dataset, for synthetic presets)")
        p.add_argument("--config", help="JSON or TOML file overriding preset values")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    plan = sub.add_parser("plan", help="plan a training schedule")
    common(plan, True)
    plan.add_argument("--storage", help="plan storage: a directory or a URL (sqlite:///..., "
                      "postgresql://...); default OUT/storage")
    plan.add_argument("--checkpoints", help="with a database or journal --storage: where "
                      "checkpoints go, a place every machine reaches (a shared directory, "
                      "s3://bucket, gs://bucket); required for a database server")
    plan.add_argument("--workers", type=int, default=1, help="parallel transitions")
    plan.add_argument("--out", help="output directory (default runs/PRESET)")
    plan.add_argument("--no-baseline", action="store_true",
                      help="skip the hand-tuned comparison")
    plan.set_defaults(func=_cmd_plan)

    train = sub.add_parser("train", help="retrain a plan's fixed schedule from scratch")
    common(train, False)
    train.add_argument("--plan", required=True, help="plan.json")
    train.add_argument("--out", help="weights file (default: retrained.pt next to the plan)")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="final-protocol accuracy of a checkpoint")
    common(ev, False)
    ev.add_argument("checkpoint")
    ev.add_argument("--split", choices=["test", "val"], default="test")
    ev.add_argument("--sampling", choices=["consecutive", "uniform"])
    ev.add_argument("--clip-length", type=int)
    ev.set_defaults(func=_cmd_evaluate)

    presets = sub.add_parser("presets", help="list the presets")
    presets.set_defaults(func=_cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``video3d`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _check_device(getattr(args, "device", None))
        return int(args.func(args))
    except UsageError as exc:
        return _fail(str(exc))
    except RuntimeError as exc:  # expected: every video drawn for a training item unreadable
        datasets = sys.modules.get("video3d.data.datasets")  # loaded if a dataset was built
        if datasets is not None and isinstance(exc, datasets.UnreadableVideosError):
            return _fail(str(exc))
        # the same, or an unreadable evaluation video, met in a DataLoader worker process
        text = str(exc)
        if text.startswith(("Caught VideoDecodeError ", "Caught UnreadableVideosError ")):
            return _fail(f"{text.strip().splitlines()[-1]} (in a DataLoader worker)")
        raise
    except OSError as exc:  # an unreadable video met after the probe, an unwritable output
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("\nvideo3d: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
