"""The ``stageplan`` command line: inspect graphs and plans, run planning workers.

Sub-commands:
    ``stageplan graph``: build a paper graph or read one from JSON; validate and print it.
    ``stageplan show PLAN``: print a plan's stages and explored transitions.
    ``stageplan plan`` (alias ``worker``): plan with a transition function ``module:function``
    against a storage; start it on several machines with one shared storage to spread the work.

Expected failures (a bad graph file or function, a storage error, a plan with no reachable
final state, an unwritable output) end with one ``stageplan <command>: error: ...`` line and
exit status 2, naming where the details were recorded; Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stageplan._graph import GraphError, TransitionGraph
from stageplan._plan import Plan, PlanFormatError
from stageplan._planner import PlanningError, plan
from stageplan.knee import KneeRule
from stageplan.storage import StorageError

__all__ = ["main", "load_graph", "load_function"]


PLAN_COMMANDS = ("plan", "worker")


class CliError(Exception):
    """A user error reported as one line, exit status 2."""


def load_graph(path: str) -> TransitionGraph:
    """Read a graph JSON file (``TransitionGraph.to_dict()`` layout, or a ``paper`` spec).

    A paper spec is ``{"paper": {"clip_lengths": [...], "learning_rates": [...],
    "samplings": [...], "extended": true}}``.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read graph file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"graph file {path} is not JSON: {exc}") from exc
    try:
        if isinstance(data, dict) and "paper" in data:
            spec = data["paper"]
            if not isinstance(spec, dict):
                raise GraphError(f"'paper' must be an object, got {spec!r}")
            return TransitionGraph.paper(**spec)
        return TransitionGraph.from_dict(data)
    except TypeError as exc:
        raise CliError(f"graph file {path}: {exc}") from exc
    except GraphError as exc:
        raise CliError(f"graph file {path}: {exc}") from exc


