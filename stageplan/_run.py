"""One explored transition as the planner runs it.

A :class:`TransitionRun` owns everything about a transition between its claim and its stored
record: the knee tracker, the set of kept checkpoints, and every storage write (progress,
checkpoints, the record, the release of an interrupted claim). It is the one place that
decides which checkpoints of a transition to keep or delete:

* while running, an epoch's checkpoint is kept while it can still become the knee (the last
  ``delay + 1`` epochs, the tracker's current knee, the best finite epoch);
* a checkpoint is deleted only once the stored progress (or the stored record) no longer
  names it, so a worker that takes over after a crash always finds what it resumes from;
* after a lost claim nothing is written or deleted: the taker owns the transition now;
* once the record is stored, the checkpoint store is swept of the transition's leftovers
  (files of a worker killed between writing a checkpoint and storing progress).

Across transitions, the planner's dynamic programming deletes the checkpoints of losing
transitions (:func:`stageplan._dp.losing_checkpoints`). The trainer sees a run only through
its thin public face, :class:`~stageplan.Trial`.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stageplan._direction import Direction
from stageplan._records import EdgeKey, Progress, Status, TransitionRecord, edge_label, resume_cut
from stageplan._state import State
from stageplan._trial import SaveFn, Trial, TrialProtocolError, as_value
from stageplan.storage._protocol import ClaimLostError, PlanStorage

if TYPE_CHECKING:
    from stageplan.knee import KneeDecision, KneeRule

__all__ = ["TransitionRun"]

TransitionFn = Callable[[Trial], Any]


class TransitionRun:
    """Run one claimed transition through a trainer's transition function.

    Args:
        edge: Source and target states.
        storage: The plan storage (progress, record, release) and its checkpoint store.
        rule: The knee rule; the run builds its own tracker.
        direction: Which way the metric improves.
        worker: This worker's name (claims are checked against it).
        init_ref: Reference of the source's best checkpoint (``None``: initial weights).
        progress: What the claim returned: an interrupted run's stored progress, or empty.
        log: Called with one line per event (start, epoch, end); ``None`` for silence.
    """

    def __init__(
        self,
        *,
        edge: tuple[State, State],
        storage: PlanStorage,
        rule: KneeRule,
        direction: Direction,
        worker: str,
        init_ref: str | None,
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source, self.target = edge
        self.key: EdgeKey = (self.source.name, self.target.name)
        self._storage = storage
        self._store = storage.checkpoints
        self._tracker = rule.tracker(mode=direction.mode)
        self._direction = direction
        self._keep_window = max(int(rule.delay) + 1, 1)
        self._worker = worker
        self._init_ref = init_ref
        self._log = log
        self.values: list[float] = []
        self.decision: KneeDecision | None = None
        self.stopped = False
        self.resumed_from: int | None = None
        self.start_ref = init_ref
        self._kept: dict[int, str] = {}
        self._doomed: set[str] = set()  # to delete once no stored progress names them
        self._saved_any = False
        self._claim_lost: ClaimLostError | None = None
        if progress is not None and progress.values:
            self._resume(progress)

    # -- resuming -------------------------------------------------------------------------
    def _resume(self, progress: Progress) -> None:
        cut = resume_cut(progress)
        kept = {} if cut is None else {e: r for e, r in progress.checkpoints.items() if e <= cut}
        # The stored progress still names the others: delete them after the next write.
        self._doomed = {r for e, r in progress.checkpoints.items() if e not in kept}
        if cut is None:
            return  # nothing worth keeping: start the transition again
        kept = {e: r for e, r in kept.items() if e > 0}
        self._kept = kept
        self._saved_any = True
        for value in progress.values[: cut + 1]:
            self.values.append(value)
            self.decision = self._tracker.update(value)
        self.resumed_from = cut
        self.start_ref = kept[cut]
        self.stopped = bool(self.decision is not None and self.decision.stop)

    # -- what the Trial delegates to ------------------------------------------------------
    def start_checkpoint(self) -> str | None:
        """Local path of the checkpoint to start (or resume) from; ``None``: initial weights."""
        return None if self.start_ref is None else self._store.fetch(self.start_ref)

    def report(self, value: object, save: SaveFn | None) -> KneeDecision:
        """Record one epoch: its value, its checkpoint, the stored progress, the deletions."""
        epoch = len(self.values)
        if self.stopped:
            raise TrialProtocolError(
                f"transition {edge_label(self.key)}: report() called for epoch {epoch} after "
                "should_stop() became true; return from the transition function instead"
            )
        val = as_value(self.key, epoch, value)
        self.values.append(val)
        decision = self._tracker.update(val)
        self.decision = decision
        if save is not None and epoch > 0:
            path = self._store.checkpoint_path(self.key, epoch)
            save(path)
            self._kept[epoch] = self._store.store(self.key, epoch, path)
            self._saved_any = True
        keep = self._candidates(decision)
        self._doomed |= {r for e, r in self._kept.items() if e not in keep}
        self._kept = {e: r for e, r in self._kept.items() if e in keep}
        progress = Progress(
            values=list(self.values), checkpoints=dict(self._kept), init_checkpoint=self._init_ref
        )
        try:
            self._storage.save_progress(self.key, progress, worker=self._worker)
        except ClaimLostError as exc:
            self._claim_lost = exc
            self.stopped = True
            raise
        self._delete(self._doomed - set(self._kept.values()))
        self._doomed = set()
        self.stopped = decision.stop
        self._log_epoch()
        return decision

    def _candidates(self, decision: KneeDecision) -> set[int]:
        """The epochs whose checkpoints can still become the kept one."""
        epoch = len(self.values) - 1
        keep = set(range(epoch - self._keep_window + 1, epoch + 1))
        if decision.knee_epoch is not None:
            keep.add(decision.knee_epoch)
        best = self._direction.best_epoch(self.values)
        if best is not None:
            keep.add(best)
        return keep

    def _delete(self, refs: set[str]) -> None:
        for ref in sorted(refs):
            self._store.delete(ref)

    # -- the whole run, for the planner ---------------------------------------------------
    def execute(self, fn: TransitionFn) -> TransitionRecord:
        """Run ``fn`` through a :class:`Trial`, store the record, then tidy its checkpoints.

        Returns the stored record (``"failed"`` when ``fn`` raised, reported nothing, broke the
        protocol or diverged). Raises :class:`ClaimLostError` when another worker took the
        transition over (nothing is stored or deleted then). On an interrupt (Ctrl-C,
        ``SystemExit``) the claim is released at once, progress kept, and the interrupt goes on.
        """
        self._emit(
            "start"
            + (f" (resumed at epoch {self.resumed_from})" if self.resumed_from is not None else "")
        )
        started = time.monotonic()
        try:
            outcome = self._call(fn)
            record = self._record(outcome, time.monotonic() - started)
            self._storage.finish(record, worker=self._worker)
        except ClaimLostError:
            raise
        except BaseException:
            self._storage.release(self.key, worker=self._worker)
            raise
        # Only now, with the record stored, can nothing resume from the others.
        keep = {record.checkpoint} if record.checkpoint else set()
        self._delete((self._doomed | set(self._kept.values())) - keep)
        self._store.sweep(self.key, keep)
        return record

    def _call(self, fn: TransitionFn) -> str | None:
        """Run the trainer's function; return the failure text, or ``None`` when it ended well."""
        try:
            fn(Trial(self))
        except Exception:  # noqa: BLE001 - any error of the user's function is recorded
            if self._claim_lost is not None:
                raise self._claim_lost from None
            return traceback.format_exc()
        if self._claim_lost is not None:  # the trainer swallowed the error
            raise self._claim_lost
        if not self.values:
            return (
                f"transition {edge_label(self.key)}: the transition function returned without "
                "reporting any value (report epoch 0 first)"
            )
        return None

    def _record(self, failure: str | None, duration: float) -> TransitionRecord:
        def make(status: Status, **fields: Any) -> TransitionRecord:
            return TransitionRecord(
                source=self.key[0],
                target=self.key[1],
                status=status,
                values=list(self.values),
                decision=None if self.decision is None else self.decision.to_dict(),
                worker=self._worker,
                resumed_from=self.resumed_from,
                duration_s=duration,
                **fields,
            )

        def failed(message: str) -> TransitionRecord:
            self._emit(f"FAILED: {message.strip().splitlines()[-1]}")
            return make("failed", error=message)

        if failure is not None:
            return failed(failure)
        knee = self._knee()
        if knee is None:
            return failed(f"transition {edge_label(self.key)}: every reported value is NaN or inf")
        try:
            ckpt_epoch, ref = self._choose_checkpoint(knee)
        except Exception:  # noqa: BLE001 - e.g. the start checkpoint vanished
            return failed(traceback.format_exc())
        value = self.values[ckpt_epoch]
        if not math.isfinite(value):
            if ref is not None and ref != self._init_ref:
                self._doomed.add(ref)
            return failed(
                f"transition {edge_label(self.key)}: the value of the kept epoch {ckpt_epoch} is "
                f"not finite ({value}); the run diverged"
            )
        record = make(
            "complete", knee_epoch=knee, checkpoint_epoch=ckpt_epoch, value=value, checkpoint=ref
        )
        assert self.decision is not None
        how = self.decision.reason if self.stopped else "ended by trainer"
        self._emit(
            f"done after {record.epochs} epochs, knee {ckpt_epoch}, value {value:.4g} ({how})"
        )
        return record

    def _knee(self) -> int | None:
        """The rule's knee, or, when the trainer ended the transition itself, the best epoch."""
        knee = None if self.decision is None else self.decision.knee_epoch
        if knee is not None and self.stopped:
            return knee
        if knee is not None and math.isfinite(self.values[knee]):
            return knee
        return self._direction.best_epoch(self.values)

    def _choose_checkpoint(self, knee: int) -> tuple[int, str | None]:
        """The kept checkpoint for ``knee``: its own, the nearest kept one, or the start's."""
        if knee == 0 or not self._saved_any:
            if knee == 0 and self._init_ref is not None:
                return 0, self._store.copy(self._init_ref, self.key, 0)
            return knee, None
        if knee in self._kept:
            return knee, self._kept[knee]
        nearest = min(self._kept, key=lambda e: (abs(e - knee), e))
        return nearest, self._kept[nearest]

    # -- progress lines -------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if self._log is not None:
            self._log(f"[{self._worker}] {edge_label(self.key)}: {text}")

    def _log_epoch(self) -> None:
        d = self.decision
        if d is None or self._log is None:
            return
        knee = "-" if d.knee_epoch is None else str(d.knee_epoch)
        self._emit(
            f"epoch {len(self.values) - 1:>3} value {self.values[-1]:.4g} knee {knee} ({d.reason})"
        )
