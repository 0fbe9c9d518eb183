"""Dynamic-programming planner over a transition graph (Qiu et al., 2021)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from stageplan._direction import Direction
from stageplan._dp import Frontier, PlanningError, build_plan, frontier, losing_checkpoints
from stageplan._graph import TransitionGraph
from stageplan._plan import Plan
from stageplan._records import edge_label
from stageplan._run import TransitionRun
from stageplan._trial import Trial
from stageplan.knee import KneeRule
from stageplan.storage._protocol import ClaimLostError, PlanStorage
from stageplan.storage._registry import resolve_storage

__all__ = [
    "DEFAULT_MAX_EPOCHS",
    "Frontier",
    "PlanningError",
    "TransitionFailedError",
    "build_plan",
    "frontier",
    "plan",
    "resolve_storage",
]

TransitionFn = Callable[[Trial], Any]
DEFAULT_MAX_EPOCHS = 300


class TransitionFailedError(PlanningError):
    """A transition function raised and ``on_error="raise"`` was asked for."""


@dataclass
class _Settings:
    graph: TransitionGraph
    fn: TransitionFn
    storage: PlanStorage
    rule: KneeRule
    direction: Direction
    start_checkpoint: str | None
    stale_after: float
    poll_interval: float
    on_error: str
    stream: TextIO | None


def _log(settings: _Settings, text: str) -> None:
    if settings.stream is not None:
        print(text, file=settings.stream, flush=True)


def _worker_loop(settings: _Settings, worker: str) -> None:
    storage = settings.storage
    pruned: set[str] = set()
    log = None if settings.stream is None else (lambda text: _log(settings, text))
    while True:
        records = storage.records()
        fr = frontier(settings.graph, records, mode=settings.direction)
        for ref in sorted(losing_checkpoints(settings.graph, records, fr) - pruned):
            storage.checkpoints.delete(ref)  # a settled state keeps its best checkpoint only
            pruned.add(ref)
        if fr.done:
            return
        ran = False
        for edge in fr.ready:
            progress = storage.claim(edge, worker=worker, stale_after=settings.stale_after)
            if progress is None:
                continue
            ran = True
            finished = storage.records().get(edge)
            if finished is not None:  # finished by another worker meanwhile: drop our claim
                storage.finish(finished, worker=worker)
                break
            best = fr.best.get(edge[0])
            run = TransitionRun(
                edge=(settings.graph.state(edge[0]), settings.graph.state(edge[1])),
                storage=storage,
                rule=settings.rule,
                direction=settings.direction,
                worker=worker,
                init_ref=best.checkpoint if best is not None else settings.start_checkpoint,
                progress=progress,
                log=log,
            )
            try:
                record = run.execute(settings.fn)
            except ClaimLostError as exc:
                _log(settings, f"[{worker}] {edge_label(edge)}: dropped: {exc}")
                break
            if record.status == "failed" and settings.on_error == "raise":
                raise TransitionFailedError(
                    f"transition {edge_label(edge)} failed (on_error='raise'):\n{record.error}"
                )
            break
        if not ran:
            time.sleep(settings.poll_interval)


def _child_main(settings: _Settings, index: int) -> None:
    _worker_loop(settings, f"{socket.gethostname()}:{os.getpid()}:w{index}")


def plan(
    graph: TransitionGraph,
    run_transition: TransitionFn,
    *,
    storage: PlanStorage | str | os.PathLike[str],
    checkpoints: object | None = None,
    rule: KneeRule | None = None,
    workers: int = 1,
    mode: str = "max",
    start_checkpoint: str | None = None,
    on_error: str = "continue",
    stale_after: float = 600.0,
    poll_interval: float = 0.5,
    progress: bool | TextIO = True,
    mp_context: str | None = None,
) -> Plan:
    """Plan a staged training schedule by dynamic programming over ``graph``.

    Every transition S_i -> S_j whose source is settled (all its incoming transitions
    finished) is run through ``run_transition(trial)`` until the knee rule stops it; S_j
    keeps the checkpoint of its best incoming transition (ties: the cheaper path, then the
    edge listed first in ``graph.edges``); the best final state's path is backtracked into a
    :class:`Plan`.
    Independent ready transitions run in parallel when ``workers > 1`` (processes on this
    machine), and any number of processes or machines may run ``plan`` on one shared
    storage at once: each transition is claimed by exactly one of them.

    Resuming: finished transitions in ``storage`` are never re-run. An interrupted transition
    is resumed from its last kept checkpoint (the values after it are lost and re-run); with
    no kept checkpoint it restarts from epoch 0.

    Errors: a transition function that raises, reports nothing, or breaks the protocol is
    recorded as *failed* with the error; with ``on_error="continue"`` (default) planning goes
    on without it and a state whose incoming transitions all failed is dead; with
    ``on_error="raise"`` the planner stops with :class:`TransitionFailedError`. A plan with
    no reachable final state raises :class:`PlanningError` naming the failures.

    Args:
        graph: The transition graph.
        run_transition: ``fn(trial)``; see :class:`~stageplan.Trial`. With ``workers > 1`` it
            runs in forked worker processes.
        storage: A directory (local storage), a storage URL handled by an installed adapter
            (``sqlite:///``, ``postgresql://``...), or a :class:`PlanStorage`.
        checkpoints: For a database or journal storage: where checkpoints go, a place every
            worker can reach (a shared directory, ``s3://bucket``, ``gs://bucket`` or an
            ``optuna.artifacts`` store). Required for a database server, which cannot hold
            them (refused before any transition runs); SQLite and journal files default to
            ``<file>.artifacts/`` next to them.
        rule: The knee rule (default ``KneeRule()``; an unbounded rule gets
            ``max_epochs=300``).
        workers: Worker processes on this machine.
        mode: ``"max"`` for accuracy-like metrics, ``"min"`` for losses.
        start_checkpoint: A storage reference (for local storage: a path relative to the
            directory or absolute) of weights to start from, e.g. pretrained ones.
        on_error: ``"continue"`` or ``"raise"``.
        stale_after: Seconds without a heartbeat after which another worker takes a running
            transition over.
        poll_interval: Seconds to wait when every ready transition is taken.
        progress: Print a line per transition event and epoch (to stderr, or to the given
            stream); ``False`` for silence.
        mp_context: multiprocessing start method for ``workers > 1`` (default ``"fork"``
            where available).

    Returns:
        The plan.

    Example:
        >>> import tempfile
        >>> from stageplan import KneeRule, TransitionGraph, plan
        >>> g = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.1, 0.01]))
        >>> def fn(trial):
        ...     for epoch in trial.epochs():
        ...         trial.report(min(epoch, 12) / 12 * trial.params["size"])
        >>> p = plan(g, fn, storage=tempfile.mkdtemp(), rule=KneeRule(delay=3),
        ...          progress=False)
        >>> [s.state for s in p.stages][-1]
        'size=16,lr=0.01'
    """
    if not isinstance(graph, TransitionGraph):
        raise TypeError(f"graph must be a TransitionGraph, got {type(graph).__name__}")
    if not callable(run_transition):
        raise TypeError(f"run_transition must be callable, got {run_transition!r}")
    direction = Direction.of(mode)
    if on_error not in ("continue", "raise"):
        raise ValueError(f"on_error must be 'continue' or 'raise', got {on_error!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if not stale_after > 0:
        raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
    if not poll_interval > 0:
        raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
    rule = rule if rule is not None else KneeRule()
    if not isinstance(rule, KneeRule):
        raise TypeError(f"rule must be a KneeRule, got {type(rule).__name__}")
    if rule.max_epochs is None:
        rule = KneeRule.from_dict({**rule.to_dict(), "max_epochs": DEFAULT_MAX_EPOCHS})
    store = resolve_storage(storage, checkpoints=checkpoints)
    store.open(graph.to_dict(), {"mode": mode, "rule": rule.to_dict()})
    stream: TextIO | None
    if progress is True:
        stream = sys.stderr
    elif progress is False:
        stream = None
    else:
        stream = progress
    settings = _Settings(
        graph=graph,
        fn=run_transition,
        storage=store,
        rule=rule,
        direction=direction,
        start_checkpoint=start_checkpoint,
        stale_after=stale_after,
        poll_interval=poll_interval,
        on_error=on_error,
        stream=stream,
    )
    me = f"{socket.gethostname()}:{os.getpid()}"
    if workers > 1 and not store.process_safe:
        raise ValueError(
            f"storage {store!r} cannot be shared by worker processes; use workers=1 or a "
            "directory, journal file or database storage"
        )
    if workers == 1:
        _worker_loop(settings, me)
    else:
        _run_parallel(settings, workers, me, mp_context)
    return build_plan(graph, store.records(), mode=mode, rule=rule.to_dict(), storage=repr(store))


def _run_parallel(settings: _Settings, workers: int, me: str, mp_context: str | None) -> None:
    method = mp_context or (
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    ctx: Any = multiprocessing.get_context(method)
    children = [
        ctx.Process(target=_child_main, args=(settings, i), daemon=True) for i in range(1, workers)
    ]
    for child in children:
        child.start()
    try:
        _worker_loop(settings, f"{me}:w0")
    except BaseException:
        for child in children:
            child.terminate()
        raise
    for child in children:
        child.join()
    bad = [c.exitcode for c in children if c.exitcode != 0]
    if bad and settings.on_error == "raise":
        raise TransitionFailedError(
            f"{len(bad)} worker process(es) stopped with errors (exit codes {bad}); see the "
            "failed transition records in the storage"
        )
    if bad:
        raise PlanningError(f"{len(bad)} worker process(es) died (exit codes {bad})")
