"""Dynamic-programming planner over a transition graph (Qiu et al., 2021)."""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stageplan._graph import TransitionGraph
from stageplan._plan import Plan, Stage
from stageplan._state import State
from stageplan._trial import Trial
from stageplan.knee import KneeRule
from stageplan.storage._base import (
    ClaimLostError,
    EdgeKey,
    PlanStorage,
    Status,
    StorageError,
    TransitionRecord,
    best_incoming,
    edge_label,
)
from stageplan.storage._local import LocalStorage

__all__ = [
    "PlanningError",
    "TransitionFailedError",
    "plan",
    "Frontier",
    "frontier",
    "resolve_storage",
    "DEFAULT_MAX_EPOCHS",
]

TransitionFn = Callable[[Trial], Any]
DEFAULT_MAX_EPOCHS = 300


class PlanningError(RuntimeError):
    """Planning could not produce a plan (e.g. every path to a final state failed)."""


class TransitionFailedError(PlanningError):
    """A transition function raised and ``on_error="raise"`` was asked for."""


@dataclass
class Frontier:
    """Where planning stands, derived from the finished records alone.

    Attributes:
        best: Best complete incoming record of every state whose incoming transitions are
            all finished (``None`` for a dead state: all of them failed).
        ready: Transitions that may start now, in graph order.
        dead: Transitions that can never run (their source is dead).
        done: True when every transition is finished or dead.
    """

    best: dict[str, TransitionRecord | None] = field(default_factory=dict)
    ready: list[EdgeKey] = field(default_factory=list)
    dead: list[EdgeKey] = field(default_factory=list)
    done: bool = False


def frontier(
    graph: TransitionGraph, records: Mapping[EdgeKey, TransitionRecord], *, mode: str = "max"
) -> Frontier:
    """Compute the DP frontier: which states are settled, which transitions can run.

    A transition out of state S is ready once every incoming transition of S has finished
    (S's checkpoint is the best of them). A state whose incoming transitions all failed (or
    can never run) is dead, and so are the transitions out of it. The result depends on the
    set of finished records only, never on the order they finished in.
    """
    sign = 1.0 if mode == "max" else -1.0
    order = {(a.name, b.name): i for i, (a, b) in enumerate(graph.edges)}
    out = Frontier()
    alive: dict[str, bool] = {graph.start.name: True}  # settled states only
    path_epochs: dict[str, int] = {graph.start.name: 0}  # epochs of each settled best path
    for state in graph.topological_order():
        if state == graph.start:
            continue
        incoming = [(p.name, state.name) for p in graph.predecessors(state)]
        finished = [records[e] for e in incoming if e in records]
        never = [e for e in incoming if e not in records and alive.get(e[0]) is False]
        if len(finished) + len(never) == len(incoming):
            best = best_incoming(finished, order, sign, path_epochs)
            out.best[state.name] = best
            if best is not None:  # ties between equal values went to the cheaper path
                path_epochs[state.name] = path_epochs.get(best.source, 0) + int(
                    best.checkpoint_epoch or 0
                )
            alive[state.name] = best is not None
    for a, b in graph.edges:
        key = (a.name, b.name)
        if key in records or a.name not in alive:
            continue
        (out.ready if alive[a.name] else out.dead).append(key)
    out.done = all(
        (a.name, b.name) in records or alive.get(a.name) is False for a, b in graph.edges
    )
    return out


def resolve_storage(
    storage: PlanStorage | str | os.PathLike[str], *, checkpoints: object | None = None
) -> PlanStorage:
    """Turn a directory path (or ``file://`` URL) into :class:`LocalStorage`; pass others on.

    Database URLs (``sqlite:///``, ``postgresql://``, ``journal:``) and Optuna storage
    objects go to :mod:`stageplan.integrations.optuna` when it is installed, with
    ``checkpoints`` (a
    directory every worker can reach, ``s3://bucket``, or an artifact store) as the place for
    checkpoints. A directory storage keeps its checkpoints inside it, and a storage object
    was given its checkpoint location when it was made, so neither takes ``checkpoints``.
    """
    if isinstance(storage, PlanStorage):
        _no_checkpoints_for(storage, checkpoints, "a storage object (pass it to its constructor)")
        return storage
    if isinstance(storage, Path):
        _no_checkpoints_for(storage, checkpoints, "a directory storage (it keeps them inside)")
        return LocalStorage(storage)
    if isinstance(storage, str):
        local = storage.startswith("file://") or "://" not in storage
        if storage.startswith("journal:") or not local:
            return _optuna_storage(storage, checkpoints)
        _no_checkpoints_for(storage, checkpoints, "a directory storage (it keeps them inside)")
        if storage.startswith("file://"):
            return LocalStorage(storage[len("file://") :])
        return LocalStorage(storage)
    if type(storage).__module__.split(".")[0] == "optuna":  # an optuna BaseStorage object
        return _optuna_storage(storage, checkpoints)
    raise TypeError(
        f"storage must be a directory path, a storage URL or a PlanStorage, got "
        f"{type(storage).__name__} {storage!r}"
    )


