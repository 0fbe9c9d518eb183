"""A plan stored in a local directory, one atomically written JSON file per finished transition."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from stageplan._records import EdgeKey, Progress, TransitionRecord, edge_label, edge_slug
from stageplan.storage._directory import DirectoryCheckpoints
from stageplan.storage._protocol import ClaimLostError, StorageError
from stageplan.storage._shared import check_header, is_stale, owner_record

__all__ = ["LocalStorage", "atomic_write_json"]

_FORMAT = "stageplan-local"
_VERSION = 1
_META_FILE = "stageplan.json"
_FOLDERS = ("transitions", "running", "checkpoints")  # what open() makes beside the header


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise StorageError(
            f"{path} is not valid JSON ({exc}); it was not written by stageplan or was damaged"
        ) from exc


class LocalStorage:
    """Plan storage in a directory on a local (or shared POSIX) file system.

    Layout: ``stageplan.json`` (graph and settings), ``transitions/*.json`` (one record per
    finished transition, written atomically), ``running/*`` (claims and progress of running
    transitions) and ``checkpoints/<edge>/epoch-NNNN-<random>`` (whatever the trainer's
    ``save`` writes there: a file or a directory; a :class:`DirectoryCheckpoints` store).
    Checkpoint references are paths relative to the directory, so a finished plan directory
    can be moved.

    A claim is a lock file created exclusively; it is taken over when the process that holds
    it is dead (same host) or its heartbeat is older than ``stale_after`` seconds.

    Example:
        >>> import tempfile
        >>> store = LocalStorage(tempfile.mkdtemp())
        >>> store.records()
        {}
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"plan storage {self.root} exists and is not a directory")
        self._checkpoints = DirectoryCheckpoints(self.root, subdir="checkpoints")

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    @property
    def checkpoints(self) -> DirectoryCheckpoints:
        """The plan's checkpoints, in ``checkpoints/`` inside the directory."""
        return self._checkpoints

    @property
    def process_safe(self) -> bool:
        """Always true: claims are ``O_EXCL`` lock files, records are atomic renames."""
        return True

    # -- paths ----------------------------------------------------------------------------
    def _record_path(self, edge: EdgeKey) -> Path:
        return self.root / "transitions" / f"{edge_slug(edge)}.json"

    def _lock_path(self, edge: EdgeKey) -> Path:
        return self.root / "running" / f"{edge_slug(edge)}.lock"

    def _progress_path(self, edge: EdgeKey) -> Path:
        return self.root / "running" / f"{edge_slug(edge)}.progress.json"

    # -- protocol -------------------------------------------------------------------------
    def open(self, graph: dict[str, Any], meta: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / _META_FILE
        wanted = {"format": _FORMAT, "version": _VERSION, "graph": graph, "meta": meta}
        if not meta_path.exists():
            # What the plan itself makes does not count: another worker opening the new
            # directory at this moment may have written its header and folders already.
            ours = {_META_FILE, *_FOLDERS}
            foreign = [
                p.name
                for p in self.root.iterdir()
                if not p.name.startswith(".") and p.name not in ours
            ]
            if foreign:
                raise StorageError(
                    f"{self.root} is not empty and holds no {_META_FILE}: it is not a stageplan "
                    f"plan directory (found {sorted(foreign)[:5]}); use an empty or new directory"
                )
            tmp = self.root / f".{_META_FILE}.{uuid.uuid4().hex}.tmp"
            atomic_write_json(tmp, wanted)
            try:
                os.link(tmp, meta_path)  # fails if another worker created it first
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        stored = _read_json(meta_path)
        if not isinstance(stored, dict) or stored.get("format") != _FORMAT:
            raise StorageError(f"{meta_path} is not a stageplan plan directory header")
        check_header(
            stored,
            version=_VERSION,
            graph=graph,
            meta=meta,
            where=str(self.root),
            remedy="a new directory",
        )
        for sub in _FOLDERS:
            (self.root / sub).mkdir(exist_ok=True)

    def records(self) -> dict[EdgeKey, TransitionRecord]:
        out: dict[EdgeKey, TransitionRecord] = {}
        folder = self.root / "transitions"
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("*.json")):
            data = _read_json(path)
            if not isinstance(data, dict):
                raise StorageError(f"{path}: a transition record must be a JSON object")
            rec = TransitionRecord.from_dict(data)
            out[rec.edge] = rec
        return out

    def claim(self, edge: EdgeKey, *, worker: str, stale_after: float) -> Progress | None:
        lock = self._lock_path(edge)
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._try_create_lock(lock, worker):
                return self._load_progress(edge)
            if not self._lock_is_stale(lock, stale_after):
                return None
            grave = lock.with_name(f"{lock.name}.stale-{uuid.uuid4().hex}")
            try:
                os.rename(lock, grave)  # only one worker wins the take-over
            except FileNotFoundError:
                continue
            grave.unlink(missing_ok=True)
        return None

    def _try_create_lock(self, lock: Path, worker: str) -> bool:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = owner_record(worker)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
        return True

    def _lock_is_stale(self, lock: Path, stale_after: float) -> bool:
        try:
            heartbeat = lock.stat().st_mtime  # save_progress touches the lock file
        except FileNotFoundError:
            return True
        try:
            with open(lock, encoding="utf-8") as fh:
                info = json.load(fh)
        except FileNotFoundError:
            return True
        except (json.JSONDecodeError, OSError):
            info = None  # half-written lock: no owner to check, judged by its age alone
        return is_stale(info if isinstance(info, dict) else None, [heartbeat], stale_after)

    def _load_progress(self, edge: EdgeKey) -> Progress:
        path = self._progress_path(edge)
        if not path.exists():
            return Progress()
        data = _read_json(path)
        if not isinstance(data, dict):
            raise StorageError(f"{path}: progress must be a JSON object")
        return Progress.from_dict(data)

    def _check_owner(self, edge: EdgeKey, worker: str) -> None:
        lock = self._lock_path(edge)
        try:
            with open(lock, encoding="utf-8") as fh:
                owner = json.load(fh).get("worker")
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            owner = None
        if owner != worker:
            raise ClaimLostError(
                f"transition {edge_label(edge)} was taken over by {owner or 'another worker'} "
                f"(no heartbeat from {worker} for longer than stale_after); {worker} stops "
                "running it"
            )

    def save_progress(self, edge: EdgeKey, progress: Progress, *, worker: str) -> None:
        self._check_owner(edge, worker)
        atomic_write_json(self._progress_path(edge), progress.to_dict())
        lock = self._lock_path(edge)
        with contextlib.suppress(FileNotFoundError):
            os.utime(lock)

    def finish(self, record: TransitionRecord, *, worker: str) -> None:
        self._check_owner(record.edge, worker)
        atomic_write_json(self._record_path(record.edge), record.to_dict())
        self._progress_path(record.edge).unlink(missing_ok=True)
        self._lock_path(record.edge).unlink(missing_ok=True)
        self._sweep(record)

    def _sweep(self, record: TransitionRecord) -> None:
        """Delete the temporary files of atomic writes, or the renamed lock of a take-over, that
        a kill cut short for this transition; once its record is stored nothing needs them.
        (Its checkpoints the record does not keep are swept by the planner.)
        """
        slug = edge_slug(record.edge)
        for folder, pattern in (
            (self.root / "transitions", f".{slug}.json.*.tmp"),
            (self.root / "running", f".{slug}.progress.json.*.tmp"),
            (self.root / "running", f"{slug}.lock.stale-*"),
        ):
            for leftover in folder.glob(pattern):
                leftover.unlink(missing_ok=True)

    def release(self, edge: EdgeKey, *, worker: str) -> None:
        """Give up a claim without a record (the run was interrupted); progress is kept."""
        with contextlib.suppress(ClaimLostError):
            self._check_owner(edge, worker)
            self._lock_path(edge).unlink(missing_ok=True)
