"""The ``video3d`` command end to end on a tiny synthetic dataset, plus its bad-input errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from video3d.cli import main
from video3d.trainer import VideoTrainer, get_preset

INTERRUPT = """
import sys
from video3d.cli import main
from video3d.trainer import VideoTrainer
calls = []
original = VideoTrainer.run_transition
def run(self, trial, *, key):
    calls.append(key)
    if len(calls) == 3:
        raise KeyboardInterrupt
    return original(self, trial, key=key)
VideoTrainer.run_transition = run
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from video3d.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("cli-tiny")
    make_synthetic_dataset(root, **get_preset("tiny").synthetic)
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _percentages(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"([\d.]+)%", line)]


@pytest.mark.slow
def test_plan_end_to_end_resumes_after_an_interrupt(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "run"
    monkeypatch.setenv("VIDEO3D_DATA", str(tmp_path / "generated"))  # must stay unused
    argv = ["plan", "--preset", "tiny", "--data", str(tiny_data), "--out", str(out)]
    # 1. A run interrupted (Ctrl-C) in its third transition, in its own process.
    first = subprocess.run([sys.executable, "-c", INTERRUPT, *argv], capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 130, first.stderr[-2000:]
    assert "run the same command again to resume" in first.stderr
    done_before = len(list((out / "storage" / "transitions").glob("*.json")))
    assert done_before == 2

    # 2. The same command again: only the unfinished transitions run.
    ran: list[str] = []
    original = VideoTrainer.run_transition

    def counting(self: VideoTrainer, trial: Any, *, key: str) -> None:
        ran.append(key)
        original(self, trial, key=key)

    monkeypatch.setattr(VideoTrainer, "run_transition", counting)
    code, stdout, err = _run(argv, capsys)
    assert code == 0, err[-2000:]
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["transitions"]) == 6 and len(ran) == 6 - done_before
    assert all(t["status"] == "complete" for t in plan["transitions"])
    reasons = {t["decision"]["reason"] for t in plan["transitions"]}
    assert reasons <= {"knee", "max_epochs"}
    # progress: per-transition lines from the planner, a bar per epoch
    assert "done after" in err and re.search(r"epoch \d+ \[#+\]", err)
    # the printed plan and both accuracies
    assert "plan:" in stdout and "explored 6 transitions" in stdout
    planned = next(line for line in stdout.splitlines() if "planned" in line)
    tuned = next(line for line in stdout.splitlines() if "hand-tuned" in line)
    for line in (planned, tuned):
        top1, top5 = _percentages(line)[-2:]
        assert 0.0 <= top1 <= top5 <= 100.0
    results = json.loads((out / "results.json").read_text())
    assert results["hand_tuned_test"]["top1"] >= 0 and results["total_epochs"] == plan[
        "total_epochs"]
    assert sum(results["hand_tuned_schedule"]["epochs"]) == plan["total_epochs"]
    for name in ("graph.png", "curves.png"):
        assert (out / name).stat().st_size > 10_000
    assert (out / "run.json").is_file()

    # 3. Retrain the plan's fixed schedule and evaluate the weights.
    code, stdout, err = _run(["train", "--plan", str(out / "plan.json"), "--quiet"], capsys)
    assert code == 0, err
    assert "test accuracy" in stdout and (out / "retrained.pt").is_file()
    code, stdout, err = _run(["evaluate", str(out / "retrained.pt"), "--quiet"], capsys)
    assert code == 0, err  # the checkpoint names its dataset
    assert len(_percentages(stdout)) == 2
    assert not (tmp_path / "generated").exists()


def _bad_inputs(tiny: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    relabeled = tmp / "relabeled"
    shutil.copytree(tiny, relabeled)
    lines = (relabeled / "train.txt").read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 7"
    (relabeled / "train.txt").write_text("\n".join(lines) + "\n")
    unknown_key = tmp / "unknown.json"
    unknown_key.write_text(json.dumps({"learning_rate": 0.1}))
    bad_clip = tmp / "clip.toml"
    bad_clip.write_text("clip_lengths = [4, 6]\n")
    data = ["--data", str(tiny)]
    return {
        "unknown preset": (["plan", "--preset", "kinetics", *data], "unknown preset 'kinetics'"),
        "missing dataset": (["plan", "--preset", "tiny", "--data", str(tmp / "nope")],
                            "dataset not found"),
        "classes vs preset": (["plan", "--preset", "hmdb51", *data],
                              "index and classes disagree.*num_classes=51"),
        "label outside classes": (["plan", "--preset", "tiny", "--data", str(relabeled)],
                                  "index and classes disagree.*label must be in"),
        "unknown config key": (["plan", "--preset", "tiny", *data, "--config",
                                str(unknown_key)], "unknown config key 'learning_rate'.*valid"),
        "clip length": (["plan", "--preset", "tiny", *data, "--config", str(bad_clip)],
                        "cannot take 6"),
        "plan file": (["train", "--plan", str(tmp / "missing.json")], "cannot read plan file"),
        "checkpoint": (["evaluate", str(tmp / "missing.pt")], "checkpoint not found"),
    }


CASES = ["unknown preset", "missing dataset", "classes vs preset", "label outside classes",
         "unknown config key", "clip length", "plan file", "checkpoint"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(
    case: str, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, pattern = _bad_inputs(tiny_data, tmp_path)[case]
    started = list(tmp_path.rglob("plan.json"))
    code, out, err = _run([*argv, "--out", str(tmp_path / "o")] if argv[0] == "plan" else argv,
                          capsys)
    assert code == 2
    assert err.startswith("video3d: error: ") and err.count("\n") == 1, err
    assert re.search(pattern, err), err
    assert "Traceback" not in err and out == ""
    assert list(tmp_path.rglob("plan.json")) == started  # nothing was trained
    assert not (tmp_path / "o").exists()


def test_module_entry_point_and_presets() -> None:
    done = subprocess.run([sys.executable, "-m", "video3d", "presets"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "kinetics400" in done.stdout and "synthetic" in done.stdout


def test_data_synth_and_index_from_a_ucf101_layout(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["data", "synth", str(tmp_path / "s"), "--classes", "2",
                         "--videos-per-class", "2", "--frames", "16", "--size", "32"], capsys)
    assert code == 0 and "wrote 2 training and 2 test videos" in out
    assert (tmp_path / "s" / "train.txt").is_file()

    videos, ann = tmp_path / "ucf" / "videos", tmp_path / "ucf" / "ann"
    sources = sorted((tiny_data / "videos").glob("*.mp4"))[:3]
    for cls in ("Archery", "Biking"):
        (videos / cls).mkdir(parents=True)
    shutil.copy(sources[0], videos / "Archery" / "a1.mp4")
    shutil.copy(sources[1], videos / "Biking" / "b1.mp4")
    shutil.copy(sources[2], videos / "Biking" / "b2.mp4")
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 Archery\n2 Biking\n")
    (ann / "trainlist01.txt").write_text("Archery/a1.mp4 1\nBiking/b1.mp4 2\n")
    (ann / "testlist01.txt").write_text("Biking/b2.mp4\nBiking/missing.mp4\n")
    index = tmp_path / "index"
    code, out, err = _run(["data", "index", "--format", "ucf101", "--videos", str(videos),
                           "--annotations", str(ann), "--out", str(index)], capsys)
    assert code == 0, err
    assert "1 left out" in out  # the missing test video is reported, not fatal
    assert (index / "classes.txt").read_text().split() == ["Archery", "Biking"]
    train = (index / "train.txt").read_text().splitlines()
    assert [line.split()[-1] for line in train] == ["0", "1"]
    assert all(int(line.split()[-2]) == 16 for line in train)  # decoded frame counts
    assert len((index / "test.txt").read_text().splitlines()) == 1
    code, _, err = _run(["data", "index", "--format", "ucf101", "--videos", str(tmp_path / "x"),
                         "--annotations", str(ann), "--out", str(index)], capsys)
    assert code == 2 and "video folder not found" in err
