"""One rank of the 2-process gloo test (run by test_ddp.py, not collected by pytest).

Usage: python ddp_worker.py DATA_DIR OUT_DIR  (with RANK, WORLD_SIZE, MASTER_ADDR/PORT set)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stageplan import plan
from video3d.trainer import (
    VideoTrainer,
    close_distributed,
    get_preset,
    graph_for,
    init_distributed,
    load_data,
    rule_for,
)


def main() -> None:
    data_dir, out = sys.argv[1], Path(sys.argv[2])
    ctx = init_distributed("gloo")
    cfg = get_preset("tiny").replace(
        samplings=["uniform"], clip_lengths=[4], learning_rates=[0.05, 0.01], knee_delay=2,
        max_epochs=3,
    )
    data = load_data(data_dir, cfg, generate=False)
    trainer = VideoTrainer(cfg, data, dist=ctx, device="cpu")
    if ctx.is_main:
        result = plan(graph_for(cfg), trainer, storage=out / "storage", rule=rule_for(cfg),
                      progress=False, on_error="raise")
        trainer.finish()
        extra = {"stops": {f"{r.source}->{r.target}": len(r.values) - 1
                           for r in result.transitions}}
    else:
        trainer.follow()
        extra = {}
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(
        {"epochs": trainer.epochs_run, "saves": trainer.saves, **extra}))
    close_distributed()


if __name__ == "__main__":
    main()