def _no_checkpoints_for(storage: object, checkpoints: object | None, what: str) -> None:
    if checkpoints is not None:
        raise ValueError(
            f"checkpoints={checkpoints!r} applies to database and journal storages only; "
            f"storage {storage!r} is {what}"
        )


def _optuna_storage(storage: object, checkpoints: object | None) -> PlanStorage:
    try:
        adapter: Any = importlib.import_module("stageplan.integrations.optuna")
    except ImportError as exc:
        raise StorageError(
            f"storage {storage!r} needs the Optuna adapter (pip install 'stageplan[optuna]'): "
            f"{exc}"
        ) from exc
    resolved: PlanStorage = adapter.OptunaStorage(storage, checkpoints=checkpoints)
    return resolved


@dataclass
class _Settings:
    graph: TransitionGraph
    fn: TransitionFn
    storage: PlanStorage
    rule: KneeRule
    mode: str
    start_checkpoint: str | None
    stale_after: float
    poll_interval: float
    on_error: str
    stream: TextIO | None


def _log(settings: _Settings, text: str) -> None:
    if settings.stream is not None:
        print(text, file=settings.stream, flush=True)


def _run_one(
    settings: _Settings, edge: EdgeKey, worker: str, progress: Any, init_ref: str | None
) -> tuple[TransitionRecord, list[str]]:
    """Run one transition; return its record and the checkpoints to delete once it is stored."""
    graph = settings.graph
    source, target = graph.state(edge[0]), graph.state(edge[1])
    tracker = settings.rule.tracker(mode=settings.mode)
    trial = Trial(
        edge=(source, target),
        storage=settings.storage,
        tracker=tracker,
        worker=worker,
        init_ref=init_ref,
        keep_window=settings.rule.delay + 1,
        progress=progress,
    )
    resumed_from = trial.epoch if trial.resumed else None
    tag = f"[{worker}] {edge_label(edge)}"
    _log(
        settings,
        f"{tag}: start"
        + (f" (resumed at epoch {resumed_from})" if resumed_from is not None else ""),
    )
    started = time.monotonic()

    def make(status: Status, **fields: Any) -> TransitionRecord:
        return TransitionRecord(
            source=edge[0],
            target=edge[1],
            status=status,
            values=trial.values,
            decision=_dec(trial),
            worker=worker,
            resumed_from=resumed_from,
            duration_s=time.monotonic() - started,
            **fields,
        )

    def fail(message: str) -> tuple[TransitionRecord, list[str]]:
        drop = trial._discard()
        _log(settings, f"{tag}: FAILED: {message.strip().splitlines()[-1]}")
        return make("failed", error=message), drop

    reported = [trial.epoch]

    def on_epoch() -> None:
        d = trial.decision
        if d is not None and trial.epoch != reported[0]:
            reported[0] = trial.epoch
            knee = "-" if d.knee_epoch is None else str(d.knee_epoch)
            _log(
                settings,
                f"{tag}: epoch {trial.epoch:>3} value {trial.values[-1]:.4g} "
                f"knee {knee} ({d.reason})",
            )

    trial._on_report = on_epoch
    try:
        settings.fn(trial)
    except Exception:  # noqa: BLE001 - any error of the user's function is recorded
        if trial._claim_lost is not None:
            raise trial._claim_lost from None
        return fail(traceback.format_exc())
    if trial._claim_lost is not None:  # the trainer swallowed the error
        raise trial._claim_lost
    if not trial.values:
        return fail(
            f"transition {edge_label(edge)}: the transition function returned without "
            "reporting any value (report epoch 0 first)"
        )
    decision = trial.decision
    assert decision is not None
    knee = decision.knee_epoch
    if knee is None or not trial.should_stop():
        # The trainer ended the transition itself: keep the best epoch the rule would keep.
        finite = [e for e, v in enumerate(trial.values) if math.isfinite(v)]
        if not finite:
            return fail(f"transition {edge_label(edge)}: every reported value is NaN or inf")
        sign = 1.0 if settings.mode == "max" else -1.0
        if knee is None or knee not in finite:
            knee = max(finite, key=lambda e: (sign * trial.values[e], -e))
    try:
        ckpt_epoch, ref, drop = trial._finalize(knee)
    except Exception:  # noqa: BLE001
        return fail(traceback.format_exc())
    value = trial.values[ckpt_epoch]
    if not math.isfinite(value):
        failed, more = fail(
            f"transition {edge_label(edge)}: the value of the kept epoch {ckpt_epoch} is not "
            f"finite ({value}); the run diverged"
        )
        return failed, drop + more
    record = make(
        "complete", knee_epoch=knee, checkpoint_epoch=ckpt_epoch, value=value, checkpoint=ref
    )
    _log(
        settings,
        f"{tag}: done after {record.epochs} epochs, knee {ckpt_epoch}, value {value:.4g} "
        f"({decision.reason if trial.should_stop() else 'ended by trainer'})",
    )
    return record, drop


def _dec(trial: Trial) -> dict[str, Any] | None:
    d = trial.decision
    return None if d is None else d.to_dict()


