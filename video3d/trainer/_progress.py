"""A tiny progress bar (no dependency): redrawn in place on a terminal, one line otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Shows ``desc [#####.....] done/total  extra  elapsed`` for one pass over batches.

    On a terminal the line is redrawn at most 10 times a second; on a pipe or file only the
    final line is written (so logs stay readable). ``stream=None`` disables it.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = ProgressBar(4, "epoch 1", stream=out)
        >>> for _ in range(4):
        ...     bar.update(extra="loss 0.5")
        >>> bar.close()
        >>> "4/4" in out.getvalue()
        True
    """

    def __init__(self, total: int, desc: str, *, stream: TextIO | None, width: int = 20) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream
        self.width = width
        self.done = 0
        self.extra = ""
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def _line(self) -> str:
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._start
        extra = f"  {self.extra}" if self.extra else ""
        return f"{self.desc} [{bar}] {self.done}/{self.total}{extra}  {elapsed:.1f}s"

    def update(self, n: int = 1, *, extra: str | None = None) -> None:
        self.done += n
        if extra is not None:
            self.extra = extra
        if not self._tty or self.stream is None:
            return
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or self.done >= self.total:
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        if self.stream is None:
            return
        self.stream.write(("\r" if self._tty else "") + self._line() + "\n")
        self.stream.flush()
