"""Smoke test of benchmarks/storage_cost.py (its --quick path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "storage_cost.py"


def test_storage_cost_quick(tmp_path: Path) -> None:
    out = tmp_path / "cost.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("STAGEPLAN_TEST_POSTGRES_URL", None)  # the smoke run skips PostgreSQL
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "postgresql: skipped (STAGEPLAN_TEST_POSTGRES_URL is unset)" in proc.stdout
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert set(rows) == {
        "local directory (peer)",
        "optuna in-memory",
        "optuna sqlite",
        "optuna journal file",
    }
    for row in rows.values():
        assert row["records"] == payload["transitions"] == 2
        assert row["calls"] == 2 * (payload["epochs"] + 1)
        assert 0 < row["epoch_median_ms"] <= row["epoch_p90_ms"]
