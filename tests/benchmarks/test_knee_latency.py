"""Smoke test of benchmarks/knee_latency.py (its --quick path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "knee_latency.py"


def test_knee_latency_quick(tmp_path: Path) -> None:
    out = tmp_path / "knee.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warm med ms" in proc.stdout
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert {r["family"] for r in rows} == {"exp", "power", "multi_exp", "multi_power"}
    assert {r["rule"] for r in rows} == {"evidence", "evidence-cosine", "paper"}
    for row in rows:
        assert row["epochs"] == 50
        assert row["decisions_timed"] == 3
        assert 0.0 < row["warm_median_ms"] <= row["warm_max_ms"]
        assert 0.0 < row["cold_median_ms"] <= row["cold_max_ms"]
