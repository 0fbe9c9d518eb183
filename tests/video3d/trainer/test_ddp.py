"""DDP through the Trial protocol: 2 gloo processes on CPU agree on every stop; rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_gloo_ranks_agree_and_only_rank0_writes(tiny_data_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(tiny_data_dir), str(tmp_path)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = [p.communicate(timeout=300)[0] for p in procs]  # slow under a loaded CI box
    assert [p.returncode for p in procs] == [0, 0], outputs
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    # Same transitions, same epochs, same stop epoch on both ranks.
    assert rank0["epochs"] == rank1["epochs"]
    assert len({key for key, _ in rank0["epochs"]}) == 2  # both transitions ran on both ranks
    for key, last in rank0["stops"].items():
        assert max(e for k, e in rank1["epochs"] if k == key) == last
    # Only rank 0 wrote checkpoints.
    assert rank0["saves"] > 0 and rank1["saves"] == 0
    assert [p for p in (tmp_path / "storage" / "checkpoints").rglob("epoch-*") if p.is_file()]
