"""Where :class:`~stageplan.integrations.optuna.OptunaStorage` keeps checkpoints.

:class:`CheckpointChoice` reads the constructor's checkpoint arguments (at most one of
``checkpoints``, ``artifact_store``, ``artifacts_dir``, ``checkpoint_dir``) and opens one of two
:class:`~stageplan.storage.CheckpointStore` implementations, both addressed by a string
reference:

* the core :class:`~stageplan.storage.DirectoryCheckpoints` for ``checkpoint_dir`` (or a
  ``checkpoints`` directory): a plain directory every worker can reach (local disk for one
  machine, a shared file system for several); the reference is the path relative to it;
* :class:`ArtifactCheckpoints`: an ``optuna.artifacts`` store (``FileSystemArtifactStore``,
  ``Boto3ArtifactStore``, ``GCSArtifactStore``...). The reference is the artifact id. A
  checkpoint that is a directory is packed into an uncompressed tar archive (artifact id ending
  in ``.tar``) and unpacked again on fetch. Fetched checkpoints are cached locally.

A reference that is an absolute path of an existing file or directory (e.g. pretrained weights
given as ``plan(..., start_checkpoint="/models/r50.pt")``) is read in place and never deleted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stageplan.storage import (
    CheckpointStore,
    DirectoryCheckpoints,
    EdgeKey,
    StorageError,
    copy_checkpoint,
    edge_slug,
    external_checkpoint,
    remove_path,
    written_checkpoint,
)

if TYPE_CHECKING:
    from stageplan.integrations.optuna._connect import Connection

__all__ = ["ArtifactCheckpoints", "CheckpointChoice", "artifact_slug"]

_TAR_SUFFIX = ".tar"


def artifact_slug(edge: EdgeKey) -> str:
    """The prefix of a transition's artifact ids (60 characters of names, then a digest)."""
    return edge_slug(edge, max_len=60)


def _unique_name(edge: EdgeKey, epoch: int) -> str:
    return f"{artifact_slug(edge)}-e{epoch:04d}-{uuid.uuid4().hex[:12]}"


class ArtifactCheckpoints:
    """Checkpoints in an ``optuna.artifacts`` store, with a local scratch and cache directory."""

    def __init__(
        self,
        store: Any,
        cache_dir: str | os.PathLike[str],
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> None:
        for method in ("open_reader", "write", "remove"):
            if not callable(getattr(store, method, None)):
                raise TypeError(
                    f"artifact_store must implement optuna's ArtifactStore protocol (open_reader, "
                    f"write, remove); {type(store).__name__} has no {method}()"
                )
        self.backend = store
        self.cache = Path(cache_dir).expanduser().resolve()
        #: The directory of a ``FileSystemArtifactStore`` this package made (it can be
        #: listed, so leftovers can be swept); ``None`` for a store the user passed.
        self.folder = None if folder is None else Path(folder).expanduser().resolve()

    def __repr__(self) -> str:
        return f"ArtifactCheckpoints({self.backend!r}, cache_dir={str(self.cache)!r})"

    def describe(self) -> str:
        where = f" at {self.folder}" if self.folder is not None else ""
        return f"artifact store {type(self.backend).__name__}{where}"

    def _scratch(self) -> Path:
        folder = self.cache / "scratch"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _cached(self, ref: str) -> Path:
        name = ref[: -len(_TAR_SUFFIX)] if ref.endswith(_TAR_SUFFIX) else ref
        return self.cache / "fetched" / name

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        return str(self._scratch() / _unique_name(edge, epoch))

    def store(self, edge: EdgeKey, epoch: int, path: str) -> str:
        p = written_checkpoint(edge, epoch, path)
        artifact_id = p.name if p.parent == self._scratch() else _unique_name(edge, epoch)
        if p.is_dir():
            artifact_id += _TAR_SUFFIX
            fd, tar_name = tempfile.mkstemp(dir=self._scratch(), suffix=_TAR_SUFFIX)
            os.close(fd)
            try:
                with tarfile.open(tar_name, "w") as tar:
                    tar.add(str(p), arcname=".")
                self._upload(artifact_id, Path(tar_name))
            finally:
                os.unlink(tar_name)
        else:
            self._upload(artifact_id, p)
        # Keep the local copy as the cached download: the next transition on this machine
        # usually starts from it.
        cached = self._cached(artifact_id)
        cached.parent.mkdir(parents=True, exist_ok=True)
        remove_path(cached)
        os.replace(p, cached)
        return artifact_id

    def _upload(self, artifact_id: str, path: Path) -> None:
        try:
            with open(path, "rb") as fh:
                self.backend.write(artifact_id, fh)
        except Exception as exc:  # noqa: BLE001 - any store error, named
            raise StorageError(
                f"could not upload checkpoint {artifact_id!r} to {self.describe()}: {exc}"
            ) from exc

    def fetch(self, ref: str) -> str:
        ext = external_checkpoint(ref)
        if ext is not None:
            return str(ext)
        cached = self._cached(ref)
        if cached.exists():
            return str(cached)
        from optuna.artifacts.exceptions import ArtifactNotFound

        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cached.parent, prefix=".download-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    reader = self.backend.open_reader(ref)
                except ArtifactNotFound as exc:
                    raise StorageError(
                        f"checkpoint {ref!r} is missing from {self.describe()}"
                    ) from exc
                except Exception as exc:  # noqa: BLE001
                    raise StorageError(
                        f"could not read checkpoint {ref!r} from {self.describe()}: {exc}"
                    ) from exc
                with reader:
                    shutil.copyfileobj(reader, out)
            if ref.endswith(_TAR_SUFFIX):
                folder = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".unpack-"))
                with tarfile.open(tmp) as tar:
                    tar.extractall(folder, filter="data")
                tmp.unlink()
                tmp = folder
            try:
                os.replace(tmp, cached)
            except OSError:
                if not cached.exists():  # another process may have won the rename
                    raise
        finally:
            if tmp.exists():
                remove_path(tmp)
        return str(cached)

    def delete(self, ref: str) -> None:
        if os.path.isabs(ref):
            return
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            self.backend.remove(ref)
        except ArtifactNotFound:
            pass
        except Exception as exc:  # noqa: BLE001
            raise StorageError(
                f"could not delete checkpoint {ref!r} from {self.describe()}: {exc}"
            ) from exc
        remove_path(self._cached(ref))

    def copy(self, ref: str, edge: EdgeKey, epoch: int) -> str:
        return copy_checkpoint(self, ref, edge, epoch)

    def sweep(self, edge: EdgeKey, keep: set[str]) -> list[str]:
        """Delete ``edge``'s artifacts that ``keep`` does not name (listable stores only).

        Only a file-system store made by this package can be listed; for a store passed in
        (S3, GCS...) nothing is swept and a checkpoint written by a worker killed before it
        stored its progress stays behind (a documented limit).
        """
        if self.folder is None or not self.folder.is_dir():
            return []
        prefix = f"{artifact_slug(edge)}-e"
        gone = []
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(prefix) and entry.name not in keep:
                self.delete(entry.name)
                gone.append(entry.name)
        return gone