def _prune_losers(
    settings: _Settings,
    records: Mapping[EdgeKey, TransitionRecord],
    fr: Frontier,
    pruned: set[str],
) -> None:
    """Once a state is settled, only its best incoming checkpoint is kept."""
    keep = {r.checkpoint for r in fr.best.values() if r is not None and r.checkpoint}
    for state, best in fr.best.items():
        for pred in settings.graph.predecessors(state):
            rec = records.get((pred.name, state))
            if rec is None or rec is best or not rec.checkpoint or rec.checkpoint in keep:
                continue
            if rec.checkpoint not in pruned:
                settings.storage.delete_checkpoint(rec.checkpoint)
                pruned.add(rec.checkpoint)


def _worker_loop(settings: _Settings, worker: str) -> None:
    storage = settings.storage
    pruned: set[str] = set()
    while True:
        records = storage.records()
        fr = frontier(settings.graph, records, mode=settings.mode)
        _prune_losers(settings, records, fr, pruned)
        if fr.done:
            return
        ran = False
        for edge in fr.ready:
            progress = storage.claim(edge, worker=worker, stale_after=settings.stale_after)
            if progress is None:
                continue
            finished = storage.records().get(edge)
            if finished is not None:  # finished by another worker meanwhile: drop our claim
                storage.finish(finished, worker=worker)
                ran = True
                break
            best = fr.best.get(edge[0])
            init_ref = best.checkpoint if best is not None else settings.start_checkpoint
            ran = True
            try:
                record, drop = _run_one(settings, edge, worker, progress, init_ref)
                storage.finish(record, worker=worker)
                # Only now, with the record stored, can nothing resume from these.
                for ref in drop:
                    storage.delete_checkpoint(ref)
            except ClaimLostError as exc:
                _log(settings, f"[{worker}] {edge_label(edge)}: dropped: {exc}")
                break
            except BaseException:
                # Interrupted (Ctrl-C, SystemExit): free the claim at once so that a rerun,
                # or another worker on any host, resumes the transition from its progress.
                storage.release(edge, worker=worker)
                raise
            if record.status == "failed" and settings.on_error == "raise":
                raise TransitionFailedError(
                    f"transition {edge_label(edge)} failed (on_error='raise'):\n{record.error}"
                )
            break
        if not ran:
            time.sleep(settings.poll_interval)


def _child_main(settings: _Settings, index: int) -> None:
    _worker_loop(settings, f"{socket.gethostname()}:{os.getpid()}:w{index}")


def build_plan(
    graph: TransitionGraph,
    records: Mapping[EdgeKey, TransitionRecord],
    *,
    mode: str = "max",
    rule: dict[str, Any] | None = None,
    storage: str | None = None,
) -> Plan:
    """Backtrack the best path from the best final state through each state's best predecessor.

    Ties between final states of exactly equal value go to the cheaper path (fewest epochs
    from the start), then to the one listed first in ``graph.finals``.
    """
    fr = frontier(graph, records, mode=mode)
    sign = 1.0 if mode == "max" else -1.0
    finals = [(f, fr.best.get(f.name)) for f in graph.finals]
    candidates = [(f, r) for f, r in finals if r is not None and r.value is not None]
    ordered = [records[(a.name, b.name)] for a, b in graph.edges if (a.name, b.name) in records]
    if not candidates:
        failed = [r for r in ordered if r.status == "failed"]
        detail = "; ".join(
            f"{edge_label(r.edge)}: {(r.error or '').strip().splitlines()[-1:]}"
            for r in failed[:5]
        )
        raise PlanningError(
            "no final state was reached, so there is no plan"
            + (f" ({len(failed)} transitions failed: {detail})" if failed else "")
        )

    def path_epochs(r: TransitionRecord | None) -> int:
        total = 0
        while r is not None:
            total += int(r.checkpoint_epoch or 0)
            r = None if r.source == graph.start.name else fr.best.get(r.source)
        return total

    best_final, rec = max(
        candidates,
        key=lambda fr_: (sign * (fr_[1].value or 0.0), -path_epochs(fr_[1]),
                         -graph.finals.index(fr_[0])),
    )
    assert rec is not None
    stages: list[Stage] = []
    current: TransitionRecord | None = rec
    while current is not None:
        target: State = graph.state(current.target)
        stages.append(
            Stage(
                state=target.name,
                params=target.params,
                epochs=int(current.checkpoint_epoch or 0),
                value=current.value,
                source=current.source,
            )
        )
        if current.source == graph.start.name:
            break
        current = fr.best.get(current.source)
    stages.reverse()
    return Plan(
        stages=tuple(stages),
        final_value=rec.value,
        final_checkpoint=rec.checkpoint,
        mode=mode,
        graph=graph.to_dict(),
        transitions=ordered,
        rule=rule,
        storage=storage,
    )


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
    keeps the checkpoint of its best incoming transition (ties: the edge listed first in
    ``graph.edges``); the best final state's path is backtracked into a :class:`Plan`.
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
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
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
        mode=mode,
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
