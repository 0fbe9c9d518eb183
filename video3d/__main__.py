"""``python -m video3d``: the ``video3d`` command (see :mod:`video3d.cli`)."""

from __future__ import annotations

import sys

from video3d.cli import main

if __name__ == "__main__":
    sys.exit(main())
