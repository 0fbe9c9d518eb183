from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "feed_h200.py"
LEVERS = {"today", "reuse", "uint8", "prepared", "prepared_fd", "feed"}


def test_quick_run_writes_rows_per_state(tmp_path: Path) -> None:
    out = tmp_path / "feed.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path / "w"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["sampling"], r["clip_length"]) for r in rows] == [
        ("consecutive", 16), ("uniform", 16)]
    for row in rows:
        assert row["consumed_source"] == "computed"
        # DG-P3D-50 at 16x224^2: 23.63 GMACs -> 0.35 * 989e12 / (6 * MACs) clips/s.
        assert abs(row["model_gmacs"] - 23.63) < 0.01
        assert abs(row["consumed_clips_per_s"] - 2442) < 2
        assert row["clips_per_s_per_core"] > 0
        assert abs(row["cores_needed"] - row["consumed_clips_per_s"]
                   / row["clips_per_s_per_core"]) < 0.1
        assert set(row["levers"]) >= LEVERS
        assert row["levers"]["today"]["vs_today"] == 1.0
    assert "consumed 2442 clips/s (computed)" in run.stdout
    assert len(list((tmp_path / "w" / "prepared_fd").glob("*.mp4"))) == 2


def _load():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("feed_h200_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_device_run_helpers_work_on_the_cpu(tmp_path: Path) -> None:
    """The --device cuda measurements, exercised on the CPU (small model, CPU decoder)."""
    import pytest

    from video3d.data import TrainTransform, VideoClipDataset, VideoEntry, torchcodec_status

    bench = _load()
    step = bench.measured_consumption(16, 2, 1, device="cpu", width=0.125, size=32)
    assert step["clips_per_s"] > 0 and step["batch"] == 2
    paths = bench.make_videos(tmp_path, 2, 40, 8)
    data = VideoClipDataset([VideoEntry(str(p), 0, 40, 30.0) for p in paths], clip_len=8,
                            transform=TrainTransform(32, (32, 40)))
    assert bench.loader_rate(data, workers=2, seconds=1.0, batch=2) > 0
    if torchcodec_status() is not None:
        pytest.skip(str(torchcodec_status()))
    for reuse in (False, True):
        out = bench.nvdec_rate(paths, 40, "uniform", 8, 0.5, reuse, device="cpu")
        assert out.get("backend") == "ffmpeg" and out["clips_per_s"] > 0, out
