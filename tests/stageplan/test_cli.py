from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _plan_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str]) -> object:
    """The rule ``stageplan plan`` with ``options`` planned with, as written in its plan."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "quick.py").write_text(
        "def run(trial):\n    for epoch in trial.epochs():\n"
        "        trial.report(10.0 - 9.0 / (1 + epoch) + 0.1 * (epoch % 2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = TransitionGraph.grid(("size", [1, 2]), ("lr", [0.1]))
    (tmp_path / "g.json").write_text(json.dumps(graph.to_dict()))
    out = tmp_path / "plan.json"
    argv = ["plan", "--graph", str(tmp_path / "g.json"), "--fn", "quick:run", "--storage",
            str(tmp_path / "store"), "--out", str(out), "--quiet", *options]
    assert main(argv) == 0
    return Plan.load(out).rule


def test_plan_command_takes_every_knee_rule_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each KneeRule option, set away from its default by its flag, reaches the planned rule."""
    import inspect

    from stageplan import KneeRule

    options: dict[str, Any] = dict(
        family="power", delay=4, horizon=500, min_epochs=5, max_epochs=12, risk=0.1,
        tolerance=2.0, resolution=0.01, ceiling=100.0, schedule="cosine", keep="auto",
        patience=3, min_delta=0.5, smooth=2, max_noise=5.0,
    )
    expected = KneeRule(**options)
    # every option of the rule is covered here (and so has a flag): a new one must get one too
    assert set(expected.to_dict()) == set(inspect.signature(KneeRule).parameters)
    flags = [x for k, v in options.items() for x in ("--" + k.replace("_", "-"), str(v))]
    assert _plan_rule(tmp_path, monkeypatch, flags) == expected.to_dict()


def test_plan_command_rule_paper_is_knee_rule_paper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stageplan import KneeRule
    from stageplan.cli import _parser, _rule_of

    def rule_of(*options: str) -> dict[str, object]:
        args = _parser().parse_args(["plan", "--graph", "g", "--fn", "m:f", "--storage", "s",
                                     *options])
        return _rule_of(args).to_dict()

    # no rule flag: KneeRule's own defaults (plan() then caps a rule without max_epochs)
    assert rule_of("--rule", "paper") == KneeRule.paper().to_dict()
    assert rule_of() == KneeRule().to_dict()
    guards = ["--delay", "3", "--max-epochs", "9", "--keep", "best", "--patience", "4",
              "--min-delta", "0.5", "--smooth", "2", "--max-noise", "1.5", "--min-epochs", "4"]
    assert _plan_rule(tmp_path, monkeypatch, ["--rule", "paper", *guards]) == \
        KneeRule.paper(delay=3, max_epochs=9, min_epochs=4, keep="best", patience=4,
                       min_delta=0.5, smooth=2, max_noise=1.5).to_dict()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--risk", "1.5"], "risk must lie in (0, 1), got 1.5"),
        (["--tolerance", "-1"], "tolerance must be a finite number >= 0, got -1.0"),
        (["--patience", "0"], "patience must be >= 1, got 0"),
        (["--patience", "3", "--smooth", "0"], "smooth must be >= 1, got 0"),
        (["--min-delta", "0.5"], "min_delta and smooth refine the patience guard"),
        (["--max-noise", "-2"], "max_noise must be a finite number >= 0, got -2.0"),
        (["--schedule", "cosine"], "schedule='cosine' needs method='evidence'"),
        (["--horizon", "5"], "horizon must be > delay=10, got 5"),
        (["--min-epochs", "9", "--max-epochs", "3"], "max_epochs must be >= min_epochs=9"),
        (["--family", "bogus"], "Unknown curve family 'bogus'"),
        (["--rule", "paper", "--risk", "0.1"], "knee rule (--rule paper): risk, tolerance"),
        (["--rule", "paper", "--keep", "auto"], "keep='auto' needs method='evidence'"),
    ],
)
def test_plan_command_bad_rule_option_is_one_line(
    tmp_path: Path, options: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 2 and one error line naming the option, before the function is imported."""
    argv = ["plan", "--graph", str(tmp_path / "missing.json"), "--fn", "no_such_mod:run",
            "--storage", str(tmp_path / "s"), *options]
    assert main(argv) == 2
    line = _error_line(capsys.readouterr().err, "plan")
    assert match in line
    assert not (tmp_path / "s").exists()


def test_plan_command_unknown_schedule_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--graph", "g", "--fn", "m:f", "--storage", "s", "--schedule", "linear"])
    assert exc.value.code == 2
    assert "argument --schedule: invalid choice: 'linear'" in capsys.readouterr().err
