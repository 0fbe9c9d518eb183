from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bad_video_probe.py"


def test_quick_run_prints_the_four_costs_for_both_keyframe_intervals(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["60", "30"]
    assert all(len(r) == 5 and all(float(v) > 0 for v in r[1:]) for r in rows)
    assert len(list(tmp_path.glob("gop*/bench_*.mp4"))) == 4
