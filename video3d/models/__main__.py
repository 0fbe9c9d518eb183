"""Command line: ``python -m video3d.models {list,summary,table,inflate}``.

Examples::

    python -m video3d.models list
    python -m video3d.models summary dg_p3d_resnet50 --frames 16 --size 224
    python -m video3d.models table --frames 16,32,64,128 --size 224
    python -m video3d.models inflate dg_p3d_resnet50 --from resnet50.pth --out dg_p3d50.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_TABLE_MODELS = (
    "dg_p3d_resnet50",
    "dg_p3d_resnet101",
    "g_p3d_resnet50",
    "p3d_resnet50",
    "i3d_resnet50",
    "r2plus1d_resnet50",
)


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _model_kwargs(args: argparse.Namespace) -> dict[str, object]:
    kwargs: dict[str, object] = {"num_classes": args.num_classes, "width": args.width}
    if args.stem_temporal_stride is not None:
        kwargs["stem_temporal_stride"] = args.stem_temporal_stride
    return kwargs


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--stem-temporal-stride", type=int, default=None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m video3d.models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list registered models")
    p_list.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'dg_p3d_*'")
    p_sum = sub.add_parser("summary", help="parameters and MACs per module (meta device)")
    p_sum.add_argument("name")
    p_sum.add_argument("--frames", type=int, default=16)
    p_sum.add_argument("--size", type=int, default=224)
    p_sum.add_argument("--batch", type=int, default=1)
    _add_model_options(p_sum)
    p_tab = sub.add_parser("table", help="markdown table of params and GMACs per clip length")
    p_tab.add_argument("--models", default=",".join(DEFAULT_TABLE_MODELS))
    p_tab.add_argument("--frames", type=_ints, default=[16, 32, 64, 128])
    p_tab.add_argument("--size", type=int, default=224)
    _add_model_options(p_tab)
    p_inf = sub.add_parser("inflate", help="inflate a 2D torchvision-style ResNet checkpoint")
    p_inf.add_argument("name")
    p_inf.add_argument("--from", dest="src", required=True, help="2D state dict file")
    p_inf.add_argument("--out", required=True, help="where to save the video state dict")
    _add_model_options(p_inf)
    return parser


def _summary(args: argparse.Namespace) -> str:
    from video3d.models import build_model, summarize

    kwargs = _model_kwargs(args)
    shape = (args.batch, 3, args.frames, args.size, args.size)
    with _meta():
        model = build_model(args.name, **kwargs)
    model.check_input_shape(shape)  # type: ignore[operator]
    return summarize(model, shape, name=args.name).format()


def _meta():  # type: ignore[no-untyped-def]
    import torch

    return torch.device("meta")


def _table(args: argparse.Namespace) -> str:
    from video3d.models import build_model, summarize

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    kwargs = _model_kwargs(args)
    head = "| model | params (M) | " + " | ".join(f"GMACs @{f}" for f in args.frames) + " |"
    lines = [head, "|" + "---|" * (2 + len(args.frames))]
    for name in names:
        with _meta():
            model = build_model(name, **kwargs)
        cells: list[str] = []
        params = 0
        for f in args.frames:
            s = summarize(model, (1, 3, f, args.size, args.size), name=name)
            params = s.params
            g = s.macs / 1e9
            cells.append(f"{g:.1f}" if g >= 10 else f"{g:.3g}")
        lines.append(f"| {name} | {params / 1e6:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _inflate(args: argparse.Namespace) -> str:
    import torch

    from video3d.models import build_model, inflate_resnet2d, load_resnet2d_state_dict

    model = build_model(args.name, **_model_kwargs(args))
    state = inflate_resnet2d(load_resnet2d_state_dict(args.src), model)  # type: ignore[arg-type]
    model.load_state_dict(state)
    torch.save(state, args.out)
    return f"wrote {len(state)} tensors for {args.name} to {args.out}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            from video3d.models import list_models

            text = "\n".join(list_models(args.pattern))
        elif args.command == "summary":
            text = _summary(args)
        elif args.command == "table":
            text = _table(args)
        else:
            text = _inflate(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