def load_function(spec: str) -> Any:
    """Import ``package.module:attribute`` (a callable taking a Trial)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--fn must look like 'package.module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--fn {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CliError(f"--fn {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:  # a class whose constructor needs arguments
            raise CliError(f"--fn {spec!r}: cannot create {attr} without arguments: {exc}") \
                from exc
    if not callable(obj):
        raise CliError(f"--fn {spec!r} is not callable")
    return obj


def _print_graph(graph: TransitionGraph, as_json: bool) -> None:
    if as_json:
        print(json.dumps(graph.to_dict(), indent=1))
        return
    print(repr(graph))
    print(f"axes: {', '.join(graph.axes)}")
    print("states (topological order):")
    for s in graph.topological_order():
        mark = " [start]" if s == graph.start else (" [final]" if s in graph.finals else "")
        succ = ", ".join(t.name for t in graph.successors(s)) or "-"
        print(f"  {s.name}{mark}\n      -> {succ}")


def _cmd_graph(args: argparse.Namespace) -> int:
    if args.file:
        graph = load_graph(args.file)
    else:
        if not args.clip_lengths or not args.learning_rates:
            raise CliError("give a graph JSON file, or --clip-lengths and --learning-rates")
        try:
            graph = TransitionGraph.paper(
                clip_lengths=args.clip_lengths,
                learning_rates=args.learning_rates,
                samplings=tuple(args.samplings),
                extended=not args.basic,
            )
        except GraphError as exc:
            raise CliError(str(exc)) from exc
    _print_graph(graph, args.json)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        p = Plan.load(args.plan)
    except PlanFormatError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps(p.schedule_table(), indent=1))
    else:
        print(p.summary())
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    try:  # first: a bad option is reported before the function is imported
        rule = _rule_of(args)
    except ValueError as exc:
        raise CliError(f"knee rule (--rule {args.rule}): {exc}") from exc
    graph = load_graph(args.graph)
    fn = load_function(args.fn)
    try:
        result = plan(
            graph,
            fn,
            storage=args.storage,
            checkpoints=args.checkpoints,
            rule=rule,
            workers=args.workers,
            mode=args.mode,
            stale_after=args.stale_after,
            progress=not args.quiet,
        )
    except PlanningError as exc:
        raise CliError(
            f"{exc}. Every transition's record, a failed one's with its traceback, is in the "
            f"storage {args.storage}"
        ) from exc
    except (StorageError, ValueError) as exc:  # ValueError: plan()'s checks of the options
        raise CliError(str(exc)) from exc
    print(result.summary())
    if args.out:
        result.save(args.out)
        print(f"plan written to {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stageplan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("graph", help="build or read a transition graph, validate and print it")
    g.add_argument("file", nargs="?", help="graph JSON file (omit to build a paper graph)")
    g.add_argument("--clip-lengths", type=int, nargs="+", help="e.g. 16 32 64")
    g.add_argument("--learning-rates", type=float, nargs="+", help="e.g. 0.01 0.001 0.0001")
    g.add_argument("--samplings", nargs="+", default=["consecutive", "uniform"])
    g.add_argument("--basic", action="store_true", help="the basic graph (default: extended)")
    g.add_argument("--json", action="store_true", help="print the graph as JSON")
    g.set_defaults(func=_cmd_graph)

    s = sub.add_parser("show", help="print a plan's stages and explored transitions")
    s.add_argument("plan", help="plan JSON file")
    s.add_argument("--json", action="store_true", help="print the schedule as JSON columns")
    s.set_defaults(func=_cmd_show)

    for name in PLAN_COMMANDS:
        p = sub.add_parser(
            name,
            help="plan (or join a plan as a worker) with a transition function",
            description="Every process started with the same --storage shares the work.",
        )
        p.add_argument("--graph", required=True, help="graph JSON file")
        p.add_argument("--fn", required=True, help="transition function 'module:function'")
        p.add_argument("--storage", required=True, help="directory or storage URL")
        p.add_argument(
            "--checkpoints",
            help="with a database or journal --storage: where checkpoints go, a place every "
            "worker reaches (shared directory, s3://bucket, gs://bucket); required for a "
            "database server",
        )
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--mode", choices=["max", "min"], default="max")
        _add_rule_options(p)
        p.add_argument("--stale-after", type=float, default=600.0)
        p.add_argument("--out", help="write the plan JSON here")
        p.add_argument("--quiet", action="store_true")
        p.set_defaults(func=_cmd_plan)
    return parser


# The knee rule's options as ``stageplan plan`` flags: (KneeRule keyword, type, choices, help).
# A flag left out leaves KneeRule's own default (shown in --help); --rule picks the method.
_RULE_OPTIONS: tuple[tuple[str, Callable[[str], Any], tuple[str, ...] | None, str], ...] = (
    ("family", str, None, "curve family: exp, power, multi_power, multi_exp"),
    ("delay", int, None, "epochs before the first fit (the paper's T)"),
    ("horizon", int, None, "epochs [0, horizon) the peak is sought over"),
    ("min_epochs", int, None, "never stop on the fit before this epoch"),
    ("max_epochs", int, None, "always stop at this epoch; the evidence rule's budget"),
    ("risk", float, None, "evidence: stop once the chance of a gain is below this"),
    ("tolerance", float, None, "evidence: a gain counts above this many noise SDs"),
    ("resolution", float, None, "evidence: the metric's smallest step (0: estimated)"),
    ("ceiling", float, None, "evidence: the metric's best value (stop on reaching it)"),
    ("schedule", str, ("constant", "cosine"),
     "evidence: LR schedule within --max-epochs (cosine needs --max-epochs)"),
    ("keep", str, ("best", "knee", "auto"), "checkpoint a stop keeps"),
    ("patience", int, None, "guard: no stop while the best is within this many epochs"),
    ("min_delta", float, None, "guard, with --patience: the smallest gain that counts"),
    ("smooth", int, None, "guard, with --patience: trailing-mean window of the values"),
    ("max_noise", float, None, "guard: no stop while the recent noise exceeds this"),
)


def _add_rule_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "knee rule", "the options of stageplan.knee.KneeRule (unset: the rule's default)"
    )
    group.add_argument(
        "--rule",
        choices=["evidence", "paper"],
        default="evidence",
        help="knee rule: 'evidence' (default: stop once a gain is unlikely) or 'paper' "
        "(KneeRule.paper: the authors' t >= t* + delay)",
    )
    defaults = inspect.signature(KneeRule).parameters
    for name, kind, choices, text in _RULE_OPTIONS:
        default = defaults[name].default
        if name == "keep":
            default = f"{KneeRule().keep}; with --rule paper, {KneeRule.paper().keep}"
        if default is not None:
            text += f" [default {default}]"
        group.add_argument(
            "--" + name.replace("_", "-"), type=kind, choices=choices, default=None, help=text
        )


def _rule_of(args: argparse.Namespace) -> KneeRule:
    """The knee rule of ``stageplan plan``'s options (validated by :class:`KneeRule`).

    ``--rule paper`` gives ``KneeRule.paper(...)`` with the same options.

    Raises:
        ValueError: An option KneeRule refuses (its message names the option).
    """
    options = {
        name: getattr(args, name)
        for name, *_ in _RULE_OPTIONS
        if getattr(args, name) is not None
    }
    if args.rule == "paper":
        return KneeRule.paper(**options)
    return KneeRule(**options)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (CliError, OSError) as exc:  # OSError: an unreadable or unwritable file
        message = " ".join(str(exc).split())  # one line
        print(f"stageplan {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = "; run the same command again to resume" if args.command in PLAN_COMMANDS else ""
        print(f"\nstageplan {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
