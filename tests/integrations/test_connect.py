"""Opening Optuna storages: several processes starting at once on a new database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_OPEN_AT = """
import json, sys, time
from stageplan.integrations.optuna import OptunaStorage
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
store = OptunaStorage(url, study_name="fleet", checkpoint_dir=sys.argv[3])
store.open({"states": [], "edges": []}, {"mode": "max"})
print(json.dumps(sorted(store.records())))
"""


def _start_together(url: str, n: int, ckpt: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    start_at = time.time() + 4.0  # after every interpreter has imported optuna
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT, url, str(start_at), str(ckpt)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_starting_at_once_on_a_new_postgres_database_all_open_it(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    # Before the schema lock, 17 of 24 such processes died with UniqueViolation on
    # pg_type_typname_nsp_index (Optuna creating its enum types from several processes).
    results = _start_together(fresh_postgres_url, 6, tmp_path / "ckpt")
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout) == []


def test_workers_starting_at_once_on_a_new_sqlite_file_all_open_it(tmp_path: Path) -> None:
    results = _start_together(f"sqlite:///{tmp_path / 'plan.db'}", 4, tmp_path / "ckpt")
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]

