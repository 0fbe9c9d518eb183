from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "model_step.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("model_step_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_reports_speed_and_flops(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load()
    out = tmp_path / "r.json"
    results = bench.main(["--quick", "--device", "cpu", "--peak-tflops", "1", "--json", str(out)])
    assert len(results) == 1
    r = results[0]
    assert r.clips_per_s > 0 and r.train_gflop_per_clip > 0 and r.mfu is not None
    assert out.exists()
    text = capsys.readouterr().out
    assert "dg_p3d_resnet10" in text and "clips/s" in text


def test_train_flops_count_forward_and_backward() -> None:
    bench = _load()
    from video3d.models import build_model, summarize

    def build():  # type: ignore[no-untyped-def]
        return build_model("p3d_resnet10", width=0.25, num_classes=10)

    fwd_macs = summarize(build, (1, 3, 8, 32, 32)).macs
    train = bench.train_flops_per_clip(build, (8, 32, 32))
    # backward costs about twice the forward (the stem's input gradient is skipped)
    assert 2 * (2 * fwd_macs) < train <= 3 * (2 * fwd_macs)
