"""Connecting to the Optuna storage a plan lives in, in every process that uses it.

:class:`Connection` holds what the user passed (a URL or an Optuna storage object) and opens
it once per process, again after a fork. :func:`open_storage` opens a URL: a journal file or
a SQLAlchemy database.

Optuna's ``RDBStorage`` creates its schema (tables, and on PostgreSQL enum types such as
``studydirection``) the first time it connects to a database. Several processes doing that
at once on a new PostgreSQL database fail with ``UniqueViolation`` on
``pg_type_typname_nsp_index`` (optuna/optuna#1092; the maintainers' advice is to create the
schema once before starting workers). A fleet of workers started against a new database is
exactly that situation, so on PostgreSQL the schema step runs under a session-level advisory
lock: one process creates the schema while the others wait, then find it and go on. The lock
is tied to its connection, so a process killed while holding it releases it at once, and no
timing guess is involved (a retry loop would have to guess how long the winner takes). Other
databases (SQLite, MySQL) get a bounded retry of the same step instead: they have no advisory
lock of this kind, and their race is a "table already exists" error that a second attempt
resolves.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from stageplan.storage import StorageError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["Connection", "forget_inherited", "journal_path", "mask", "open_storage"]

#: Advisory-lock key shared by every stageplan process on a PostgreSQL server ("stgpln").
SCHEMA_LOCK_KEY = 0x737467706C6E
_SCHEMA_RETRIES = 5

T = TypeVar("T")


def mask(url: str) -> str:
    """Hide the password of a database URL.

    >>> mask("postgresql://user:secret@db/plans")
    'postgresql://user:***@db/plans'
    """
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def journal_path(url: str) -> str:
    """The file a ``journal:`` URL names.

    >>> journal_path("journal:///abs/plan.log"), journal_path("journal:plan.log")
    ('/abs/plan.log', 'plan.log')
    """
    path = url[len("journal:") :]
    if path.startswith("//"):
        path = path[2:]
    return path


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def open_storage(url: str, lock_grace: int) -> BaseStorage:
    """Open the Optuna storage a URL names, with errors that name it."""
    if url.startswith("journal:"):
        return _open_journal(url, lock_grace)
    scheme, _, rest = url.partition("://")
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    postgres = scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+")
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+psycopg2" if _has("psycopg2") and not _has("psycopg") else scheme
        url = f"{scheme}://{rest}"
    if postgres:
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    sqlite = scheme.startswith("sqlite")
    if sqlite:
        engine_kwargs["connect_args"] = {"timeout": 60}  # wait for the write lock, not fail
    try:
        if postgres:
            with _postgres_schema_lock(url, engine_kwargs):
                return _rdb(url, engine_kwargs)
        storage = _retry_schema_race(lambda: _rdb(url, engine_kwargs))
        if sqlite:
            _serialise_sqlite_transactions(storage)
        return storage
    except Exception as exc:  # noqa: BLE001 - any failure to connect, named
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"cannot open Optuna storage {mask(url)!r}: {type(exc).__name__}: {mask(detail)}"
        ) from exc


def _rdb(url: str, engine_kwargs: dict[str, Any]) -> BaseStorage:
    from optuna.storages import RDBStorage

    return RDBStorage(url, engine_kwargs=engine_kwargs)


def _open_journal(url: str, lock_grace: int) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    path = journal_path(url)
    if not path:
        raise StorageError(f"storage {url!r}: expected 'journal:<path of the journal file>'")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StorageError(
            f"storage {url!r}: the journal file's directory {folder!r} does not exist"
        )
    try:
        lock = JournalFileSymlinkLock(path, grace_period=lock_grace)
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))
    except Exception as exc:  # noqa: BLE001 - any failure, named
        raise StorageError(f"cannot open journal storage {url!r}: {exc}") from exc


@contextlib.contextmanager
def _postgres_schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold a PostgreSQL session-level advisory lock while Optuna creates its schema."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        url, poolclass=NullPool, connect_args=engine_kwargs.get("connect_args", {})
    )
    try:
        with engine.connect() as conn:
            key = {"key": SCHEMA_LOCK_KEY}
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # closing the connection releases it too
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
                    conn.commit()
    finally:
        engine.dispose()


def _serialise_sqlite_transactions(storage: Any) -> None:
    """Make every SQLite transaction of ``storage`` take the write lock when it begins.

    Optuna claims a trial by reading its state and updating it in one transaction
    (``SELECT ... FOR UPDATE`` on servers). SQLite ignores ``FOR UPDATE`` and Python's
    sqlite3 starts a transaction only at the first write, so two processes could both read
    ``WAITING`` and both move the trial to ``RUNNING``: the fault-injection soak caught two
    live workers training one transition. ``BEGIN IMMEDIATE`` (SQLAlchemy's documented
    recipe for pysqlite) takes the lock before the read, so claims are compare-and-set again.
    SQLite serialises writers anyway, so little concurrency is lost.
    """
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below starts them

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners existed are not reused


def _is_schema_race(exc: BaseException) -> bool:
    text = str(exc).lower()
    signs = ("already exists", "duplicate", "unique constraint", "database is locked")
    return any(sign in text for sign in signs)


def _retry_schema_race(step: Callable[[], T]) -> T:
    """Run ``step``, again after a short wait when another process was creating the schema."""
    for attempt in range(_SCHEMA_RETRIES):
        try:
            return step()
        except Exception as exc:
            if attempt == _SCHEMA_RETRIES - 1 or not _is_schema_race(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def forget_inherited(storage: Any) -> None:
    """Let go of a storage inherited through fork without touching the parent's connections.

    An ``RDBStorage``'s pooled connections share their sockets with the parent process: the
    engine is replaced without closing them (``dispose(close=False)``). Journal storages hold
    no connection.
    """
    engine = getattr(storage, "engine", None)  # RDBStorage.engine (public)
    if engine is not None:
        with contextlib.suppress(Exception):  # best effort
            engine.dispose(close=False)


class Connection:
    """This process's connection to the Optuna storage a plan lives in.

    ``spec`` is a storage URL (opened here, see :func:`open_storage`) or an Optuna storage
    object. After a fork the inherited connection is let go and a new one is made: a URL is
    opened again, an object is copied through pickle (a new engine for ``RDBStorage``, a new
    worker identity for ``JournalStorage``); an ``InMemoryStorage`` cannot be shared and is
    refused. Pickling a connection drops the open storage.
    """

    def __init__(self, spec: str | BaseStorage, *, lock_grace: int) -> None:
        self.spec = spec
        self._lock_grace = lock_grace
        self._origin_pid = os.getpid()
        self._pid: int | None = None
        self._storage: BaseStorage | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_storage"] = None
        state["_pid"] = None
        return state

    @property
    def label(self) -> str:
        """The storage as a string safe to print (passwords masked)."""
        url = self.spec if isinstance(self.spec, str) else getattr(self.spec, "url", None)
        if isinstance(url, str):  # RDBStorage.url is public
            return mask(url)
        return type(self.spec).__name__

    @property
    def in_memory(self) -> bool:
        """Whether the storage lives in this process only (in-memory Optuna or SQLite)."""
        from optuna.storages import InMemoryStorage

        url = self.spec if isinstance(self.spec, str) else getattr(self.spec, "url", "")
        return isinstance(self.spec, InMemoryStorage) or ":memory:" in str(url)

    @property
    def process_safe(self) -> bool:
        """False for an ``InMemoryStorage``: worker processes cannot share it."""
        from optuna.storages import InMemoryStorage

        return not isinstance(self.spec, InMemoryStorage)

    def file_path(self) -> str | None:
        """The file of a ``journal:`` or ``sqlite:///`` storage; ``None`` for anything else.

        Read from the URL this connection was made from (or an ``RDBStorage``'s public
        ``url``). A ``JournalStorage`` object does not say where its file is: ``None``.
        """
        url = self.spec if isinstance(self.spec, str) else getattr(self.spec, "url", None)
        if not isinstance(url, str):
            return None
        if url.startswith("journal:"):
            return journal_path(url)
        if url.startswith("sqlite:///") and ":memory:" not in url and len(url) > 10:
            return url[len("sqlite:///") :]
        return None

    def storage(self) -> BaseStorage:
        """The Optuna storage, opened for this process (again after a fork)."""
        pid = os.getpid()
        if self._storage is None or self._pid != pid:
            inherited, self._storage = self._storage, None
            if inherited is not None:
                forget_inherited(inherited)
            self._storage = self._open(pid)
            self._pid = pid
        return self._storage

    def _open(self, pid: int) -> BaseStorage:
        spec = self.spec
        if isinstance(spec, str):
            return open_storage(spec, self._lock_grace)
        if pid == self._origin_pid:
            return spec
        from optuna.storages import InMemoryStorage

        if isinstance(spec, InMemoryStorage):
            raise StorageError(
                "an Optuna InMemoryStorage cannot be shared with worker processes: use "
                "plan(..., workers=1), or a 'journal:/path/plan.log' or database storage"
            )
        copy: BaseStorage = pickle.loads(pickle.dumps(spec))
        return copy
