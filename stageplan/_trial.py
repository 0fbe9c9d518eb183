"""The Trial protocol: the whole contract between the planner and a staged trainer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from stageplan._state import ParamValue, State
from stageplan.storage._base import ClaimLostError, EdgeKey, PlanStorage, Progress, edge_label

if TYPE_CHECKING:
    from stageplan.knee import KneeDecision, KneeTracker

__all__ = ["Trial", "TrialProtocolError", "SaveFn"]

SaveFn = Callable[[str], Any]


class TrialProtocolError(RuntimeError):
    """A transition function broke the Trial protocol (e.g. reported after being stopped)."""


def _as_value(edge: EdgeKey, epoch: int, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)  # type: ignore[arg-type]  # numpy / torch scalars
        except (TypeError, ValueError):
            raise TypeError(
                f"transition {edge_label(edge)}: report() needs a number for epoch {epoch}, got "
                f"{type(value).__name__} {value!r}"
            ) from None
    return float(value)


class Trial:
    """One explored transition, as the trainer sees it.

    The planner calls the user's transition function with a ``Trial``. The function loads
    ``trial.init_checkpoint`` (or starts from scratch when it is ``None``), trains with
    ``trial.params``, and after every epoch reports the validation metric. The value of
    epoch 0 is the starting model evaluated under the new settings, before any training.
    Stopping is cooperative: the function returns once :meth:`should_stop` is true.

    Iterating :meth:`epochs` is the simplest correct loop; it also resumes an interrupted
    transition at the right epoch (then ``init_checkpoint`` is this transition's own
    checkpoint of epoch :attr:`epoch` and the epochs before are already reported).

    Example (``load``, ``train_one_epoch``, ``evaluate`` and ``save`` are the trainer's own;
    ``examples/numpy_staged.py`` is a complete runnable one)::

        def run_transition(trial):
            model = load(trial.init_checkpoint)            # None: fresh weights
            for epoch in trial.epochs():                    # 0, 1, 2, ... until stopped
                if epoch > 0:
                    train_one_epoch(model, lr=trial.params["learning_rate"])
                trial.report(evaluate(model), save=lambda path: save(model, path))
    """

    def __init__(
        self,
        *,
        edge: tuple[State, State],
        storage: PlanStorage,
        tracker: KneeTracker,
        worker: str,
        init_ref: str | None,
        keep_window: int,
        progress: Progress | None = None,
    ) -> None:
        self._source, self._target = edge
        self._key: EdgeKey = (self._source.name, self._target.name)
        self._storage = storage
        self._tracker = tracker
        self._worker = worker
        self._init_ref = init_ref
        self._keep_window = max(int(keep_window), 1)
        self._values: list[float] = []
        self._kept: dict[int, str] = {}
        self._decision: KneeDecision | None = None
        self._stopped = False
        self._saved_any = False
        self._resumed_from: int | None = None
        self._start_ref = init_ref
        self._on_report: Callable[[], None] | None = None
        self._claim_lost: ClaimLostError | None = None
        if progress is not None and progress.values:
            self._resume(progress)

    def _resume(self, progress: Progress) -> None:
        kept = {e: r for e, r in progress.checkpoints.items() if 0 < e < len(progress.values)}
        if not kept:
            for ref in progress.checkpoints.values():
                self._storage.delete_checkpoint(ref)
            return  # nothing worth keeping: start the transition again
        last = max(kept)
        for epoch, ref in progress.checkpoints.items():
            if epoch > last:
                self._storage.delete_checkpoint(ref)
        self._kept = {e: r for e, r in kept.items() if e <= last}
        self._saved_any = True
        for value in progress.values[: last + 1]:
            self._values.append(value)
            self._decision = self._tracker.update(value)
        self._resumed_from = last
        self._start_ref = self._kept[last]
        self._stopped = bool(self._decision is not None and self._decision.stop)

    # -- what the trainer reads -----------------------------------------------------------
    @property
    def source(self) -> State:
        """The state whose best checkpoint this transition starts from."""
        return self._source

    @property
    def target(self) -> State:
        """The state whose hyper-parameters this transition trains with."""
        return self._target

    @property
    def params(self) -> dict[str, ParamValue]:
        """The target state's hyper-parameters."""
        return self._target.params

    @property
    def init_checkpoint(self) -> str | None:
        """Local path of the checkpoint to start from; ``None``: initial weights."""
        if self._start_ref is None:
            return None
        return self._storage.fetch_checkpoint(self._start_ref)

    @property
    def epoch(self) -> int:
        """The last reported epoch (-1 before the first report)."""
        return len(self._values) - 1

    @property
    def values(self) -> list[float]:
        """A copy of the values reported so far."""
        return list(self._values)

    @property
    def decision(self) -> KneeDecision | None:
        """The knee rule's decision after the last report."""
        return self._decision

    @property
    def resumed(self) -> bool:
        """Whether this run resumes an interrupted transition."""
        return self._resumed_from is not None

    def should_stop(self) -> bool:
        """True once the knee rule (or the epoch bound) has ended the transition."""
        return self._stopped

    def epochs(self) -> Iterator[int]:
        """Yield the next epoch to run (0 first, unless resumed) until the rule stops it.

        After each yielded epoch the trainer must :meth:`report` once.
        """
        while not self._stopped:
            expected = len(self._values)
            yield expected
            if len(self._values) != expected + 1 and not self._stopped:
                raise TrialProtocolError(
                    f"transition {edge_label(self._key)}: epoch {expected} was yielded but "
                    f"report() was called {len(self._values) - expected} times for it"
                )

    # -- what the trainer calls -----------------------------------------------------------
    def report(self, value: float, *, save: SaveFn | None = None) -> KneeDecision:
        """Report the validation metric of the epoch just finished (epoch 0 first).

        Args:
            value: The validation metric. NaN and inf are accepted and handled by the knee
                rule's stated policy (never chosen as the knee).
            save: Optional callable ``save(path)`` that writes this epoch's checkpoint to
                ``path`` (a file or a directory). The planner calls it for every epoch that
                can still become the knee, deletes the ones that no longer can, and never
                asks for epoch 0 (that is the starting checkpoint).

        Returns:
            The knee rule's decision after this epoch.

        Raises:
            TrialProtocolError: If called after :meth:`should_stop` became true.
        """
        epoch = len(self._values)
        if self._stopped:
            raise TrialProtocolError(
                f"transition {edge_label(self._key)}: report() called for epoch {epoch} after "
                "should_stop() became true; return from the transition function instead"
            )
        val = _as_value(self._key, epoch, value)
        self._values.append(val)
        decision = self._tracker.update(val)
        self._decision = decision
        if save is not None and epoch > 0:
            path = self._storage.checkpoint_path(self._key, epoch)
            save(path)
            self._kept[epoch] = self._storage.store_checkpoint(self._key, epoch, path)
            self._saved_any = True
        keep = self._candidates(decision)
        dropped = {e: r for e, r in self._kept.items() if e not in keep}
        kept = {e: r for e, r in self._kept.items() if e in keep}
        try:
            self._storage.save_progress(
                self._key,
                Progress(
                    values=list(self._values), checkpoints=kept, init_checkpoint=self._init_ref
                ),
                worker=self._worker,
            )
        except ClaimLostError as exc:
            self._claim_lost = exc
            self._stopped = True
            raise
        self._kept = kept
        for ref in dropped.values():  # only once the stored progress no longer names them
            self._storage.delete_checkpoint(ref)
        self._stopped = decision.stop
        if self._on_report is not None:
            self._on_report()
        return decision

    # -- internals used by the planner ----------------------------------------------------
    def _candidates(self, decision: KneeDecision) -> set[int]:
        epoch = len(self._values) - 1
        keep = set(range(epoch - self._keep_window + 1, epoch + 1))
        if decision.knee_epoch is not None:
            keep.add(decision.knee_epoch)
        finite = [(v, e) for e, v in enumerate(self._values) if math.isfinite(v)]
        if finite:
            keep.add(max(finite, key=lambda ve: (self._tracker_sign * ve[0], -ve[1]))[1])
        return keep

    @property
    def _tracker_sign(self) -> float:
        return -1.0 if self._tracker.mode == "min" else 1.0

    def _finalize(self, knee_epoch: int) -> tuple[int, str | None, list[str]]:
        """Choose the knee's checkpoint: ``(checkpoint_epoch, checkpoint_ref, to_delete)``.

        Nothing is deleted here: the stored progress still names the other checkpoints, and a
        worker that takes over after a crash before the record is stored resumes from them.
        The planner deletes ``to_delete`` once the record is stored.
        """
        if knee_epoch == 0 or not self._saved_any:
            chosen_epoch, ref = knee_epoch, None
            if knee_epoch == 0 and self._init_ref is not None:
                ref = self._storage.copy_checkpoint(self._init_ref, self._key, 0)
        elif knee_epoch in self._kept:
            chosen_epoch, ref = knee_epoch, self._kept[knee_epoch]
        else:
            chosen_epoch = min(self._kept, key=lambda e: (abs(e - knee_epoch), e))
            ref = self._kept[chosen_epoch]
        drop = [other for other in self._kept.values() if other != ref]
        self._kept = {e: r for e, r in self._kept.items() if r == ref}
        return chosen_epoch, ref, drop

    def _discard(self) -> list[str]:
        """Forget every kept checkpoint; return them for deletion once the record is stored."""
        drop = list(self._kept.values())
        self._kept.clear()
        return drop
