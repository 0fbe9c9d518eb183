"""Plan the training schedule of a small numpy network: no torch, no video.

The workload: a one-hidden-layer network classifies 16x16 images of oriented strokes. A
state fixes the *input resolution* the network is trained on (the images are block-averaged
to 4x4, 8x8 or 16x16 and scaled back up, so the weights keep their shape, just as a 3D
ConvNet keeps its weights across clip lengths) and the *learning rate*. Coarse inputs train
fast but cap the accuracy; full resolution needs more epochs and a low learning rate to
finish. The paper's extended transition graph over resolution x learning rate is planned
with the knee rule, exactly as clip length x learning rate is for video.

Run:
    python examples/numpy_staged.py [--out runs/numpy-example] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from stageplan import KneeRule, Plan, TransitionGraph, Trial, plan

SIZE = 16
N_CLASSES = 6
HIDDEN = 48


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Strokes at one of six angles; classes 2k and 2k+1 differ by a thin detail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - (SIZE - 1) / 2
    images = np.empty((n, SIZE * SIZE), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, size=n)
    for i, label in enumerate(labels):
        angle = np.pi * (label // 2) / 3 + rng.normal(0, 0.08)
        dist = np.abs(xx * np.sin(angle) - yy * np.cos(angle))
        img = np.exp(-(dist**2) / 2.0)
        if label % 2:  # the fine detail: a one-pixel gap pattern only full resolution shows
            img = img * (1 - 0.8 * ((xx + yy).astype(int) % 2 == 0) * (dist < 1.5))
        img += rng.normal(0, 1.0, img.shape)
        images[i] = img.ravel()
    return images, labels


def at_resolution(x: np.ndarray, res: int) -> np.ndarray:
    """Block-average to ``res`` x ``res`` and scale back up to the full grid."""
    f = SIZE // res
    imgs = x.reshape(-1, res, f, res, f).mean(axis=(2, 4))
    return np.repeat(np.repeat(imgs, f, axis=1), f, axis=2).reshape(len(x), -1)


def init_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(0, 1 / SIZE, (SIZE * SIZE, HIDDEN)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, N_CLASSES)).astype(np.float32),
        "b2": np.zeros(N_CLASSES, np.float32),
    }


def forward(w: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.maximum(x @ w["w1"] + w["b1"], 0)
    return h, h @ w["w2"] + w["b2"]


def accuracy(w: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(w, x)[1].argmax(1) == y).mean())


def train_epoch(
    w: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    lr: float,
    rng: np.random.Generator,
    batch: int = 32,
) -> None:
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        xb, yb = x[idx], y[idx]
        h, logits = forward(w, xb)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(idx)), yb] -= 1
        p /= len(idx)
        dh = (p @ w["w2"].T) * (h > 0)
        w["w2"] -= lr * h.T @ p
        w["b2"] -= lr * p.sum(0)
        w["w1"] -= lr * xb.T @ dh
        w["b1"] -= lr * dh.sum(0)


class Workload:
    """Data and the transition function (picklable, so ``workers > 1`` can fork it)."""

    def __init__(self, n_train: int = 1200, n_val: int = 600, seed: int = 0) -> None:
        self.x_train, self.y_train = make_data(n_train, seed)
        self.x_val, self.y_val = make_data(n_val, seed + 1)

    def __call__(self, trial: Trial) -> None:
        res = int(trial.params["resolution"])  # type: ignore[arg-type]
        lr = float(trial.params["learning_rate"])  # type: ignore[arg-type]
        if trial.init_checkpoint is None:
            w = init_weights()
        else:
            with np.load(trial.init_checkpoint) as data:
                w = {k: data[k].copy() for k in data.files}
        x_train, x_val = at_resolution(self.x_train, res), at_resolution(self.x_val, res)
        # A seed of the transition's own (str hash() differs per process: not reproducible).
        edge = f"{trial.source.name}->{trial.target.name}"
        rng = np.random.default_rng(zlib.crc32(edge.encode()))

        def save(path: str) -> None:
            with open(path, "wb") as fh:
                np.savez(fh, **w)

        for epoch in trial.epochs():
            if epoch > 0:
                train_epoch(w, x_train, self.y_train, lr, rng)
            trial.report(accuracy(w, x_val, self.y_val), save=save)


def graph() -> TransitionGraph:
    return TransitionGraph.grid(("resolution", [4, 8, 16]), ("learning_rate", [0.5, 0.1, 0.02]))


def main(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/numpy-example", help="plan directory")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = plan(
        graph(),
        Workload(),
        storage=Path(args.out) / "storage",
        rule=KneeRule(delay=5, max_epochs=60),
        workers=args.workers,
        progress=not args.quiet,
    )
    result.save(Path(args.out) / "plan.json")
    print(result.summary())
    print(
        f"plan written to {Path(args.out) / 'plan.json'} ({time.perf_counter() - started:.1f} s)"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
