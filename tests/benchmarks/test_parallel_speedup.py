"""Smoke test of benchmarks/parallel_speedup.py (its --quick path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "parallel_speedup.py"


def test_parallel_speedup_quick(tmp_path: Path) -> None:
    out = tmp_path / "speedup.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "same plan for every worker count: yes" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["workers"] for r in rows] == [1, 2]
    for r in rows:
        assert r["transitions"] == 7 and r["epochs"] > 7
        assert 0 < r["critical_path_s"] <= r["sleep_work_s"]
        assert 1.0 <= r["bound"] <= r["workers"]
    assert rows[0]["speedup"] == 1.0
