from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stageplan import Plan, TransitionGraph
from stageplan.cli import main


def test_graph_paper_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "graph",
                "--clip-lengths",
                "16",
                "32",
                "64",
                "--learning-rates",
                "0.01",
                "0.001",
                "0.0001",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "19 states, 36 edges" in out and "[final]" in out


def test_graph_json_round_trips_through_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "graph",
                "--clip-lengths",
                "16",
                "32",
                "--learning-rates",
                "0.1",
                "0.01",
                "--basic",
                "--json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    (tmp_path / "g.json").write_text(json.dumps(data))
    assert main(["graph", str(tmp_path / "g.json")]) == 0
    assert TransitionGraph.from_dict(data).fingerprint()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            '{"states": [{"name": "start"}], "edges": [["start", "x"]], "start": "start"}',
            "unknown state 'x'",
        ),
        ("{", "is not JSON"),
        ('{"paper": {"clip_lengths": [32, 16], "learning_rates": [0.1]}}', "strictly increasing"),
        ('{"edges": []}', "needs the keys"),
    ],
)
def test_bad_graph_files_exit_2_with_one_line(
    tmp_path: Path, content: str, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "g.json").write_text(content)
    assert main(["graph", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err
    assert "stageplan graph: error:" in err and match in err
    assert "Traceback" not in err


def test_plan_command_runs_a_worker_and_show_prints_it(tmp_path: Path) -> None:
    module = tmp_path / "mytrainer.py"
    module.write_text(
        "def run(trial):\n"
        "    for epoch in trial.epochs():\n"
        "        trial.report(min(epoch, 8) * trial.params['size'] - 0.01 * epoch ** 2)\n"
    )
    graph = TransitionGraph.grid(("size", [1, 2]), ("lr", [0.1, 0.01]))
    (tmp_path / "g.json").write_text(json.dumps(graph.to_dict()))
    env_path = {"PYTHONPATH": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "stageplan",
        "plan",
        "--graph",
        str(tmp_path / "g.json"),
        "--fn",
        "mytrainer:run",
        "--storage",
        str(tmp_path / "store"),
        "--delay",
        "3",
        "--max-epochs",
        "30",
        "--out",
        str(tmp_path / "plan.json"),
        "--quiet",
    ]
    import os

    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **env_path}, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "plan written to" in done.stdout
    plan = Plan.load(tmp_path / "plan.json")
    assert plan.stages[-1].state == "size=2,lr=0.01"
    shown = subprocess.run(
        [sys.executable, "-m", "stageplan", "show", str(tmp_path / "plan.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "explored 7 transitions" in shown.stdout


def test_plan_command_bad_function(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = TransitionGraph.grid(("size", [1, 2]), ("lr", [0.1, 0.01]))
    (tmp_path / "g.json").write_text(json.dumps(graph.to_dict()))
    code = main(
        [
            "plan",
            "--graph",
            str(tmp_path / "g.json"),
            "--fn",
            "no_such_mod:run",
            "--storage",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    assert "cannot import module 'no_such_mod'" in capsys.readouterr().err
    assert (
        main(
            [
                "plan",
                "--graph",
                str(tmp_path / "g.json"),
                "--fn",
                "json",
                "--storage",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert "must look like 'package.module:function'" in capsys.readouterr().err


def _error_line(err: str, command: str) -> str:
    """The one ``stageplan <command>: error:`` line, last on stderr, and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith(f"stageplan {command}: error: ")]
    assert len(lines) == 1, err
    assert err.rstrip("\n").splitlines()[-1] == lines[0]
    assert "Traceback" not in err
    return lines[0]


def test_plan_command_expected_failures_are_one_line(tmp_path: Path) -> None:
    """Each in its own process, as a user meets it: exit status 2 and one error line."""
    import os

    (tmp_path / "failing.py").write_text(
        "def run(trial):\n    raise RuntimeError('out of memory in ' + trial.target.name)\n"
        "def ok(trial):\n    for epoch in trial.epochs():\n        trial.report(float(epoch))\n"
        "class Needs:\n    def __init__(self, size):\n        self.size = size\n"
    )
    graph = TransitionGraph.grid(("size", [1, 2]), ("lr", [0.1, 0.01]))
    (tmp_path / "g.json").write_text(json.dumps(graph.to_dict()))
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    base = ["plan", "--graph", str(tmp_path / "g.json"), "--quiet", "--max-epochs", "3", "--fn"]
    store = str(tmp_path / "store")
    cases = {
        "no reachable final state": (
            [*base, "failing:run", "--storage", store],
            ["no final state was reached", "out of memory in",
             f"a failed one's with its traceback, is in the storage {store}"],
        ),
        "storage is a file": ([*base, "failing:ok", "--storage", str(a_file)],
                              ["exists and is not a directory"]),
        "bad option": ([*base, "failing:ok", "--storage", store + "2", "--workers", "0"],
                       ["workers must be an int >= 1, got 0"]),
        "class that needs arguments": ([*base, "failing:Needs", "--storage", store + "4"],
                                       ["cannot create Needs without arguments"]),
        "unwritable output": ([*base, "failing:ok", "--storage", store + "3", "--out",
                               str(a_file / "plan.json")], [str(a_file)]),
    }
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for name, (argv, expected) in cases.items():
        done = subprocess.run([sys.executable, "-m", "stageplan", *argv], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 2, (name, done.stderr)
        line = _error_line(done.stderr, "plan")
        assert all(text in line for text in expected), (name, line)
    records = [json.loads(p.read_text()) for p in (tmp_path / "store" / "transitions").glob("*")]
    assert records and all(r["status"] == "failed" and "out of memory" in r["error"]
                           for r in records)
