"""Checkpoints kept as files or directories in a folder: the local and shared-disk store."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from stageplan._records import EdgeKey, edge_slug
from stageplan.storage._protocol import CheckpointStore, StorageError
from stageplan.storage._shared import written_checkpoint

__all__ = ["DirectoryCheckpoints", "copy_checkpoint", "external_checkpoint", "remove_path"]


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree; a missing one is not an error."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def external_checkpoint(ref: str) -> Path | None:
    """An absolute path given as a reference (read in place, never deleted), else ``None``."""
    if os.path.isabs(ref) and os.path.exists(ref):
        return Path(ref)
    return None


def copy_checkpoint(store: CheckpointStore, ref: str, edge: EdgeKey, epoch: int) -> str:
    """Keep a copy of checkpoint ``ref`` as ``edge``'s checkpoint of ``epoch`` in ``store``."""
    src = Path(store.fetch(ref))
    dst = Path(store.checkpoint_path(edge, epoch))
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return store.store(edge, epoch, str(dst))


class DirectoryCheckpoints:
    """Checkpoints below ``root/subdir/<transition>/`` as the trainer wrote them.

    Every checkpoint gets a new name (``epoch-NNNN-<random>``), so a worker that lost its
    claim can never overwrite the checkpoint of the worker that took over. References are
    paths relative to ``root``, so a plan directory can be moved as a whole.

    Args:
        root: The folder references are relative to (a plan directory, or a checkpoint
            directory every worker can reach).
        subdir: Sub-folder of ``root`` holding the per-transition folders (``""``: ``root``).

    Example:
        >>> import tempfile, pathlib
        >>> store = DirectoryCheckpoints(tempfile.mkdtemp(), subdir="checkpoints")
        >>> path = store.checkpoint_path(("a", "b"), 3)
        >>> _ = pathlib.Path(path).write_text("weights")
        >>> ref = store.store(("a", "b"), 3, path)
        >>> ref.startswith("checkpoints/a__b-") and "/epoch-0003-" in ref
        True
        >>> store.sweep(("a", "b"), keep=set()) == [ref]
        True
    """

    def __init__(self, root: str | os.PathLike[str], *, subdir: str = "") -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"checkpoint directory {str(self.root)!r} is not a directory")
        self.subdir = subdir

    def __repr__(self) -> str:
        return f"DirectoryCheckpoints({str(self.root)!r}, subdir={self.subdir!r})"

    def describe(self) -> str:
        return f"directory {self.root / self.subdir}"

    def _folder(self, edge: EdgeKey) -> Path:
        return self.root / self.subdir / edge_slug(edge)

    def checkpoint_path(self, edge: EdgeKey, epoch: int) -> str:
        folder = self._folder(edge)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}")

    def store(self, edge: EdgeKey, epoch: int, path: str) -> str:
        resolved = written_checkpoint(edge, epoch, path).resolve()
        if resolved.parent != self._folder(edge).resolve():
            # Written elsewhere (a trainer that ignored the path): move it in.
            dst = Path(self.checkpoint_path(edge, epoch))
            shutil.move(str(resolved), dst)
            resolved = dst
        return str(resolved.relative_to(self.root))

    def fetch(self, ref: str) -> str:
        ext = external_checkpoint(ref)
        if ext is not None:
            return str(ext)
        path = self.root / ref
        if not path.exists():
            raise StorageError(f"checkpoint {ref!r} is missing from {self.describe()}")
        return str(path)

    def delete(self, ref: str) -> None:
        if os.path.isabs(ref):
            return
        remove_path(self.root / ref)

    def copy(self, ref: str, edge: EdgeKey, epoch: int) -> str:
        return copy_checkpoint(self, ref, edge, epoch)

    def sweep(self, edge: EdgeKey, keep: set[str]) -> list[str]:
        folder = self._folder(edge)
        if not folder.is_dir():
            return []
        gone = []
        for entry in sorted(folder.iterdir()):
            ref = str(entry.relative_to(self.root))
            if ref not in keep:
                remove_path(entry)
                gone.append(ref)
        return gone
