"""A transition's trials: the take-over chain, claims, staleness and recovery.

A transition's trials form a chain: its first trial (``takes_over`` is ``None``), then the
trial that took it over, and so on; the last one (:func:`chain_head`) stands for the
transition. A worker claims a ``WAITING`` head by moving it to ``RUNNING`` with the storage's
compare-and-set. A ``RUNNING`` head whose owner is stale (:func:`stale`) is taken over: it is
marked ``FAIL`` (compare-and-set again: one winner) and a successor continues from its stored
progress, cut at the last kept checkpoint (:func:`~stageplan.storage.resume_cut`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stageplan.integrations.optuna._encoding import (
    T_EDGE,
    T_OWNER,
    T_PROGRESS,
    T_RECORD,
    T_SUPERSEDED,
    T_TAKEN_OVER,
    T_TAKES_OVER,
    ParamSpace,
    final_state,
    stored_progress,
    stored_record,
    trial_template,
    written_values,
)

from stageplan.storage import (
    CheckpointStore,
    EdgeKey,
    Progress,
    StorageError,
    TransitionRecord,
    edge_label,
    is_stale,
    owner_record,
    resume_cut,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["Claim", "PlanTrials", "chain", "chain_head", "stale"]

_log = logging.getLogger("stageplan.integrations.optuna")

SUCCESSOR_GRACE_S = 30.0
"""Seconds a take-over's successor trial may take to appear before another worker makes it."""

OWNERLESS_GRACE_S = 30.0
"""Seconds a claimed trial may go without its owner record before it counts as stale."""


