"""The Trial protocol: the whole contract between the planner and a staged trainer.

A :class:`Trial` is the thin public face of the planner's run of one transition
(:class:`stageplan._run.TransitionRun`): it reads and reports, and holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from stageplan._records import EdgeKey, edge_label
from stageplan._state import ParamValue, State

if TYPE_CHECKING:
    from stageplan._run import TransitionRun
    from stageplan.knee import KneeDecision

__all__ = ["SaveFn", "Trial", "TrialProtocolError", "as_value"]

SaveFn = Callable[[str], Any]


class TrialProtocolError(RuntimeError):
    """A transition function broke the Trial protocol (e.g. reported after being stopped)."""


def as_value(edge: EdgeKey, epoch: int, value: object) -> float:
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

    def __init__(self, run: TransitionRun) -> None:
        self._run = run

    # -- what the trainer reads -----------------------------------------------------------
    @property
    def source(self) -> State:
        """The state whose best checkpoint this transition starts from."""
        return self._run.source

    @property
    def target(self) -> State:
        """The state whose hyper-parameters this transition trains with."""
        return self._run.target

    @property
    def params(self) -> dict[str, ParamValue]:
        """The target state's hyper-parameters."""
        return self._run.target.params

    @property
    def init_checkpoint(self) -> str | None:
        """Local path of the checkpoint to start from; ``None``: initial weights."""
        return self._run.start_checkpoint()

    @property
    def epoch(self) -> int:
        """The last reported epoch (-1 before the first report)."""
        return len(self._run.values) - 1

    @property
    def values(self) -> list[float]:
        """A copy of the values reported so far."""
        return list(self._run.values)

    @property
    def decision(self) -> KneeDecision | None:
        """The knee rule's decision after the last report."""
        return self._run.decision

    @property
    def resumed(self) -> bool:
        """Whether this run resumes an interrupted transition."""
        return self._run.resumed_from is not None

    def should_stop(self) -> bool:
        """True once the knee rule (or the epoch bound) has ended the transition."""
        return self._run.stopped

    def epochs(self) -> Iterator[int]:
        """Yield the next epoch to run (0 first, unless resumed) until the rule stops it.

        After each yielded epoch the trainer must :meth:`report` once.
        """
        run = self._run
        while not run.stopped:
            expected = len(run.values)
            yield expected
            if len(run.values) != expected + 1 and not run.stopped:
                raise TrialProtocolError(
                    f"transition {edge_label(run.key)}: epoch {expected} was yielded but "
                    f"report() was called {len(run.values) - expected} times for it"
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
        return self._run.report(value, save)
