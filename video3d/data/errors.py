"""Exception types of :mod:`video3d.data`.

Every error names the file (and line, for annotation files) it is about, so a failure in a
loader worker or an index build points at the input to fix.

Example:
    >>> from video3d.data.errors import IndexFormatError
    >>> err = IndexFormatError("expected 3 fields, got 2", path="train.txt", line=4)
    >>> str(err)
    'train.txt:4: expected 3 fields, got 2'
"""

from __future__ import annotations

import os

__all__ = ["IndexFormatError", "UnknownClassError", "VideoDecodeError"]


class VideoDecodeError(OSError):
    """A video file is missing, is not a video, or cannot be decoded as asked.

    Args:
        message: What went wrong.
        path: The video file.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the exception picklable across DataLoader worker processes.
        return (_rebuild_decode_error, (self.reason, self.path))


def _rebuild_decode_error(reason: str, path: str) -> VideoDecodeError:
    return VideoDecodeError(reason, path=path)


class IndexFormatError(ValueError):
    """An annotation or index file has a malformed entry.

    Args:
        message: What is wrong and what was expected.
        path: The annotation file.
        line: The 1-based line (or entry) number, when known.
    """

    def __init__(
        self, message: str, *, path: str | os.PathLike[str], line: int | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.reason = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self)._rebuild, (self.reason, self.path, self.line))

    @classmethod
    def _rebuild(cls, reason: str, path: str, line: int | None) -> IndexFormatError:
        return cls(reason, path=path, line=line)


class UnknownClassError(IndexFormatError):
    """An annotation names a class that is not in the class list."""
