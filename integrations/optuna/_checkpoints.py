"""Where :class:`~stageplan.integrations.optuna.OptunaStorage` keeps checkpoints.

Two stores, both addressed by a string reference:

* :class:`ArtifactCheckpoints`: an ``optuna.artifacts`` store (``FileSystemArtifactStore``,
  ``Boto3ArtifactStore``, ``GCSArtifactStore``...). The reference is the artifact id. A
  checkpoint that is a directory is packed into an uncompressed tar archive (artifact id ending
  in ``.tar``) and unpacked again on fetch. Fetched checkpoints are cached locally.
* :class:`DirectoryCheckpoints`: a plain directory every worker can reach (local disk for one
  machine, a shared file system for several). The reference is the path relative to it;
  files and directories are kept as the trainer wrote them.

A reference that is an absolute path of an existing file or directory (e.g. pretrained weights
given as ``plan(..., start_checkpoint="/models/r50.pt")``) is read in place and never deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

from stageplan.storage import EdgeKey, StorageError, written_checkpoint
from stageplan.storage import edge_slug as _edge_slug

__all__ = ["ArtifactCheckpoints", "DirectoryCheckpoints", "copy_into", "edge_slug"]

_TAR_SUFFIX = ".tar"


def edge_slug(edge: EdgeKey) -> str:
    """A file-name-safe, collision-resistant name for a transition (60 characters of names)."""
    return _edge_slug(edge, max_len=60)


def _unique_name(edge: EdgeKey, epoch: int) -> str:
    return f"{edge_slug(edge)}-e{epoch:04d}-{uuid.uuid4().hex[:12]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _external(ref: str) -> Path | None:
    """An absolute path given as a reference (read in place, never deleted)."""
    if os.path.isabs(ref) and os.path.exists(ref):
        return Path(ref)
    return None


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)


class DirectoryCheckpoints:
    """Checkpoints as files or directories below ``root`` (references relative to it)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"checkpoint_dir {str(self.root)!r} exists and is not a directory")

    def __repr__(self) -> str:
        return f"DirectoryCheckpoints({str(self.root)!r})"

    def describe(self) -> str:
        return f"directory {self.root}"

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        folder = self.root / edge_slug(edge)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / _unique_name(edge, epoch))

    def store(self, edge: EdgeKey, epoch: int, path: str) -> str:
        p = written_checkpoint(edge, epoch, path)
        resolved = p.resolve()
        try:
            return str(resolved.relative_to(self.root))
        except ValueError:
            # Written elsewhere (a trainer that ignored the path): move it in.
            dst = Path(self.checkpoint_path(edge, epoch))
            shutil.move(str(resolved), dst)
            return str(dst.relative_to(self.root))

    def fetch(self, ref: str) -> str:
        ext = _external(ref)
        if ext is not None:
            return str(ext)
        path = self.root / ref
        if not path.exists():
            raise StorageError(f"checkpoint {ref!r} is missing from {self.describe()}")
        return str(path)

    def delete(self, ref: str) -> None:
        if os.path.isabs(ref):
            return
        _remove(self.root / ref)

    def sweep(self, edge: EdgeKey, keep: set[str]) -> list[str]:
        """Delete ``edge``'s checkpoints that no reference in ``keep`` names; return them.

        A worker killed between writing a checkpoint and storing the progress that names it
        leaves such a file behind; once the transition is finished nothing can need it.
        """
        folder = self.root / edge_slug(edge)
        if not folder.is_dir():
            return []
        gone = []
        for entry in sorted(folder.iterdir()):
            ref = str(entry.relative_to(self.root))
            if ref not in keep:
                _remove(entry)
                gone.append(ref)
        return gone


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
        _remove(cached)
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
        ext = _external(ref)
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
                _remove(tmp)
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
        _remove(self._cached(ref))

    def sweep(self, edge: EdgeKey, keep: set[str]) -> list[str]:
        """Delete ``edge``'s artifacts that ``keep`` does not name (listable stores only).

        Only a file-system store made by this package can be listed; for a store passed in
        (S3, GCS...) nothing is swept and a checkpoint written by a worker killed before it
        stored its progress stays behind (a documented limit).
        """
        if self.folder is None or not self.folder.is_dir():
            return []
        prefix = f"{edge_slug(edge)}-e"
        gone = []
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(prefix) and entry.name not in keep:
                self.delete(entry.name)
                gone.append(entry.name)
        return gone


def copy_into(
    store: DirectoryCheckpoints | ArtifactCheckpoints, ref: str, edge: EdgeKey, epoch: int
) -> str:
    """Keep a copy of checkpoint ``ref`` as ``edge``'s checkpoint of ``epoch``."""
    src = Path(store.fetch(ref))
    dst = Path(store.checkpoint_path(edge, epoch))
    _copy(src, dst)
    return store.store(edge, epoch, str(dst))