@dataclass(frozen=True)
class CheckpointChoice:
    """Where checkpoints go, as the constructor's arguments name it (at most one is set)."""

    bucket: str | None = None
    artifact_store: Any = None
    artifacts_dir: str | None = None
    directory: str | None = None

    @classmethod
    def from_arguments(
        cls,
        *,
        checkpoints: str | os.PathLike[str] | Any | None,
        artifact_store: Any | None,
        artifacts_dir: str | os.PathLike[str] | None,
        checkpoint_dir: str | os.PathLike[str] | None,
    ) -> CheckpointChoice:
        """Check the arguments (a ``ValueError`` names a bad or doubled one)."""
        bucket: str | None = None
        if checkpoints is not None:
            if isinstance(checkpoints, os.PathLike):
                checkpoints = os.fspath(checkpoints)
            if isinstance(checkpoints, str):
                kind, value = _location(checkpoints)
                if kind == "bucket":
                    bucket = value
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
                ("checkpoints (s3:// or gs://)", bucket),
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
        return cls(
            bucket=bucket,
            artifact_store=artifact_store,
            artifacts_dir=None if artifacts_dir is None else str(artifacts_dir),
            directory=None if checkpoint_dir is None else str(checkpoint_dir),
        )

    def open(self, conn: Connection, *, cache_dir: str | None, study_name: str) -> CheckpointStore:
        """The checkpoint store chosen (the default one for ``conn`` when none was)."""
        if self.directory is not None:
            return DirectoryCheckpoints(self.directory)
        store = self.artifact_store
        folder: str | None = None
        if store is None and self.bucket is not None:
            store = _bucket_store(self.bucket)
        if store is None:
            folder = self.artifacts_dir or _default_artifacts_dir(conn)
            from optuna.artifacts import FileSystemArtifactStore

            Path(folder).mkdir(parents=True, exist_ok=True)
            store = FileSystemArtifactStore(folder)
        if cache_dir is None:
            key = hashlib.sha1(f"{conn.label}|{study_name}".encode()).hexdigest()[:12]
            uid = os.getuid() if hasattr(os, "getuid") else 0
            cache_dir = str(Path(tempfile.gettempdir()) / f"stageplan-optuna-{uid}" / key)
        return ArtifactCheckpoints(store, cache_dir, folder=folder)


def _default_artifacts_dir(conn: Connection) -> str:
    """Next to the storage's file, a temporary folder for an in-memory one; else refused."""
    path = conn.file_path()
    if path is not None:
        return path + ".artifacts"
    if conn.in_memory:
        return tempfile.mkdtemp(prefix="stageplan-artifacts-")
    from optuna.storages import JournalStorage

    if isinstance(conn.spec, JournalStorage):
        raise StorageError(
            f"storage {conn.label}: an Optuna JournalStorage object does not say where its "
            "journal file is, so its checkpoints have no default place: pass "
            "OptunaStorage(..., checkpoints='/shared/checkpoints') (or plan(..., "
            "checkpoints=...)), or give the storage as 'journal:/path/plan.log' (checkpoints "
            "then go next to the file)"
        )
    raise StorageError(
        f"storage {conn.label} has no checkpoint location: a database server "
        "cannot hold checkpoints, so name a place every worker can reach: "
        "plan(..., checkpoints='/shared/checkpoints' or 's3://bucket'), "
        "--checkpoints on the stageplan/video3d command line, or "
        "OptunaStorage(..., checkpoints=...)"
    )


def _location(text: str) -> tuple[str, str]:
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
