"""A stageplan plan kept in an Optuna study: one Optuna trial per explored transition."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageplan.integrations.optuna._checkpoints import (
    ArtifactCheckpoints,
    DirectoryCheckpoints,
    copy_into,
)
from stageplan.integrations.optuna._connect import (
    forget_inherited,
    journal_path,
    mask,
    open_storage,
)

from stageplan.storage import (
    ClaimLostError,
    EdgeKey,
    Progress,
    StorageError,
    StorageMismatchError,
    TransitionRecord,
    describe_mismatch,
    edge_label,
    pid_alive,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["OptunaStorage", "ATTR_PREFIX"]

_log = logging.getLogger("stageplan.integrations.optuna")

ATTR_PREFIX = "stageplan:"
_FORMAT = "stageplan-optuna"
_VERSION = 1

# Study user attributes.
S_FORMAT = ATTR_PREFIX + "format"
S_VERSION = ATTR_PREFIX + "version"
S_GRAPH = ATTR_PREFIX + "graph"
S_META = ATTR_PREFIX + "meta"

# Trial user attributes.
T_EDGE = ATTR_PREFIX + "edge"  # "source -> target"
T_SOURCE = ATTR_PREFIX + "source"
T_TARGET = ATTR_PREFIX + "target"
T_TAKES_OVER = ATTR_PREFIX + "takes_over"  # number of the trial this one continues, or None
T_OWNER = ATTR_PREFIX + "owner"  # {"worker", "host", "pid", "time"} written at claim
T_PROGRESS = ATTR_PREFIX + "progress"  # {"progress": Progress.to_dict(), "heartbeat", "worker"}
T_TAKEN_OVER = ATTR_PREFIX + "taken_over_by"
T_SUPERSEDED = ATTR_PREFIX + "superseded"
T_CURVE = ATTR_PREFIX + "curve"  # the exact curve, non-finite values as "nan"/"inf"/"-inf"
T_STATUS = ATTR_PREFIX + "status"
T_KNEE = ATTR_PREFIX + "knee_epoch"
T_CKPT_EPOCH = ATTR_PREFIX + "checkpoint_epoch"
T_REASON = ATTR_PREFIX + "stop_reason"
T_FIT = ATTR_PREFIX + "fit_params"
T_CKPT = ATTR_PREFIX + "checkpoint"
T_ERROR = ATTR_PREFIX + "error"
T_WORKER = ATTR_PREFIX + "worker"
T_RECORD = ATTR_PREFIX + "record"  # the whole TransitionRecord; written last before the state

_HEADER_WAIT_S = 15.0


def _jsonable(data: Any) -> Any:
    """``data`` as it reads back from any Optuna storage (JSON round trip)."""
    return json.loads(json.dumps(data))


def _json_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


_SUCCESSOR_GRACE_S = 30.0
"""Seconds a take-over's successor trial may take to appear before another worker makes it."""