def chain(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """A transition's chain of trials, first to last (empty for a transition with no trial).

    When several trials claim the same place (two workers raced to create it), the
    lowest-numbered one counts; the others, and any trial continuing them, are strays that
    never join the chain (trials are never removed, so a place once taken stays taken).
    """
    child: dict[int, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        pred = t.user_attrs.get(T_TAKES_OVER)
        key = -1 if pred is None else int(pred)
        child.setdefault(key, t)
    out: list[FrozenTrial] = []
    seen: set[int] = set()
    link = child.get(-1)
    while link is not None and link.number not in seen:  # a corrupt cycle stops, not loops
        out.append(link)
        seen.add(link.number)
        link = child.get(link.number)
    return out


def chain_head(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that currently stands for a transition: the last of its :func:`chain`."""
    links = chain(trials)
    return links[-1] if links else None


def stale(trial: FrozenTrial, stale_after: float, *, check_local_pid: bool) -> bool:
    """Whether a ``RUNNING`` trial's claim may be taken over (:func:`~stageplan.storage.is_stale`).

    Its heartbeats are the time of the claim and of its owner's last progress write. A trial
    with no owner record was claimed by a worker that died between the claim's two writes
    (state, then owner): it is stale :data:`OWNERLESS_GRACE_S` after it started (or after
    ``stale_after``, if that is shorter), so nobody waits ``stale_after`` for a worker that
    never said who it is. A live worker that slow learns it lost the claim at its next write.
    """
    owner = trial.user_attrs.get(T_OWNER)
    if not isinstance(owner, dict):
        if trial.datetime_start is None:
            return True
        age = time.time() - trial.datetime_start.timestamp()
        return age > min(stale_after, OWNERLESS_GRACE_S)
    beats: list[float] = []
    if isinstance(owner.get("time"), (int, float)):
        beats.append(float(owner["time"]))
    stored = trial.user_attrs.get(T_PROGRESS)
    if isinstance(stored, dict) and stored.get("worker") == owner.get("worker"):
        hb = stored.get("heartbeat")
        if isinstance(hb, (int, float)):
            beats.append(float(hb))
    if not beats and trial.datetime_start is not None:
        beats.append(trial.datetime_start.timestamp())
    return is_stale(owner, beats, stale_after, check_local_pid=check_local_pid)


@dataclass
class Claim:
    """A transition this process runs: its trial and the curve written to it so far."""

    trial_id: int
    number: int
    written: list[float] = field(default_factory=list)


class PlanTrials:
    """One process's view of a plan study's trials, on one connection.

    Holds this process's claims and the transitions it lost to a take-over; made anew for
    every connection (after a fork nothing of the parent's claims carries over).

    Args:
        backend: The Optuna storage, connected in this process.
        study_name: The plan study.
        where: The study as messages name it.
        space: The graph's params (filled by ``OptunaStorage.open``).
        checkpoints: The checkpoint store (for the sweeps of the recovery paths).
    """

    def __init__(
        self,
        backend: BaseStorage,
        study_name: str,
        *,
        where: str,
        space: ParamSpace,
        checkpoints: Callable[[], CheckpointStore],
    ) -> None:
        self.backend = backend
        self.study_name = study_name
        self.where = where
        self.space = space
        self._checkpoints = checkpoints
        self.study_id: int | None = None
        self.claims: dict[EdgeKey, Claim] = {}
        self.lost: set[EdgeKey] = set()
        self._ids: dict[int, int] = {}

    # -- the study and its trials ---------------------------------------------------------
    def sid(self) -> int:
        """The study's id (a :class:`StorageError` when there is no such study yet)."""
        if self.study_id is None:
            try:
                self.study_id = self.backend.get_study_id_from_name(self.study_name)
            except KeyError:
                raise StorageError(
                    f"there is no {self.where}; call plan() (or open()) to create it"
                ) from None
        return self.study_id

    def trial_id(self, trial: FrozenTrial) -> int:
        """A trial's storage id, through the public number -> id look-up (cached: it never
        changes)."""
        number = trial.number
        if number not in self._ids:
            self._ids[number] = self.backend.get_trial_id_from_study_id_trial_number(
                self.sid(), number
            )
        return self._ids[number]

    def study_trials(self) -> list[FrozenTrial]:
        return self.backend.get_all_trials(self.sid(), deepcopy=False)

    def edge_trials(self, edge: EdgeKey) -> list[FrozenTrial]:
        label = edge_label(edge)
        return [t for t in self.study_trials() if t.user_attrs.get(T_EDGE) == label]

    def create(
        self,
        edge: EdgeKey,
        *,
        takes_over: int | None,
        progress: Any = None,
        intermediate: dict[int, float] | None = None,
        record: TransitionRecord | None = None,
    ) -> int:
        """Add a trial of ``edge`` (see :func:`trial_template`); return its id."""
        template = trial_template(
            edge,
            self.space,
            takes_over=takes_over,
            progress=progress,
            intermediate=intermediate,
            record=record,
        )
        return self.backend.create_new_trial(self.sid(), template_trial=template)

    def records(self) -> dict[EdgeKey, TransitionRecord]:
        grouped: dict[str, list[FrozenTrial]] = {}
        for t in self.study_trials():
            label = t.user_attrs.get(T_EDGE)
            if isinstance(label, str):
                grouped.setdefault(label, []).append(t)
        out: dict[EdgeKey, TransitionRecord] = {}
        for trials in grouped.values():
            head = chain_head(trials)
            if head is None or not head.state.is_finished():
                continue
            rec = stored_record(head)
            if rec is not None:  # None: taken over, its successor not created yet
                out[rec.edge] = rec
        return out

    # -- claims ---------------------------------------------------------------------------
    def claim(
        self, edge: EdgeKey, *, worker: str, stale_after: float, check_local_pid: bool
    ) -> Progress | None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        if edge in self.claims:
            raise StorageError(
                f"transition {edge_label(edge)} is already claimed by this process ({worker})"
            )
        for _ in range(6):
            trials = self.edge_trials(edge)
            links = chain(trials)
            self._close_strays(trials, links, stale_after, check_local_pid=check_local_pid)
            head = links[-1] if links else None
            if head is None:
                self.create(edge, takes_over=None)
                continue
            if head.state.is_finished():
                if isinstance(head.user_attrs.get(T_RECORD), dict):
                    return None  # finished
                if head.user_attrs.get(T_SUPERSEDED):
                    return None  # cannot happen for a head; be safe
                taken = head.user_attrs.get(T_TAKEN_OVER)
                when = taken.get("time") if isinstance(taken, dict) else None
                if isinstance(when, (int, float)) and time.time() - when < SUCCESSOR_GRACE_S:
                    return None  # its taker is creating the successor right now
                self._create_successor(edge, head)  # a taker died before making it
                continue
            if head.state == TrialState.RUNNING:
                if not stale(head, stale_after, check_local_pid=check_local_pid):
                    return None
                if isinstance(head.user_attrs.get(T_RECORD), dict):
                    self._complete_on_behalf(head)
                    return None
                if not self._take_over(edge, head, worker):
                    return None
                continue
            # WAITING: compare-and-set to RUNNING; exactly one process wins.
            trial_id = self.trial_id(head)
            try:
                won = self.backend.set_trial_state_values(trial_id, TrialState.RUNNING)
            except UpdateFinishedTrialError:
                continue
            if not won:
                return None
            # The owner at once: until it is written, a crash here is found only by age.
            self.backend.set_trial_user_attr(trial_id, T_OWNER, owner_record(worker))
            again = chain_head(self.edge_trials(edge))
            if again is None or again.number != head.number:
                # A lower-numbered duplicate became visible after we read: it counts.
                self._supersede(trial_id)
                return None
            self.claims[edge] = Claim(trial_id, head.number, written=written_values(head))
            progress = stored_progress(head)
            return Progress() if progress is None else progress
        return None

    def claim_of(self, edge: EdgeKey, worker: str) -> Claim:
        claim = self.claims.get(edge)
        if claim is None:
            raise StorageError(
                f"transition {edge_label(edge)} is not claimed by this process ({worker}); "
                "claim() it first"
            )
        return claim

    def write_values(self, claim: Claim, values: list[float]) -> None:
        """Write a curve as the claimed trial's intermediate values (only the changed ones)."""
        for step, v in enumerate(values):
            if step < len(claim.written) and _same(claim.written[step], v):
                continue
            self.backend.set_trial_intermediate_value(claim.trial_id, step, v)
        claim.written = list(values)

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Fail the claimed trial as released and enqueue a successor from its progress."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        claim = self.claims.pop(edge, None)
        if claim is None:
            return
        try:
            self.backend.set_trial_user_attr(
                claim.trial_id,
                T_TAKEN_OVER,
                {"worker": worker, "time": time.time(), "released": True},
            )
            self.backend.set_trial_state_values(claim.trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return  # finished, or taken over meanwhile: nothing of ours to give back
        self._create_successor(edge, self.backend.get_trial(claim.trial_id))
        _log.info("transition %s: released by %s (interrupted)", edge_label(edge), worker)

    # -- take-overs and recovery ----------------------------------------------------------
    def _close_strays(
        self,
        trials: list[FrozenTrial],
        links: list[FrozenTrial],
        stale_after: float,
        *,
        check_local_pid: bool,
    ) -> None:
        """Fail the open trials that lost their place in the chain (see :func:`chain`).

        Workers racing to make a trial (a successor whose taker died, say) leave such
        ``WAITING`` duplicates; a worker killed right after winning one leaves it ``RUNNING``.
        They can never run, so they are marked superseded and failed (a live worker's own
        ``RUNNING`` stray is left to that worker, which fails it itself).
        """
        from optuna.trial import TrialState

        on_chain = {t.number for t in links}
        for t in trials:
            if t.number in on_chain or t.state.is_finished():
                continue
            if t.state == TrialState.RUNNING and not stale(
                t, stale_after, check_local_pid=check_local_pid
            ):
                continue
            self._supersede(self.trial_id(t))

    def _supersede(self, trial_id: int) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            self.backend.set_trial_user_attr(trial_id, T_SUPERSEDED, True)
            self.backend.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass

    def _take_over(self, edge: EdgeKey, head: FrozenTrial, worker: str) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        trial_id = self.trial_id(head)
        try:
            self.backend.set_trial_user_attr(
                trial_id, T_TAKEN_OVER, {"worker": worker, "time": time.time()}
            )
            self.backend.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False  # it finished, or another worker took it over first
        old = self.backend.get_trial(trial_id)  # frozen now: its final progress
        owner = old.user_attrs.get(T_OWNER, {})
        _log.warning(
            "transition %s: worker %s stopped reporting; taken over by %s",
            edge_label(edge),
            owner.get("worker") if isinstance(owner, dict) else None,
            worker,
        )
        record = stored_record(old)
        if record is not None:
            # Its worker stored the record just before we took over: keep that result.
            self.create(
                edge,
                takes_over=old.number,
                intermediate=dict(old.intermediate_values),
                record=record,
            )
            self._drop_leftovers(old, record)
        else:
            self._create_successor(edge, old)
        return True

    def _create_successor(self, edge: EdgeKey, old: FrozenTrial) -> None:
        """Enqueue the trial that continues ``old``: its progress, values up to the cut."""
        progress = stored_progress(old)
        cut = None if progress is None else resume_cut(progress)
        intermediate = (
            {} if cut is None else {s: v for s, v in old.intermediate_values.items() if s <= cut}
        )
        self.create(
            edge,
            takes_over=old.number,
            progress=old.user_attrs.get(T_PROGRESS),
            intermediate=intermediate,
        )

    def _complete_on_behalf(self, head: FrozenTrial) -> None:
        """A worker stored its record and died before marking the trial finished."""
        from optuna.exceptions import UpdateFinishedTrialError

        record = stored_record(head)
        if record is None:
            return
        state, value = final_state(record)
        try:
            self.backend.set_trial_state_values(
                self.trial_id(head), state, None if value is None else [value]
            )
        except UpdateFinishedTrialError:
            return
        self._drop_leftovers(head, record)

    def _drop_leftovers(self, trial: FrozenTrial, record: TransitionRecord) -> None:
        """Delete the checkpoints of a dead worker's run that its stored record does not keep.

        The record is stored, so nothing resumes from them: the stored progress's references
        (a store that cannot be listed misses nothing named there) and what a sweep finds.
        """
        store = self._checkpoints()
        progress = stored_progress(trial)
        for ref in [] if progress is None else progress.checkpoints.values():
            if ref != record.checkpoint:
                store.delete(ref)
        store.sweep(record.edge, {record.checkpoint} if record.checkpoint else set())


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here
