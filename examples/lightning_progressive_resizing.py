"""Plan progressive resizing x learning rate for a small CNN with PyTorch Lightning.

The workload: a small convolutional network (global pooling, so its weights fit every image
size) classifies generated 16x16 images into four classes: a stroke at one of two angles,
with or without a fine checkerboard pattern that only shows at full resolution. A state
fixes the *image size* the network is trained and validated at (the images are
area-downsampled to 4x4, 8x8 or 16x16: small images train fast and show the angle, but
averaging erases the pattern) and the *learning rate* (Adam, constant within a state). The
paper's extended transition graph over size x learning rate is planned with the knee rule;
every transition is one ``Trainer.fit`` through
``stageplan.integrations.lightning.LightningTransition``.

Run (about five minutes on two CPU cores; ``--quick`` takes well under a minute):
    python examples/lightning_progressive_resizing.py [--out runs/lightning-example] [--quick]
    python examples/lightning_progressive_resizing.py --storage sqlite:///runs/lr.db
        # then: optuna-dashboard sqlite:///runs/lr.db  (the plan is the study's note)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from stageplan.integrations.lightning import LightningTransition
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from stageplan import KneeRule, Plan, TransitionGraph

FULL = 16
CLASSES = 4


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Strokes at 30 or 120 degrees (class // 2), dotted or plain (class % 2), in noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    yy, xx = torch.meshgrid(
        torch.arange(FULL) - (FULL - 1) / 2, torch.arange(FULL) - (FULL - 1) / 2, indexing="ij"
    )
    checker = ((xx + yy).round().long() % 2 == 0).float()
    images = torch.empty(n, 1, FULL, FULL)
    for i, label in enumerate(labels.tolist()):
        angle = math.radians(30 if label < 2 else 120) + 0.1 * torch.randn(1, generator=g).item()
        shift = 4 * (torch.rand(1, generator=g).item() - 0.5)
        dist = (xx * math.sin(angle) - yy * math.cos(angle) - shift).abs()
        stroke = torch.exp(-(dist**2) / 3.0)
        if label % 2:  # the fine detail: a checkerboard on the stroke; 2x2 averages erase it
            stroke = stroke * (1 + 0.9 * (2 * checker - 1))
        images[i, 0] = stroke + 0.4 * torch.randn(FULL, FULL, generator=g)
    return images, labels


class Shapes(pl.LightningDataModule):
    """The generated images at one size (area-downsampled once per state)."""

    def __init__(self, data: dict[str, Any], size: int, batch_size: int = 64) -> None:
        super().__init__()
        self.data, self.size, self.batch_size = data, size, batch_size

    def _at_size(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.size == FULL else F.interpolate(x, size=self.size, mode="area")

    def train_dataloader(self) -> DataLoader:
        train = TensorDataset(self._at_size(self.data["x_train"]), self.data["y_train"])
        return DataLoader(train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        val = TensorDataset(self._at_size(self.data["x_val"]), self.data["y_val"])
        return DataLoader(val, batch_size=256)


class SmallCNN(pl.LightningModule):
    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.features = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1), nn.ReLU(),
            nn.Conv2d(12, 24, 3, padding=1), nn.ReLU(),
            nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(24, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fresh per transition: the state's learning rate, constant, as in the paper
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


def build(quick: bool) -> tuple[TransitionGraph, LightningTransition, KneeRule]:
    n_train, n_val = (400, 200) if quick else (1200, 400)
    x_train, y_train = make_images(n_train, seed=0)
    x_val, y_val = make_images(n_val, seed=1)
    data = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    if quick:
        graph = TransitionGraph.grid(("image_size", [8, 16]), ("learning_rate", [3e-3, 3e-4]))
        rule = KneeRule(delay=2, max_epochs=4)
    else:
        graph = TransitionGraph.grid(
            ("image_size", [4, 8, 16]), ("learning_rate", [3e-3, 1e-3, 3e-4])
        )
        rule = KneeRule(delay=3, max_epochs=12)

    def module(params: dict[str, Any]) -> SmallCNN:
        torch.manual_seed(0)  # the start's weights; later states load their source's
        return SmallCNN(float(params["learning_rate"]))

    def datamodule(params: dict[str, Any]) -> Shapes:
        return Shapes(data, int(params["image_size"]))

    run = LightningTransition(
        module,
        datamodule,
        monitor="val_acc",
        trainer_kwargs={
            "accelerator": "cpu",
            "devices": 1,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
    )
    return graph, run, rule


def main(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/lightning-example", help="output directory")
    parser.add_argument(
        "--storage", default=None, help="plan storage (default OUT/storage; or an Optuna URL)"
    )
    parser.add_argument("--quick", action="store_true", help="a small graph and dataset")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    out = Path(args.out)
    storage = args.storage or str(out / "storage")
    started = time.perf_counter()
    graph, run, rule = build(args.quick)
    result = run.plan(graph, storage=storage, rule=rule, progress=not args.quiet)
    result.save(out / "plan.json")
    if args.storage and ("://" in args.storage or args.storage.startswith("journal:")):
        from stageplan.integrations.optuna import publish_plan

        publish_plan(args.storage, result)
    print(result.summary())
    print(f"plan written to {out / 'plan.json'} ({time.perf_counter() - started:.1f} s)")
    return result


if __name__ == "__main__":
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    main(sys.argv[1:])
