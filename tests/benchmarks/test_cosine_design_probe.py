"""benchmarks/cosine_design_probe.py: its plain re-implementation of the chosen variant agrees
with the library's ``KneeRule(schedule="cosine")`` on real NAS-Bench-201 curves."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _curves  # noqa: E402
import cosine_design_probe as probe  # noqa: E402

from stageplan.knee import KneeRule  # noqa: E402


def test_the_chosen_variant_is_what_the_library_does_on_real_curves() -> None:
    nb201 = [c for c in _curves.load_curves() if c.group == "nb201_mintal"][:12]
    stops = []
    for c in nb201:
        values = np.asarray(c.values, dtype=np.float64)
        rule = KneeRule("exp", probe.DELAY, max_epochs=values.size - 1, schedule="cosine")
        expected = rule.replay(values).epoch
        assert probe.stop_epoch(values, 0.3, 2, "curve", rule.risk) == expected
        stops.append(expected)
    assert min(stops) < len(nb201[0].values) - 1  # some curve stops before its budget


def test_the_probe_prints_every_variant_and_the_library_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert probe.main(["--reported"]) == 0
    out = capsys.readouterr().out
    assert "66 NB201 cosine curves (reported)" in out
    assert out.count(" / curve / ") + out.count(" / epoch / ") == len(probe.VARIANTS)
    assert "library" in out
