from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "video_loader.py"


def test_quick_run_prints_both_pipelines_and_decode_limit(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "pure decode (no conversion)" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines()
            if line.startswith(("consecutive", "uniform"))]
    assert [r[:2] for r in rows] == [["consecutive", "16"], ["uniform", "16"]]
    for row in rows:
        assert float(row[2]) > 0 and float(row[4]) > 0 and row[6].endswith("x")
    assert len(list(tmp_path.glob("bench_*.mp4"))) == 2
