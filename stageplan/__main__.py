"""``python -m stageplan``: the command line."""

from __future__ import annotations

import sys

from stageplan.cli import main

sys.exit(main())
