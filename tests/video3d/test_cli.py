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
    assert reasons <= {"converged", "ceiling", "max_epochs"}  # the default (evidence) rule
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
    junk = tmp / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 8)
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
        "not a checkpoint": (["evaluate", str(junk)], "junk.pt is not a video3d trainer "
                             "checkpoint: torch.load cannot read it"),
        "device": (["plan", "--preset", "tiny", *data, "--device", "gpu"],
                   "--device 'gpu' is not a torch device"),
    }


CASES = ["unknown preset", "missing dataset", "classes vs preset", "label outside classes",
         "unknown config key", "clip length", "plan file", "checkpoint", "not a checkpoint",
         "device"]


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


# ------------------------------------------------------------------ expected failures, bad videos
def _error_line(err: str, prog: str = "video3d") -> str:
    """The one ``<prog>: error:`` line, last on stderr, and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(lines) == 1, err[-3000:]
    assert err.rstrip("\n").splitlines()[-1] == lines[0]
    assert "Traceback" not in err
    return lines[0]


def _damage(tiny: Path, tmp: Path) -> tuple[Path, list[str]]:
    """A copy of the tiny data with one training video of random bytes and one cut in half."""
    import os

    from video3d.trainer import load_data

    root = tmp / "damaged"
    shutil.copytree(tiny, root)
    train = load_data(root, get_preset("tiny"), probe=False).train
    first, second = Path(train[0].path), Path(train[1].path)
    first.write_bytes(os.urandom(first.stat().st_size))
    second.write_bytes(second.read_bytes()[: second.stat().st_size // 2])
    return root, [str(first), str(second)]


@pytest.mark.slow
@pytest.mark.parametrize("cached", [True, False])
def test_plan_goes_on_past_unreadable_videos_and_counts_them(
    cached: bool, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, bad = _damage(tiny_data, tmp_path)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"cache_videos": cached, "num_workers": 0}))
    out = tmp_path / "run"
    code, stdout, err = _run(["plan", "--preset", "tiny", "--data", str(root), "--config",
                              str(config), "--out", str(out), "--no-baseline", "--quiet"], capsys)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    for path in bad:  # reported once each, by path, with the decoder's error
        named = [line for line in err.splitlines() if path in line]
        assert len(named) == 1 and named[0].startswith("warning: unreadable video "), err
    assert "left out 2 unreadable of 24 videos (2 training, 0 validation, 0 test)" in err
    plan = json.loads((out / "plan.json").read_text())
    assert [t["status"] for t in plan["transitions"]] == ["complete"] * 6
    report = json.loads((out / "results.json").read_text())["bad_videos"]
    assert report["count"] == 2 and report["paths"] == sorted(bad)
    assert report["share"] == pytest.approx(2 / 24, abs=1e-6) and report["max_share"] == 0.3
    assert "unreadable videos left out or replaced: 2 (8.3%" in stdout


def test_too_many_unreadable_videos_stop_before_training(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, bad = _damage(tiny_data, tmp_path)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_bad_video_share": 0.1}))
    out = tmp_path / "run"
    code, stdout, err = _run(["plan", "--preset", "tiny", "--data", str(root), "--config",
                              str(config), "--out", str(out)], capsys)
    assert code == 2 and stdout == ""
    line = _error_line(err)
    assert "unreadable videos: 2 of 14 training videos (14.3%), more than " \
        "max_bad_video_share=0.1 allows" in line and bad[0] in line
    assert not out.exists()


def test_plan_without_a_reachable_final_state_is_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: VideoTrainer, trial: Any, *, key: str) -> None:
        raise ValueError(f"no GPU memory left for {key}")

    monkeypatch.setattr(VideoTrainer, "run_transition", broken)
    out = tmp_path / "run"
    code, stdout, err = _run(["plan", "--preset", "tiny", "--data", str(tiny_data), "--out",
                              str(out), "--quiet"], capsys)
    assert code == 2
    line = _error_line(err)
    assert "no final state was reached" in line and "no GPU memory left" in line
    assert line.endswith(f"is in the plan storage {out / 'storage'}")
    records = [json.loads(p.read_text()) for p in (out / "storage" / "transitions").glob("*.json")]
    assert len(records) == 4 and all(r["status"] == "failed" for r in records)
    assert all("no GPU memory left" in r["error"] for r in records)


def test_storage_and_output_errors_are_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stageplan import TransitionGraph, plan

    a_file = tmp_path / "file"
    a_file.write_text("not a directory\n")
    other = tmp_path / "other-plan"  # a storage that holds another graph's plan
    plan(TransitionGraph.grid(("x", [1, 2]), ("y", [1])),
         lambda t: [t.report(1.0) for _ in t.epochs()], storage=str(other))
    base = ["plan", "--preset", "tiny", "--data", str(tiny_data), "--quiet"]
    cases = {
        "--storage is a file": (["--storage", str(a_file), "--out", str(tmp_path / "o1")],
                                "exists and is not a directory"),
        "another plan's storage": (["--storage", str(other), "--out", str(tmp_path / "o2")],
                                   "use another --out or --storage"),
        "--out under a file": (["--out", str(a_file / "run")], str(a_file)),
    }
    for name, (extra, expected) in cases.items():
        code, _, err = _run([*base, *extra], capsys)
        assert code == 2, name
        assert expected in _error_line(err), (name, err)


def test_an_unreadable_video_met_in_a_loader_worker_is_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A video that passed the probe and breaks during the final evaluation, in a worker."""
    from torch.utils.data._utils import ExceptionWrapper

    from video3d.data import VideoDecodeError

    def evaluate(self: VideoTrainer, *args: Any, **kwargs: Any) -> None:
        try:
            raise VideoDecodeError("decoding failed before frame 9", path="/data/v7.mp4")
        except VideoDecodeError:
            ExceptionWrapper(where="in DataLoader worker process 0").reraise()

    checkpoint = tmp_path / "w.pt"
    trainer = VideoTrainer(get_preset("tiny"), _tiny_bundle(tiny_data), device="cpu")
    trainer.save_checkpoint(trainer.new_model(), str(checkpoint),
                            {"sampling": "uniform", "clip_length": 4, "learning_rate": 0.05})
    monkeypatch.setattr(VideoTrainer, "final_evaluate", evaluate)
    code, _, err = _run(["evaluate", str(checkpoint), "--quiet"], capsys)
    assert code == 2
    line = _error_line(err)
    assert line.endswith("VideoDecodeError: /data/v7.mp4: decoding failed before frame 9 "
                         "(in a DataLoader worker)")


def _tiny_bundle(tiny: Path) -> Any:
    from video3d.trainer import load_data

    return load_data(tiny, get_preset("tiny"), probe=False)


def test_checkpoint_location_errors_are_one_line_before_training(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["plan", "--preset", "tiny", "--data", str(tiny_data), "--quiet"]
    cases = {
        "--checkpoints alone": (["--checkpoints", str(tmp_path / "c")],
                                "--checkpoints needs --storage"),
        "with a directory storage": (["--storage", str(tmp_path / "s"), "--checkpoints",
                                      str(tmp_path / "c")], "directory storage"),
        "a database without one": (["--storage", "postgresql://u:secret@127.0.0.1:1/x"],
                                   "no checkpoint location"),
    }
    for i, (name, (extra, expected)) in enumerate(cases.items()):
        out = tmp_path / f"o{i}"
        code, _, err = _run([*base, *extra, "--out", str(out)], capsys)
        assert code == 2, name
        line = _error_line(err)
        assert expected in line and "--checkpoints" in line, (name, err)
        assert "secret" not in err
        assert not list(out.rglob("plan.json")), name  # nothing was trained
