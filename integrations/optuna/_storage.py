"""A stageplan plan kept in an Optuna study: one Optuna trial per explored transition.

:class:`OptunaStorage` is the :class:`~stageplan.PlanStorage` the planner sees; it composes
the adapter's parts, one job each:

* :mod:`._connect`: the connection, opened once per process (again after a fork);
* :mod:`._checkpoints`: the checkpoint store the constructor's arguments choose;
* :mod:`._header`: the study's header (graph, settings, format version);
* :mod:`._chain`: a transition's trials, claims, staleness and take-overs;
* :mod:`._encoding`: the stored attribute names, and records as trial attributes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from stageplan.integrations.optuna._chain import PlanTrials
from stageplan.integrations.optuna._checkpoints import CheckpointChoice
from stageplan.integrations.optuna._connect import Connection
from stageplan.integrations.optuna._encoding import (
    ATTR_PREFIX,
    T_EDGE,
    T_PROGRESS,
    ParamSpace,
    final_state,
    jsonable,
    progress_attr,
    record_attrs,
)
from stageplan.integrations.optuna._header import open_study

from stageplan.storage import (
    CheckpointStore,
    ClaimLostError,
    EdgeKey,
    Progress,
    StorageError,
    TransitionRecord,
    edge_label,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["ATTR_PREFIX", "OptunaStorage"]

_TAKEN_OVER_ADVICE = "raise stale_after above the longest epoch"


class OptunaStorage:
    """Plan storage in an Optuna study: every explored transition is one Optuna trial.

    A transition's validation curve is its trial's intermediate values (step 0 is the start
    value), its knee value the trial's value (state ``COMPLETE``); a failed transition is a
    ``FAIL`` trial. The transition's source, target, knee epoch, stop reason, fit parameters,
    checkpoint reference, exact curve (NaN/inf kept as strings) and whole record are user
    attributes named ``stageplan:...``; the target state's hyper-parameters are the trial's
    params (categorical), so ``optuna.visualization`` and optuna-dashboard show a plan as is.
    The graph and the plan settings are study user attributes.

    Work sharing: the process that creates the study enqueues one ``WAITING`` trial per
    transition; a worker claims a transition by moving its trial to ``RUNNING`` with the
    storage's compare-and-set. Every reported epoch refreshes a heartbeat. A ``RUNNING`` trial
    whose heartbeat is older than ``stale_after`` (or whose process on this host is dead) is
    taken over: it is marked ``FAIL`` (compare-and-set, one winner) and a new trial continues
    the transition from its progress (values up to the last kept checkpoint).

    Storage strings:
        * ``"sqlite:///plan.db"``, ``"postgresql://user:pw@host/db"``, any SQLAlchemy URL
          Optuna's ``RDBStorage`` takes (``postgresql://`` uses psycopg2 when psycopg 3 is not
          installed);
        * ``"journal:<path>"``: a ``JournalStorage`` on a ``JournalFileBackend`` at ``<path>``
          (``journal:plan.log``, ``journal:/abs/plan.log``; ``journal:///abs/plan.log`` also
          works). Good for several processes on one machine or a shared POSIX file system.

    Or pass an ``optuna.storages.BaseStorage`` object. An ``InMemoryStorage`` works for one
    process only (``plan(..., workers=1)``).

    Checkpoints (choose at most one; the default depends on the storage):
        * ``checkpoints``: where every worker keeps checkpoints, in one argument: a directory
          path (``checkpoint_dir``), ``s3://bucket`` or ``gs://bucket`` (Optuna's
          ``Boto3ArtifactStore`` / ``GCSArtifactStore``; boto3 or google-cloud-storage must be
          installed), or an ``optuna.artifacts`` store object (``artifact_store``);
        * ``checkpoint_dir``: a plain directory (files and directories kept as written, a
          :class:`~stageplan.storage.DirectoryCheckpoints` store);
        * ``artifact_store``: any ``optuna.artifacts`` store (file system, S3, GCS); a
          checkpoint that is a directory is stored as a tar archive and unpacked on fetch;
        * ``artifacts_dir``: a ``FileSystemArtifactStore`` in that directory.
        * default: a ``FileSystemArtifactStore`` next to the file of a ``journal:`` or
          ``sqlite:///`` storage (``<file>.artifacts/``), a temporary directory for in-memory
          storage; PostgreSQL and other servers, and a ``JournalStorage`` object (it does
          not say where its file is), need one of the options above: :meth:`open` refuses
          such a storage, before any transition runs, with a message that says what to
          pass.

    Args:
        storage: A storage URL or an Optuna storage object.
        study_name: The study holding the plan (one plan per study).
        checkpoints: A checkpoint location (directory, ``s3://bucket``, ``gs://bucket``) or an
            ``optuna.artifacts`` store; what ``plan(..., checkpoints=...)`` and the command
            lines' ``--checkpoints`` pass.
        artifact_store: An ``optuna.artifacts`` store for checkpoints.
        artifacts_dir: Directory of a ``FileSystemArtifactStore`` for checkpoints.
        checkpoint_dir: A plain checkpoint directory instead of an artifact store.
        cache_dir: Local directory for scratch files and fetched checkpoints (default: a
            per-user folder in the system's temporary directory).
        journal_lock_grace: Seconds after which a journal file lock left by a killed process
            is broken.

    Example:
        >>> import tempfile, os
        >>> from stageplan import KneeRule, TransitionGraph, plan
        >>> from stageplan.integrations.optuna import OptunaStorage
        >>> folder = tempfile.mkdtemp()
        >>> store = OptunaStorage(f"journal:{os.path.join(folder, 'plan.log')}")
        >>> g = TransitionGraph.grid(("size", [8, 16]), ("lr", [0.1, 0.01]))
        >>> def fn(trial):
        ...     for epoch in trial.epochs():
        ...         trial.report(min(epoch, 12) / 12 * trial.params["size"])
        >>> p = plan(g, fn, storage=store, rule=KneeRule(delay=3), progress=False)
        >>> len(store.load_study().trials) == len(g.edges)  # one trial per transition
        True
    """

    #: Take over a running transition at once when its worker process on this host is dead
    #: (otherwise only after ``stale_after`` seconds without a heartbeat).
    _check_local_pids = True

    def __init__(
        self,
        storage: str | BaseStorage,
        *,
        study_name: str = "stageplan",
        checkpoints: str | os.PathLike[str] | Any | None = None,
        artifact_store: Any | None = None,
        artifacts_dir: str | os.PathLike[str] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        journal_lock_grace: int = 10,
    ) -> None:
        if isinstance(storage, os.PathLike):
            storage = os.fspath(storage)
        if isinstance(storage, str):
            if not storage.startswith("journal:") and "://" not in storage:
                raise ValueError(
                    f"storage must be a URL such as 'sqlite:///plan.db', "
                    f"'postgresql://user:pw@host/db' or 'journal:/path/plan.log', got {storage!r}"
                )
        elif not callable(getattr(storage, "create_new_study", None)):
            raise TypeError(
                "storage must be a storage URL or an optuna.storages.BaseStorage, got "
                f"{type(storage).__name__} {storage!r}"
            )
        if not isinstance(study_name, str) or not study_name:
            raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
        choice = CheckpointChoice.from_arguments(
            checkpoints=checkpoints,
            artifact_store=artifact_store,
            artifacts_dir=artifacts_dir,
            checkpoint_dir=checkpoint_dir,
        )
        if isinstance(journal_lock_grace, bool) or not isinstance(journal_lock_grace, int):
            raise ValueError(f"journal_lock_grace must be an int >= 3, got {journal_lock_grace!r}")
        if journal_lock_grace < 3:
            raise ValueError(f"journal_lock_grace must be an int >= 3, got {journal_lock_grace!r}")
        self.study_name = study_name
        self._conn = Connection(storage, lock_grace=journal_lock_grace)
        self._choice = choice
        self._cache_dir = None if cache_dir is None else str(cache_dir)
        self._ckpt: CheckpointStore | None = None
        self._space = ParamSpace()
        self._trials: PlanTrials | None = None

    # -- identity -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The storage as a string safe to print (passwords masked)."""
        return self._conn.label

    def __repr__(self) -> str:
        return f"OptunaStorage({self.label!r}, study_name={self.study_name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_trials"] = None  # claims belong to this process
        return state

    @property
    def process_safe(self) -> bool:
        """False for an in-memory Optuna storage: worker processes cannot share it."""
        return self._conn.process_safe

    @property
    def checkpoints(self) -> CheckpointStore:
        """Where this plan's checkpoints live (chosen by the constructor's arguments)."""
        if self._ckpt is None:
            self._ckpt = self._choice.open(
                self._conn, cache_dir=self._cache_dir, study_name=self.study_name
            )
        return self._ckpt

    def _plan_trials(self) -> PlanTrials:
        """This process's view of the study (made anew on a new connection, e.g. after fork)."""
        backend = self._conn.storage()
        if self._trials is None or self._trials.backend is not backend:
            self._trials = PlanTrials(
                backend,
                self.study_name,
                where=f"study {self.study_name!r} in {self.label}",
                space=self._space,
                checkpoints=lambda: self.checkpoints,
            )
        return self._trials

    def _backend(self) -> BaseStorage:
        """This process's Optuna storage (test and soak harnesses reach into it)."""
        return self._conn.storage()

    def _trial_id(self, trial: FrozenTrial) -> int:
        """The storage id of one of the plan study's trials (``optuna.trial.Trial`` takes it)."""
        return self._plan_trials().trial_id(trial)

    def load_study(self) -> Any:
        """The plan's ``optuna.Study`` (for plots and analysis)."""
        import optuna

        return optuna.load_study(study_name=self.study_name, storage=self._conn.storage())

    # -- the protocol ---------------------------------------------------------------------
    def open(self, graph: dict[str, Any], meta: dict[str, Any]) -> None:
        self.checkpoints  # noqa: B018 - refuse a storage with no checkpoint location at once
        trials = self._plan_trials()
        self._space.learn(jsonable(graph))

        def populate(study_id: int) -> None:  # a trial for every transition with none
            trials.study_id = study_id
            have = {t.user_attrs.get(T_EDGE) for t in trials.study_trials()}
            for source, target in graph.get("edges", []):
                edge = (str(source), str(target))
                if edge_label(edge) not in have:
                    trials.create(edge, takes_over=None)

        trials.study_id = open_study(
            trials.backend,
            self.study_name,
            graph,
            meta,
            where=trials.where,
            populate=populate,
        )

    def records(self) -> dict[EdgeKey, TransitionRecord]:
        return self._plan_trials().records()

    def claim(self, edge: EdgeKey, *, worker: str, stale_after: float) -> Progress | None:
        return self._plan_trials().claim(
            edge, worker=worker, stale_after=stale_after, check_local_pid=self._check_local_pids
        )

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Give up a claim without a record (the run was interrupted, e.g. by Ctrl-C).

        The claimed trial is marked ``FAIL`` as released and a ``WAITING`` successor that
        continues from the stored progress is enqueued at once, so any worker, on any host,
        takes the transition over immediately instead of waiting out ``stale_after``.
        """
        self._plan_trials().release(edge, worker=worker)

    def save_progress(self, edge: EdgeKey, progress: Progress, *, worker: str) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        trials = self._plan_trials()
        claim = trials.claim_of(edge, worker)
        try:
            trials.write_values(claim, progress.values)
            trials.backend.set_trial_user_attr(
                claim.trial_id, T_PROGRESS, progress_attr(progress, worker)
            )
        except UpdateFinishedTrialError:
            trials.claims.pop(edge, None)
            trials.lost.add(edge)
            raise ClaimLostError(
                f"transition {edge_label(edge)} was taken over by another worker (no "
                f"heartbeat for longer than stale_after); {worker} stops running it"
            ) from None

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        trials = self._plan_trials()
        edge = record.edge
        claim = trials.claims.get(edge)
        if claim is None and edge in trials.lost:
            trials.lost.discard(edge)
            raise ClaimLostError(
                f"transition {edge_label(edge)}: the result of {worker} is dropped: another "
                f"worker took the transition over ({_TAKEN_OVER_ADVICE})"
            )
        if claim is None:
            if edge in trials.records():
                return  # finished already
            raise StorageError(
                f"transition {edge_label(edge)} is not claimed by this process ({worker}); "
                "claim() it first"
            )
        state, value = final_state(record)
        try:
            trials.write_values(claim, record.values)
            for key, val in record_attrs(record).items():  # the whole record comes last
                trials.backend.set_trial_user_attr(claim.trial_id, key, val)
            trials.backend.set_trial_state_values(
                claim.trial_id, state, None if value is None else [value]
            )
        except UpdateFinishedTrialError:
            trials.claims.pop(edge, None)
            raise ClaimLostError(
                f"transition {edge_label(edge)}: {worker} finished it after another worker "
                f"took it over; its result is dropped ({_TAKEN_OVER_ADVICE})"
            ) from None
        trials.claims.pop(edge, None)
