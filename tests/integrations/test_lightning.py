"""LightningTransition end to end with the real Lightning Trainer (CPU, tiny model)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from stageplan.integrations.lightning import LightningTransition, load_weights  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from stageplan import (  # noqa: E402
    KneeRule,
    LocalStorage,
    Plan,
    TransitionFailedError,
    TransitionGraph,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny models: one intra-op thread is as fast, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


EVENTS: list[dict[str, Any]] = []  # what the module saw, per process


class TinyNet(pl.LightningModule):
    """A conv net with global pooling: its weights fit every image size."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.body = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).amax(dim=(2, 3)))

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        acc = (self(x).argmax(1) == y).float().mean()
        self.log("val_acc", acc, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        EVENTS.append({"kind": "train_epoch", "lr": self.lr, "rank": self.global_rank})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        EVENTS.append({"kind": "optimizer", "lr": self.lr, "rank": self.global_rank})
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def images(n: int, size: int, seed: int) -> TensorDataset:
    """Class 1 has a bright 2x2 spot somewhere; class 0 is noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g) * 0.5
    y = torch.randint(0, 2, (n,), generator=g)
    for i in torch.nonzero(y).flatten().tolist():
        r, c = torch.randint(0, size - 1, (2,), generator=g).tolist()
        x[i, 0, r : r + 2, c : c + 2] += 1.2
    return TensorDataset(x, y)


class Images(pl.LightningDataModule):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(images(128, self.size, 0), batch_size=32, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(images(128, self.size, 1), batch_size=64)


def net(params: dict[str, Any]) -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(float(params["learning_rate"]))


def data(params: dict[str, Any]) -> Images:
    return Images(int(params["size"]))


TRAINER = {
    "accelerator": "cpu",
    "logger": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def graph() -> TransitionGraph:
    return TransitionGraph.grid(("size", [6, 12]), ("learning_rate", [0.2, 0.02]))


def test_plans_with_the_real_trainer(tmp_path: Path) -> None:
    EVENTS.clear()
    run = LightningTransition(net, data, monitor="val_acc", trainer_kwargs=TRAINER)
    result = run.plan(
        graph(), storage=tmp_path / "plan", rule=KneeRule(delay=2, max_epochs=5), progress=False
    )
    records = {(t.source, t.target): t for t in result.transitions}
    assert len(records) == len(graph().edges)
    assert all(t.status == "complete" for t in records.values()), result.summary()
    # Each transition trained len(values) - 1 epochs with a fresh optimizer at its own LR:
    # the Trainer stopped exactly when the rule said so (max_epochs=-1 otherwise).
    optimizers = [e for e in EVENTS if e["kind"] == "optimizer"]
    assert len(optimizers) == len(records)
    assert sum(e["kind"] == "train_epoch" for e in EVENTS) == sum(
        len(t.values) - 1 for t in records.values()
    )
    assert all(len(t.values) <= 6 for t in records.values())
    assert {e["lr"] for e in optimizers} == {0.2, 0.02}
    # Epoch 0 validates the source's kept checkpoint: with the same image size it is the
    # source's value again, which only holds if the weights were loaded.
    by_target = {t.target: t for t in records.values()}
    same_size = [t for t in records.values() if t.source.startswith("size=") and
                 t.source.split(",")[0] == t.target.split(",")[0]]
    assert same_size
    for t in same_size:
        assert t.values[0] == pytest.approx(by_target[t.source].value)
    # The kept checkpoints are Lightning's own files.
    store = LocalStorage(tmp_path / "plan")
    kept = [  # the planner keeps the checkpoints of each state's best incoming transition
        t for t in records.values()
        if t.checkpoint and (t.checkpoint_epoch or 0) > 0
        and (tmp_path / "plan" / t.checkpoint).exists()
    ]
    assert kept
    for t in kept:
        path = store.checkpoints.fetch(t.checkpoint or "")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        assert "pytorch-lightning_version" in ckpt and "state_dict" in ckpt
        assert "optimizer_states" not in ckpt  # weights only: optimizers start fresh
        fresh = net({"learning_rate": 0.02})
        load_weights(fresh, path)
        assert torch.equal(fresh.head.weight, ckpt["state_dict"]["head.weight"])
    assert result.final_value is not None and result.final_value > 0.6


def test_a_monitor_never_logged_fails_the_transition_by_name(tmp_path: Path) -> None:
    run = LightningTransition(net, data, monitor="val_top1", trainer_kwargs=TRAINER)
    with pytest.raises(TransitionFailedError, match="val_top1.*val_acc"):
        run.plan(graph(), storage=tmp_path, rule=KneeRule(delay=2, max_epochs=3),
                 progress=False, on_error="raise")


def test_ddp_without_torchrun_is_refused_before_any_process_starts(tmp_path: Path) -> None:
    trainer = {**TRAINER, "devices": 2, "strategy": "ddp"}
    run = LightningTransition(net, data, monitor="val_acc", trainer_kwargs=trainer)
    with pytest.raises(TransitionFailedError, match="torchrun --nproc_per_node 2"):
        run.plan(graph(), storage=tmp_path, rule=KneeRule(delay=2, max_epochs=3),
                 progress=False, on_error="raise")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="monitor"):
        LightningTransition(net, data, monitor="")
    with pytest.raises(TypeError, match="module"):
        LightningTransition("net", data, monitor="val_acc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trainer_kwargs"):
        LightningTransition(net, data, monitor="val_acc", trainer_kwargs=3)  # type: ignore[arg-type]


def test_load_weights_reads_a_plain_state_dict_and_refuses_other_files(tmp_path: Path) -> None:
    source = net({"learning_rate": 0.1})
    with torch.no_grad():
        source.head.bias.fill_(3.0)
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    target = net({"learning_rate": 0.1})
    load_weights(target, str(tmp_path / "plain.pt"))
    assert torch.equal(target.head.bias, torch.full((2,), 3.0))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt"):
        load_weights(target, str(tmp_path / "list.pt"))


class Crash(BaseException):
    """Stands for a killed process: not an Exception, so the planner does not record it."""


class CrashingNet(TinyNet):
    crash_at: int | None = None

    def on_fit_start(self) -> None:
        EVENTS.append({"kind": "fit_start", "w": float(self.head.weight.sum()), "rank": 0})

    def on_validation_epoch_end(self) -> None:
        kind = "validate" if self.trainer.state.fn == "validate" else "val"
        EVENTS.append({"kind": kind, "w": float(self.head.weight.sum()), "rank": 0})

    def on_train_epoch_start(self) -> None:
        if self.crash_at is not None and self.current_epoch == self.crash_at:
            raise Crash


def test_an_interrupted_transition_resumes_from_its_last_kept_weights(tmp_path: Path) -> None:
    EVENTS.clear()

    def crashing(params: dict[str, Any]) -> TinyNet:
        torch.manual_seed(0)
        return CrashingNet(float(params["learning_rate"]))

    one = TransitionGraph.grid(("size", [6]), ("learning_rate", [0.2]))
    run = LightningTransition(crashing, data, monitor="val_acc", trainer_kwargs=TRAINER)
    rule = KneeRule(delay=2, min_epochs=4, max_epochs=5)  # runs past the crash at epoch 3
    settings = {"storage": tmp_path, "rule": rule, "progress": False}
    CrashingNet.crash_at = 2  # dies in its third training epoch, after reporting epoch 2
    try:
        with pytest.raises(Crash):
            run.plan(one, **settings)
    finally:
        CrashingNet.crash_at = None
    ours = {"validate", "fit_start", "val"}
    first = [e for e in EVENTS if e["kind"] in ours]
    assert [e["kind"] for e in first] == ["validate", "fit_start", "val", "val"]
    EVENTS.clear()
    result = run.plan(one, **settings)
    (record,) = result.transitions
    assert record.resumed_from == 2 and record.status == "complete"
    # no epoch-0 validation again; the fit starts from the weights kept at epoch 2
    again = [e for e in EVENTS if e["kind"] in ours]
    assert again[0]["kind"] == "fit_start" and "validate" not in [e["kind"] for e in again]
    assert again[0]["w"] == pytest.approx(first[-1]["w"])
    assert len(record.values) == 3 + sum(e["kind"] == "val" for e in again)


# -- DDP: two CPU processes with gloo, launched by torchrun -------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ddp_two_gloo_ranks_follow_rank_zero(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), __file__, str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    plan = Plan.load(tmp_path / "plan.json")
    # every rank got the same plan, ran one fit per transition and stopped at the same epoch
    assert ranks[0]["plan"] == ranks[1]["plan"] == plan.to_dict()["stages"]
    trained = sum(len(t.values) - 1 for t in plan.transitions)
    for r, seen in enumerate(ranks):
        assert seen["world_size"] == 2
        assert [e["rank"] for e in seen["events"]] == [r] * len(seen["events"])
        assert sum(e["kind"] == "optimizer" for e in seen["events"]) == len(plan.transitions)
        assert sum(e["kind"] == "train_epoch" for e in seen["events"]) == trained
    assert all(t.status == "complete" for t in plan.transitions)


def _ddp_main(out: Path) -> None:
    import torch.distributed as dist

    trainer = {**TRAINER, "devices": 2, "strategy": "ddp"}
    run = LightningTransition(net, data, monitor="val_acc", trainer_kwargs=trainer)
    small = TransitionGraph.grid(("size", [6, 12]), ("learning_rate", [0.2]))
    result = run.plan(small, storage=out / "plan", rule=KneeRule(delay=1, max_epochs=3),
                      progress=False, backend="gloo")
    rank = dist.get_rank()
    if rank == 0:
        result.save(out / "plan.json")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world_size": dist.get_world_size(),
        "events": EVENTS,
        "plan": result.to_dict()["stages"],
    }))
    dist.destroy_process_group()


if __name__ == "__main__":
    _ddp_main(Path(sys.argv[1]))
