"""The fault-injection soak's --quick run: every storage survives kills with nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "fault_soak.py"

pytestmark = pytest.mark.slow


def test_fault_soak_quick_loses_nothing_on_any_storage(tmp_path: Path) -> None:
    storages = ["dir", "journal", "sqlite"]
    if os.environ.get("STAGEPLAN_TEST_POSTGRES_URL"):
        storages.append("postgres")  # the soak makes (and drops) a database of its own
    elif os.environ.get("STAGEPLAN_REQUIRE_POSTGRES") == "1":
        pytest.fail("STAGEPLAN_REQUIRE_POSTGRES=1 but STAGEPLAN_TEST_POSTGRES_URL is unset")
    out = tmp_path / "soak.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--storages", ",".join(storages),
         "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert [r["storage"] for r in runs] == storages
    for r in runs:
        assert r["problems"] == [], r
        assert r["kills_total"] >= 1, r  # the quick run does kill
        assert r["epochs_trained"] >= r["epochs_uninterrupted"]