def chain_head(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The trial that currently stands for a transition.

    A transition's trials form a chain: the first trial (``takes_over`` is ``None``), then
    the trial that took it over, and so on. When several trials claim the same place (two
    workers raced to create it), the lowest-numbered one counts and the others are ignored.
    Returns ``None`` for a transition with no trial yet.
    """
    child: dict[int, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        pred = t.user_attrs.get(T_TAKES_OVER)
        key = -1 if pred is None else int(pred)
        child.setdefault(key, t)
    head = child.get(-1)
    if head is None:
        return None
    seen = {head.number}
    while head.number in child:
        head = child[head.number]
        if head.number in seen:  # a corrupt cycle; stop rather than loop forever
            break
        seen.add(head.number)
    return head


@dataclass
class _Claim:
    """What this process knows about a transition it runs."""

    trial_id: int
    number: int
    written: list[float] = field(default_factory=list)
    saved_refs: set[str] = field(default_factory=set)
    pending_deletes: set[str] = field(default_factory=set)


def _direction(mode: Any) -> Any:
    from optuna.study import StudyDirection

    return StudyDirection.MINIMIZE if mode == "min" else StudyDirection.MAXIMIZE


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
        * ``checkpoint_dir``: a plain directory (files and directories kept as written);
        * ``artifact_store``: any ``optuna.artifacts`` store (file system, S3, GCS); a
          checkpoint that is a directory is stored as a tar archive and unpacked on fetch;
        * ``artifacts_dir``: a ``FileSystemArtifactStore`` in that directory.
        * default: a ``FileSystemArtifactStore`` next to the file of a ``journal:`` or
          ``sqlite:///`` storage (``<file>.artifacts/``), a temporary directory for in-memory
          storage; PostgreSQL and other servers need one of the options above:
          :meth:`open` refuses such a storage, before any transition runs, with a message
          that says what to pass.

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
        self._bucket_url: str | None = None
        if checkpoints is not None:
            if isinstance(checkpoints, os.PathLike):
                checkpoints = os.fspath(checkpoints)
            if isinstance(checkpoints, str):
                kind, value = _checkpoint_location(checkpoints)
                if kind == "bucket":
                    self._bucket_url = value
                elif checkpoint_dir is None:
                    checkpoint_dir = value
                else:
                    raise ValueError(
                        "pass at most one of checkpoints, checkpoint_dir; got both "
                        f"({checkpoints!r}, {checkpoint_dir!r})"
                    )
            elif artifact_store is None:
                artifact_store = checkpoints
            else:
                raise ValueError("pass at most one of checkpoints, artifact_store; got both")
        chosen = [
            n
            for n, v in (
                ("checkpoints (s3:// or gs://)", self._bucket_url),
                ("artifact_store", artifact_store),
                ("artifacts_dir", artifacts_dir),
                ("checkpoint_dir", checkpoint_dir),
            )
            if v is not None
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"pass at most one of artifact_store, artifacts_dir, checkpoint_dir; got {chosen}"
            )
        if isinstance(journal_lock_grace, bool) or not isinstance(journal_lock_grace, int):
            raise ValueError(f"journal_lock_grace must be an int >= 3, got {journal_lock_grace!r}")
        if journal_lock_grace < 3:
            raise ValueError(f"journal_lock_grace must be an int >= 3, got {journal_lock_grace!r}")
        self._spec: str | BaseStorage = storage
        self.study_name = study_name
        self._artifact_store = artifact_store
        self._artifacts_dir = None if artifacts_dir is None else str(artifacts_dir)
        self._checkpoint_dir = None if checkpoint_dir is None else str(checkpoint_dir)
        self._cache_dir = None if cache_dir is None else str(cache_dir)
        self._journal_lock_grace = journal_lock_grace
        self._origin_pid = os.getpid()
        self._pid: int | None = None
        self._optuna: BaseStorage | None = None
        self._study_id: int | None = None
        self._claims: dict[EdgeKey, _Claim] = {}
        self._surrendered: set[str] = set()
        self._lost: set[EdgeKey] = set()
        self._ckpt: ArtifactCheckpoints | DirectoryCheckpoints | None = None
        self._params: dict[str, dict[str, Any]] = {}
        self._choices: dict[str, list[Any]] = {}

    # -- identity -------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """The storage as a string safe to print (passwords masked)."""
        if isinstance(self._spec, str):
            return mask(self._spec)
        url = getattr(self._spec, "url", None) or getattr(
            getattr(self._spec, "_backend", None), "url", None
        )
        if isinstance(url, str):
            return mask(url)
        return type(self._spec).__name__

    def __repr__(self) -> str:
        return f"OptunaStorage({self.label!r}, study_name={self.study_name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_optuna"] = None
        state["_pid"] = None
        state["_claims"] = {}
        state["_surrendered"] = set()
        state["_lost"] = set()
        state["_study_id"] = None
        return state

    # -- connection -----------------------------------------------------------------------
    def _backend(self) -> BaseStorage:
        pid = os.getpid()
        if self._optuna is None or self._pid != pid:
            inherited = self._optuna
            if inherited is not None:
                forget_inherited(inherited)
            self._optuna = None
            self._claims = {}
            self._surrendered = set()
            self._lost = set()
            self._study_id = None
            self._optuna = self._connect(pid)
            self._pid = pid
        return self._optuna

    def _connect(self, pid: int) -> BaseStorage:
        spec = self._spec
        if isinstance(spec, str):
            return open_storage(spec, self._journal_lock_grace)
        if pid == self._origin_pid:
            return spec
        from optuna.storages import InMemoryStorage

        if isinstance(spec, InMemoryStorage):
            raise StorageError(
                "an Optuna InMemoryStorage cannot be shared with worker processes: use "
                "plan(..., workers=1), or a 'journal:/path/plan.log' or database storage"
            )
        # A fresh copy for this process: new engine (RDB) or new worker identity (journal).
        copy: BaseStorage = pickle.loads(pickle.dumps(spec))
        return copy

    def _sid(self) -> int:
        backend = self._backend()
        if self._study_id is None:
            try:
                self._study_id = backend.get_study_id_from_name(self.study_name)
            except KeyError:
                raise StorageError(
                    f"{self.label} has no study {self.study_name!r}; call plan() (or open()) "
                    "to create it"
                ) from None
        return self._study_id

    def load_study(self) -> Any:
        """The plan's ``optuna.Study`` (for plots and analysis)."""
        import optuna

        return optuna.load_study(study_name=self.study_name, storage=self._backend())

    # -- checkpoints ----------------------------------------------------------------------
    def _checkpoints(self) -> ArtifactCheckpoints | DirectoryCheckpoints:
        if self._ckpt is not None:
            return self._ckpt
        if self._checkpoint_dir is not None:
            self._ckpt = DirectoryCheckpoints(self._checkpoint_dir)
            return self._ckpt
        store = self._artifact_store
        folder: str | None = None
        if store is None and self._bucket_url is not None:
            store = _bucket_store(self._bucket_url)
        if store is None:
            folder = self._artifacts_dir or self._default_artifacts_dir()
            if folder is None:
                raise StorageError(
                    f"storage {self.label} has no checkpoint location: a database server "
                    "cannot hold checkpoints, so name a place every worker can reach: "
                    "plan(..., checkpoints='/shared/checkpoints' or 's3://bucket'), "
                    "--checkpoints on the stageplan/video3d command line, or "
                    "OptunaStorage(..., checkpoints=...)"
                )
            from optuna.artifacts import FileSystemArtifactStore

            Path(folder).mkdir(parents=True, exist_ok=True)
            store = FileSystemArtifactStore(folder)
        self._ckpt = ArtifactCheckpoints(store, self._cache_root(), folder=folder)
        return self._ckpt

    def _file_of_storage(self) -> str | None:
        spec = self._spec
        url: Any = spec if isinstance(spec, str) else getattr(spec, "url", None)
        if isinstance(url, str):
            if url.startswith("journal:"):
                return journal_path(url)
            if url.startswith("sqlite:///") and ":memory:" not in url and len(url) > 10:
                return url[len("sqlite:///") :]
            return None
        backend = getattr(spec, "_backend", None)
        path = getattr(backend, "_file_path", None)
        return path if isinstance(path, str) else None

    @property
    def process_safe(self) -> bool:
        """False for an in-memory Optuna storage: worker processes cannot share it."""
        from optuna.storages import InMemoryStorage

        return not isinstance(self._spec, InMemoryStorage)

    def _default_artifacts_dir(self) -> str | None:
        path = self._file_of_storage()
        if path is not None:
            return path + ".artifacts"
        from optuna.storages import InMemoryStorage

        url = self._spec if isinstance(self._spec, str) else getattr(self._spec, "url", "")
        if isinstance(self._spec, InMemoryStorage) or ":memory:" in str(url):
            return tempfile.mkdtemp(prefix="stageplan-artifacts-")
        return None

    def _cache_root(self) -> str:
        if self._cache_dir is not None:
            return self._cache_dir
        import hashlib

        key = hashlib.sha1(f"{self.label}|{self.study_name}".encode()).hexdigest()[:12]
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return str(Path(tempfile.gettempdir()) / f"stageplan-optuna-{uid}" / key)

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        return self._checkpoints().checkpoint_path(edge, epoch)

    def store_checkpoint(self, edge: EdgeKey, epoch: int, path: str) -> str:
        return self._checkpoints().store(edge, epoch, path)

    def fetch_checkpoint(self, ref: str) -> str:
        return self._checkpoints().fetch(ref)

    def delete_checkpoint(self, ref: str) -> None:
        # A checkpoint named in the progress stored last may be resumed by a worker that
        # takes this transition over: delete it only once newer progress is stored.
        for claim in self._claims.values():
            if ref in claim.saved_refs:
                claim.pending_deletes.add(ref)
                return
        if ref in self._surrendered:
            return  # a worker that took this transition over resumes from it
        self._checkpoints().delete(ref)

    def copy_checkpoint(self, ref: str, edge: EdgeKey, epoch: int) -> str:
        return copy_into(self._checkpoints(), ref, edge, epoch)

    # -- the plan header ------------------------------------------------------------------
    def open(self, graph: dict[str, Any], meta: dict[str, Any]) -> None:
        from optuna.exceptions import DuplicatedStudyError

        self._checkpoints()  # refuse a storage with no checkpoint location before any work
        backend = self._backend()
        wanted_graph = _jsonable(graph)
        wanted_meta = _jsonable(meta)
        self._learn_graph(wanted_graph)
        try:
            study_id = backend.create_new_study([_direction(meta.get("mode"))], self.study_name)
        except DuplicatedStudyError:
            study_id = backend.get_study_id_from_name(self.study_name)
        else:
            backend.set_study_user_attr(study_id, S_GRAPH, wanted_graph)
            backend.set_study_user_attr(study_id, S_META, wanted_meta)
            backend.set_study_user_attr(study_id, S_VERSION, _VERSION)
            self._study_id = study_id
            for source, target in wanted_graph.get("edges", []):
                self._create_trial((source, target), takes_over=None)
            # The marker goes last: other workers wait for it, so none of them sees a study
            # whose first trials are still being enqueued (and makes duplicates of them).
            backend.set_study_user_attr(study_id, S_FORMAT, _FORMAT)
            return
        self._study_id = study_id
        attrs = self._wait_for_header(study_id)
        where = f"study {self.study_name!r} in {self.label}"
        if attrs.get(S_VERSION) != _VERSION:
            raise StorageMismatchError(
                f"{where} uses stageplan storage format version {attrs.get(S_VERSION)!r}; "
                f"this stageplan reads version {_VERSION}"
            )
        if attrs.get(S_GRAPH) != wanted_graph:
            raise StorageMismatchError(
                f"{where} holds a plan for another transition graph "
                f"({describe_mismatch(attrs.get(S_GRAPH), wanted_graph)}); use a new "
                "study_name or the original graph"
            )
        if attrs.get(S_META) != wanted_meta:
            raise StorageMismatchError(
                f"{where} holds a plan made with other settings "
                f"({describe_mismatch(attrs.get(S_META), wanted_meta)}); use a new "
                "study_name or the original settings"
            )

    def _wait_for_header(self, study_id: int) -> dict[str, Any]:
        backend = self._backend()
        deadline = time.monotonic() + _HEADER_WAIT_S
        while True:
            attrs = backend.get_study_user_attrs(study_id)
            if attrs.get(S_FORMAT) == _FORMAT:
                return attrs
            ours_only = all(k.startswith(ATTR_PREFIX) for k in attrs)
            trials = backend.get_all_trials(study_id, deepcopy=False)
            n_trials = len(trials)
            ours_only = ours_only and all(T_EDGE in t.user_attrs for t in trials)
            being_made = ours_only and S_FORMAT not in attrs
            if not being_made or time.monotonic() > deadline:
                raise StorageError(
                    f"study {self.study_name!r} in {self.label} is not a stageplan study (it has "
                    f"{n_trials} trials and user attributes {sorted(attrs)[:8]}, no "
                    f"{S_FORMAT!r}={_FORMAT!r}); pass another study_name"
                )
            time.sleep(0.1)  # another process is creating it right now

    def _learn_graph(self, graph: Mapping[str, Any]) -> None:
        params: dict[str, dict[str, Any]] = {}
        choices: dict[str, list[Any]] = {}
        for state in graph.get("states", []):
            p = {
                k: v
                for k, v in dict(state.get("params", {})).items()
                if v is None or isinstance(v, (bool, int, float, str))
            }
            params[str(state["name"])] = p
            for k, v in p.items():
                known = choices.setdefault(k, [])
                if v not in known or any(type(v) is not type(c) for c in known if c == v):
                    known.append(v)
        self._params = params
        self._choices = choices

    # -- trials ---------------------------------------------------------------------------
    def _edge_trials(self, edge: EdgeKey) -> list[FrozenTrial]:
        label = edge_label(edge)
        trials = self._backend().get_all_trials(self._sid(), deepcopy=False)
        return [t for t in trials if t.user_attrs.get(T_EDGE) == label]

    def _create_trial(
        self,
        edge: EdgeKey,
        *,
        takes_over: int | None,
        progress: Any = None,
        intermediate: dict[int, float] | None = None,
        record: TransitionRecord | None = None,
    ) -> int:
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import FrozenTrial, TrialState

        params: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        for k, v in self._params.get(edge[1], {}).items():
            if k in self._choices:
                params[k] = v
                dists[k] = CategoricalDistribution(self._choices[k])
        attrs: dict[str, Any] = {
            T_EDGE: edge_label(edge),
            T_SOURCE: edge[0],
            T_TARGET: edge[1],
            T_TAKES_OVER: takes_over,
        }
        if progress is not None:
            attrs[T_PROGRESS] = progress
        state, value = TrialState.WAITING, None
        now = datetime.now()
        if record is not None:
            attrs.update(_record_attrs(record))
            state, value = _final_state(record)
        template = FrozenTrial(
            number=-1,
            state=state,
            value=value,
            datetime_start=now if record is not None else None,
            datetime_complete=now if record is not None else None,
            params=params,
            distributions=dists,
            user_attrs=attrs,
            system_attrs={},
            intermediate_values=dict(intermediate or {}),
            trial_id=-1,
        )
        return self._backend().create_new_trial(self._sid(), template_trial=template)

    # -- records --------------------------------------------------------------------------
    def records(self) -> dict[EdgeKey, TransitionRecord]:
        grouped: dict[str, list[FrozenTrial]] = {}
        for t in self._backend().get_all_trials(self._sid(), deepcopy=False):
            label = t.user_attrs.get(T_EDGE)
            if isinstance(label, str):
                grouped.setdefault(label, []).append(t)
        out: dict[EdgeKey, TransitionRecord] = {}
        for trials in grouped.values():
            head = chain_head(trials)
            if head is None or not head.state.is_finished():
                continue
            data = head.user_attrs.get(T_RECORD)
            if not isinstance(data, dict):
                continue  # taken over; its successor is not created yet
            rec = TransitionRecord.from_dict(data)
            out[rec.edge] = rec
        return out

    # -- claims ---------------------------------------------------------------------------
    def claim(self, edge: EdgeKey, *, worker: str, stale_after: float) -> Progress | None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        backend = self._backend()
        if edge in self._claims:
            raise StorageError(
                f"transition {edge_label(edge)} is already claimed by this process ({worker})"
            )
        for _ in range(6):
            head = chain_head(self._edge_trials(edge))
            if head is None:
                self._create_trial(edge, takes_over=None)
                continue
            if head.state.is_finished():
                if isinstance(head.user_attrs.get(T_RECORD), dict):
                    return None  # finished
                if head.user_attrs.get(T_SUPERSEDED):
                    return None  # cannot happen for a head; be safe
                taken = head.user_attrs.get(T_TAKEN_OVER)
                when = taken.get("time") if isinstance(taken, dict) else None
                if isinstance(when, (int, float)) and time.time() - when < _SUCCESSOR_GRACE_S:
                    return None  # its taker is creating the successor right now
                self._create_successor(edge, head)  # a taker died before making it
                continue
            if head.state == TrialState.RUNNING:
                if not self._is_stale(head, stale_after):
                    return None
                if isinstance(head.user_attrs.get(T_RECORD), dict):
                    self._complete_on_behalf(head)
                    return None
                if not self._take_over(edge, head, worker):
                    return None
                continue
            # WAITING: compare-and-set to RUNNING; exactly one process wins.
            try:
                won = backend.set_trial_state_values(head._trial_id, TrialState.RUNNING)
            except UpdateFinishedTrialError:
                continue
            if not won:
                return None
            again = chain_head(self._edge_trials(edge))
            if again is None or again.number != head.number:
                # A lower-numbered duplicate became visible after we read: it counts.
                self._release(head._trial_id)
                return None
            now = time.time()
            owner = {
                "worker": worker,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": now,
            }
            backend.set_trial_user_attr(head._trial_id, T_OWNER, owner)
            stored = head.user_attrs.get(T_PROGRESS)
            progress = (
                Progress.from_dict(stored.get("progress", {}))
                if isinstance(stored, dict)
                else Progress()
            )
            steps = sorted(head.intermediate_values)
            written = (
                [head.intermediate_values[s] for s in steps]
                if steps == list(range(len(steps)))
                else []
            )
            self._claims[edge] = _Claim(
                trial_id=head._trial_id,
                number=head.number,
                written=written,
                saved_refs=set(progress.checkpoints.values()),
            )
            return progress
        return None

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Give up a claim without a record (the run was interrupted, e.g. by Ctrl-C).

        The claimed trial is marked ``FAIL`` as released and a ``WAITING`` successor that
        continues from the stored progress is enqueued at once, so any worker, on any host,
        takes the transition over immediately instead of waiting out ``stale_after``.
        """
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        claim = self._claims.pop(edge, None)
        if claim is None:
            return
        backend = self._backend()
        try:
            backend.set_trial_user_attr(
                claim.trial_id,
                T_TAKEN_OVER,
                {"worker": worker, "time": time.time(), "released": True},
            )
            backend.set_trial_state_values(claim.trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return  # finished, or taken over meanwhile: nothing of ours to give back
        self._flush_deletes(claim, keep=claim.saved_refs)
        self._create_successor(edge, backend.get_trial(claim.trial_id))
        _log.info("transition %s: released by %s (interrupted)", edge_label(edge), worker)

    def _release(self, trial_id: int) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        backend = self._backend()
        try:
            backend.set_trial_user_attr(trial_id, T_SUPERSEDED, True)
            backend.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass

    def _is_stale(self, trial: FrozenTrial, stale_after: float) -> bool:
        owner = trial.user_attrs.get(T_OWNER)
        beats: list[float] = []
        if isinstance(owner, dict):
            if (
                self._check_local_pids
                and owner.get("host") == socket.gethostname()
                and isinstance(owner.get("pid"), int)
                and not pid_alive(owner["pid"])
            ):
                return True
            if isinstance(owner.get("time"), (int, float)):
                beats.append(float(owner["time"]))
            stored = trial.user_attrs.get(T_PROGRESS)
            if isinstance(stored, dict) and stored.get("worker") == owner.get("worker"):
                hb = stored.get("heartbeat")
                if isinstance(hb, (int, float)):
                    beats.append(float(hb))
        if not beats and trial.datetime_start is not None:
            beats.append(trial.datetime_start.timestamp())
        if not beats:
            return True
        return time.time() - max(beats) > stale_after

    def _take_over(self, edge: EdgeKey, head: FrozenTrial, worker: str) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        backend = self._backend()
        try:
            backend.set_trial_user_attr(
                head._trial_id, T_TAKEN_OVER, {"worker": worker, "time": time.time()}
            )
            backend.set_trial_state_values(head._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False  # it finished, or another worker took it over first
        old = backend.get_trial(head._trial_id)  # frozen now: its final progress
        data = old.user_attrs.get(T_RECORD)
        owner = old.user_attrs.get(T_OWNER, {})
        _log.warning(
            "transition %s: worker %s stopped reporting; taken over by %s",
            edge_label(edge),
            owner.get("worker") if isinstance(owner, dict) else None,
            worker,
        )
        if isinstance(data, dict):
            # Its worker stored the record just before we took over: keep that result.
            self._finish_copy(edge, old, TransitionRecord.from_dict(data))
        else:
            self._create_successor(edge, old)
        return True

    def _create_successor(self, edge: EdgeKey, old: FrozenTrial) -> None:
        stored = old.user_attrs.get(T_PROGRESS)
        progress = (
            Progress.from_dict(stored.get("progress", {})) if isinstance(stored, dict) else None
        )
        intermediate: dict[int, float] = {}
        if progress is not None:
            kept = [e for e in progress.checkpoints if 0 < e < len(progress.values)]
            if kept:
                last = max(kept)
                intermediate = {s: v for s, v in old.intermediate_values.items() if s <= last}
        self._create_trial(edge, takes_over=old.number, progress=stored, intermediate=intermediate)

    def _finish_copy(self, edge: EdgeKey, old: FrozenTrial, record: TransitionRecord) -> None:
        """Keep a record whose trial was failed by a take-over, as a finished successor."""
        self._create_trial(
            edge,
            takes_over=old.number,
            intermediate=dict(old.intermediate_values),
            record=record,
        )
        self._drop_leftovers(old, record)

    def _complete_on_behalf(self, head: FrozenTrial) -> None:
        """A worker stored its record and died before marking the trial finished."""
        from optuna.exceptions import UpdateFinishedTrialError

        record = TransitionRecord.from_dict(head.user_attrs[T_RECORD])
        state, value = _final_state(record)
        try:
            self._backend().set_trial_state_values(
                head._trial_id, state, None if value is None else [value]
            )
        except UpdateFinishedTrialError:
            return
        self._drop_leftovers(head, record)

    def _drop_leftovers(self, trial: FrozenTrial, record: TransitionRecord) -> None:
        stored = trial.user_attrs.get(T_PROGRESS)
        if not isinstance(stored, dict):
            return
        progress = Progress.from_dict(stored.get("progress", {}))
        for ref in progress.checkpoints.values():
            if ref != record.checkpoint:
                self._checkpoints().delete(ref)
        self._checkpoints().sweep(record.edge, {record.checkpoint} if record.checkpoint else set())

    # -- progress and results -------------------------------------------------------------
    def _claim_of(self, edge: EdgeKey, worker: str) -> _Claim:
        self._backend()
        claim = self._claims.get(edge)
        if claim is None:
            raise StorageError(
                f"transition {edge_label(edge)} is not claimed by this process ({worker}); "
                "claim() it first"
            )
        return claim

    def _write_values(self, claim: _Claim, values: list[float]) -> None:
        backend = self._backend()
        for step, v in enumerate(values):
            if step < len(claim.written) and _same(claim.written[step], v):
                continue
            backend.set_trial_intermediate_value(claim.trial_id, step, v)
        claim.written = list(values)

    def save_progress(self, edge: EdgeKey, progress: Progress, *, worker: str) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        claim = self._claim_of(edge, worker)
        stored = {"progress": progress.to_dict(), "heartbeat": time.time(), "worker": worker}
        try:
            self._write_values(claim, progress.values)
            self._backend().set_trial_user_attr(claim.trial_id, T_PROGRESS, stored)
        except UpdateFinishedTrialError:
            self._claims.pop(edge, None)
            self._lost.add(edge)
            self._surrendered |= claim.saved_refs  # the taker resumes from these
            raise ClaimLostError(
                f"transition {edge_label(edge)} was taken over by another worker (no "
                f"heartbeat for longer than stale_after); {worker} stops running it"
            ) from None
        claim.saved_refs = set(progress.checkpoints.values())
        self._flush_deletes(claim, keep=claim.saved_refs)

    def _flush_deletes(self, claim: _Claim, keep: set[str]) -> None:
        for ref in sorted(claim.pending_deletes - keep):
            self._checkpoints().delete(ref)
        claim.pending_deletes &= keep

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        self._backend()
        claim = self._claims.get(record.edge)
        if claim is None and record.edge in self._lost:
            self._lost.discard(record.edge)
            _log.warning(
                "transition %s: the result of %s is dropped: another worker took the "
                "transition over (raise stale_after above the longest epoch)",
                edge_label(record.edge),
                worker,
            )
            return
        if claim is None:
            if record.edge in self.records():
                return  # finished already
            raise StorageError(
                f"transition {edge_label(record.edge)} is not claimed by this process "
                f"({worker}); claim() it first"
            )
        backend = self._backend()
        state, value = _final_state(record)
        try:
            self._write_values(claim, record.values)
            for key, val in _record_attrs(record).items():
                backend.set_trial_user_attr(claim.trial_id, key, val)  # T_RECORD comes last
            backend.set_trial_state_values(
                claim.trial_id, state, None if value is None else [value]
            )
        except UpdateFinishedTrialError:
            self._claims.pop(record.edge, None)
            self._surrendered |= claim.saved_refs
            _log.warning(
                "transition %s: %s finished it after another worker took it over; its "
                "result is dropped (raise stale_after above the longest epoch)",
                edge_label(record.edge),
                worker,
            )
            if record.checkpoint and record.checkpoint not in claim.saved_refs:
                self._checkpoints().delete(record.checkpoint)
            return
        self._claims.pop(record.edge, None)
        keep = {record.checkpoint} if record.checkpoint else set()
        claim.pending_deletes -= keep
        self._flush_deletes(claim, keep=set())
        self._checkpoints().sweep(record.edge, keep)


def _record_attrs(record: TransitionRecord) -> dict[str, Any]:
    """User attributes describing a finished transition; the whole record comes last."""
    decision = record.decision or {}
    attrs: dict[str, Any] = {
        T_CURVE: [_json_float(v) for v in record.values],
        T_STATUS: record.status,
        T_KNEE: record.knee_epoch,
        T_CKPT_EPOCH: record.checkpoint_epoch,
        T_REASON: decision.get("reason"),
        T_FIT: decision.get("params"),
        T_CKPT: record.checkpoint,
        T_WORKER: record.worker,
    }
    if record.error is not None:
        attrs[T_ERROR] = record.error
    attrs[T_RECORD] = _jsonable(record.to_dict())
    return attrs


def _final_state(record: TransitionRecord) -> tuple[Any, float | None]:
    from optuna.trial import TrialState

    value = record.value
    if record.status == "complete" and value is not None and math.isfinite(value):
        return TrialState.COMPLETE, float(value)
    return TrialState.FAIL, None


def _checkpoint_location(text: str) -> tuple[str, str]:
    """Classify a ``checkpoints`` string: ``("bucket", url)`` or ``("dir", path)``."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        if not text.strip():
            raise ValueError("checkpoints must name a directory or a bucket URL, got ''")
        return "dir", text
    if scheme == "file":
        return "dir", rest
    if scheme in ("s3", "gs"):
        bucket = rest.strip("/")
        if not bucket or "/" in bucket:
            raise ValueError(
                f"checkpoints {text!r}: expected {scheme}://<bucket> (a bucket of its own; "
                "Optuna's artifact stores take no key prefix)"
            )
        return "bucket", f"{scheme}://{bucket}"
    raise ValueError(
        f"checkpoints {text!r}: expected a directory path, file://<dir>, s3://<bucket> or "
        "gs://<bucket>"
    )


def _bucket_store(url: str) -> Any:
    """Optuna's artifact store for an ``s3://`` or ``gs://`` bucket."""
    scheme, _, bucket = url.partition("://")
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            return Boto3ArtifactStore(bucket)
        from optuna.artifacts import GCSArtifactStore

        return GCSArtifactStore(bucket)
    except ImportError as exc:
        package = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise StorageError(
            f"checkpoints {url!r} need the {package} package (pip install {package}): {exc}"
        ) from exc
