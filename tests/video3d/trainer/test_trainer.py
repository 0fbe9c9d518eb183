"""VideoTrainer through the Trial protocol, its metrics and the hand-tuned baseline schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from stageplan import State
from video3d.trainer import (
    VideoTrainer,
    get_preset,
    hand_tuned_plan,
    load_checkpoint_file,
    load_data,
    topk_correct,
)


class FakeTrial:
    """Runs a fixed number of epochs and remembers what the trainer reported and saved."""

    def __init__(self, params: dict[str, Any], epochs: int, init: str | None,
                 tmp: Path) -> None:
        self.source, self.target = State("a"), State("b", params)
        self.params = params
        self.init_checkpoint = init
        self.resumed = False
        self.values: list[float] = []
        self.saved: list[str] = []
        self._epochs = epochs
        self._tmp = tmp

    def epochs(self) -> Iterator[int]:
        yield from range(self._epochs + 1)

    def report(self, value: float, *, save: Callable[[str], Any] | None = None) -> None:
        self.values.append(value)
        if save is not None and len(self.values) > 1:
            path = str(self._tmp / f"epoch{len(self.values) - 1}.pt")
            save(path)
            self.saved.append(path)


@pytest.fixture(scope="module")
def trainer(tiny_data_dir: Path) -> VideoTrainer:
    cfg = get_preset("tiny")
    return VideoTrainer(cfg, load_data(tiny_data_dir, cfg), device="cpu")


@pytest.mark.parametrize(
    ("labels", "expected"), [([1, 2], [1, 1, 2]), ([0, 0], [1, 2, 2]), ([2, 1], [0, 1, 2])]
)
def test_topk_correct(labels: list[int], expected: list[int]) -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert topk_correct(logits, torch.tensor(labels), (1, 2, 5)) == expected


@pytest.mark.parametrize("total", [0, 1, 3, 7, 20, 33])
def test_hand_tuned_plan_uses_exactly_the_total(total: int) -> None:
    cfg = get_preset("synthetic")
    plan = hand_tuned_plan(cfg, total, "consecutive")
    assert plan.total_epochs == total
    clips = [s.params["clip_length"] for s in plan.stages]
    lrs = [s.params["learning_rate"] for s in plan.stages]
    assert clips == [8, 32, 32] and lrs == sorted(lrs, reverse=True) and len(set(lrs)) == 3


def test_transition_from_scratch_then_from_its_checkpoint(
    trainer: VideoTrainer, tmp_path: Path
) -> None:
    params = {"sampling": "uniform", "clip_length": 4, "learning_rate": 0.05}
    trial = FakeTrial(params, 2, None, tmp_path)
    trainer(trial)
    assert trial.values[0] == 0.0  # untrained start
    assert all(0.0 <= v <= 1.0 for v in trial.values) and len(trial.values) == 3
    assert len(trial.saved) == 2 and trainer.saves >= 2
    payload = load_checkpoint_file(trial.saved[-1])
    assert payload["params"] == params and payload["classes"] == trainer.data.classes
    # fine-tuning from it at a longer clip: epoch 0 evaluates the loaded weights (frozen BN: 8)
    longer = {"sampling": "uniform", "clip_length": 8, "learning_rate": 0.01}
    nxt = FakeTrial(longer, 1, trial.saved[-1], tmp_path)
    trainer(nxt)
    model = trainer.new_model()
    trainer.load_checkpoint(model, trial.saved[-1])
    assert nxt.values[0] == pytest.approx(trainer.evaluate(model, "uniform", 8)["metric"])


def test_evaluate_and_final_protocol(trainer: VideoTrainer) -> None:
    model = trainer.new_model()
    val = trainer.evaluate(model, "consecutive", 4)
    assert val["top1"] <= val["top3"] <= val["top5"] == 1.0  # 2 classes
    assert val["metric"] == val["top1"]  # 2 classes: top-3 and top-5 are 1 by construction
    test = trainer.final_evaluate(model, "consecutive", 4)
    assert test["videos"] == len(trainer.data.test) and 0 <= test["top1"] <= test["top5"] == 1


def test_final_protocol_averages_every_view_of_each_video(
    trainer: VideoTrainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final protocol's per-video scores, recomputed item by item: the mean of the
    logits of every clip and crop of a video."""
    from video3d.trainer import _trainer, make_dataset

    seen: list[torch.Tensor] = []

    def keep_scores(scores: torch.Tensor, labels: torch.Tensor, ks: Any) -> list[float]:
        seen.append(scores.detach().clone())
        return topk_correct(scores, labels, ks)

    monkeypatch.setattr(_trainer, "topk_correct", keep_scores)
    torch.manual_seed(3)
    model = trainer.new_model()
    model.eval()
    videos = trainer.data.test
    data = make_dataset(videos, trainer.config, mode="test", sampling="uniform",
                        clip_length=4, cache=trainer.data.cache)
    views: dict[int, list[torch.Tensor]] = {}
    with torch.no_grad():
        for i in range(len(data)):
            crops, _, video = data[i]
            views.setdefault(video, []).append(model(crops).double().mean(dim=0))
    assert len(views) == len(videos) and len(views[0]) == trainer.config.test_clips
    want = torch.stack([torch.stack(views[v]).mean(dim=0) for v in range(len(videos))])
    result = trainer.final_evaluate(model, "uniform", 4)
    (scores,) = seen
    assert torch.allclose(scores.cpu(), want, atol=1e-5)
    assert not torch.allclose(want[0], want[1], atol=1e-5)  # the videos' scores differ
    assert result["videos"] == len(videos)


def test_frozen_bn_follows_the_clip_length(trainer: VideoTrainer) -> None:
    model = trainer.new_model()
    trainer.set_bn_mode(model, 8)  # tiny preset: frozen at 8 frames
    assert model.bn_stats_frozen
    trainer.set_bn_mode(model, 4)
    assert not model.bn_stats_frozen


def test_train_schedule_runs_every_stage(trainer: VideoTrainer) -> None:
    plan = hand_tuned_plan(trainer.config, 3, "uniform")
    model = trainer.train_schedule(plan, name="t")
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("classes, expected", [(2, 0.5), (3, 0.5), (4, 0.7), (5, 0.7),
                                               (6, 0.8), (400, 0.8)])
def test_planning_metric_uses_top_k_below_the_class_count(classes: int, expected: float) -> None:
    from video3d.trainer import planning_metric

    top = {"top1": 0.5, "top3": 0.9, "top5": 1.0}
    assert planning_metric(top, classes) == pytest.approx(expected)


def test_normalising_on_the_device_trains_exactly_like_the_loader_path(
    tiny_data_dir: Path,
) -> None:
    """uint8 crops normalised where the model runs give the CPU pipeline's numbers."""
    import dataclasses

    losses = []
    for on_device in (False, True):
        cfg = dataclasses.replace(get_preset("tiny"), flip=False, normalize_on_device=on_device)
        t = VideoTrainer(cfg, load_data(tiny_data_dir, cfg), device="cpu")
        torch.manual_seed(0)
        model = t.new_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        losses.append(t.train_epoch(model, model, optimizer, "uniform", 4, seed=3, epoch=0))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_flips_on_the_device_are_seeded(tiny_data_dir: Path) -> None:
    import dataclasses

    cfg = dataclasses.replace(get_preset("tiny"), flip=True, normalize_on_device=True)
    t = VideoTrainer(cfg, load_data(tiny_data_dir, cfg), device="cpu")
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = t.new_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        losses.append(t.train_epoch(model, model, optimizer, "uniform", 4, seed=3, epoch=1))
    assert losses[0] == losses[1]
