"""The video trainer: one object that trains and evaluates 3D ConvNets under a state's settings.

:class:`VideoTrainer` is a transition function of the Trial protocol (``trainer(trial)``): it
builds the model, loads ``trial.init_checkpoint`` (or starts from scratch / inflated 2D weights),
creates a fresh SGD optimiser at the target state's learning rate and trains epoch by epoch,
reporting the planning metric (mean of top-1/3/5 over the k < classes, internal validation
split, one centre clip and crop) until the knee rule stops it. Epoch 0 is the starting weights
evaluated under the new state's settings (0 for untrained weights).

It also retrains a fixed schedule (:meth:`VideoTrainer.train_schedule`, e.g. a replayed plan or a
hand-tuned baseline) and runs the final protocol (:meth:`VideoTrainer.final_evaluate`: 10 clips
x 3 crops, mean of the two heads' logits per view, averaged per video; top-1 and top-5).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from video3d.trainer._config import ConfigError, TrainConfig
from video3d.trainer._data import DataBundle, make_dataset
from video3d.trainer._ddp import DistContext, FollowerTrial, LeaderTrial
from video3d.trainer._progress import ProgressBar

if TYPE_CHECKING:
    import torch
    from torch import nn

    from stageplan import Plan
    from video3d.data import VideoEntry

__all__ = [
    "VideoTrainer",
    "build_model_for",
    "check_model",
    "load_checkpoint_file",
    "planning_metric",
    "topk_correct",
]


def build_model_for(config: TrainConfig, num_classes: int, *, device: Any = None) -> nn.Module:
    """The preset's model with ``num_classes`` outputs."""
    from video3d.models import build_model

    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "dropout": config.dropout,
        "width": config.width,
        "stem_temporal_stride": config.stem_temporal_stride,
    }
    if device is None:
        return build_model(config.model, **kwargs)
    import torch

    with torch.device(device):
        return build_model(config.model, **kwargs)


def check_model(config: TrainConfig, num_classes: int) -> None:
    """Fail early (``ConfigError``) on an unknown model or a clip length it cannot take.

    The model is built on the meta device, so this costs no memory or time.
    """
    try:
        model = build_model_for(config, num_classes, device="meta")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model {config.model!r}: {exc}") from None
    check = getattr(model, "check_clip_length", None)
    if check is None:
        return
    for clip in config.clip_lengths:
        try:
            check(clip)
        except ValueError as exc:
            raise ConfigError(f"clip_lengths: model {config.model!r} cannot take {clip}: {exc}") \
                from None


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[int]:
    """Number of rows whose label is among the top ``k`` logits, for every ``k`` in ``ks``.

    ``k`` larger than the class count counts every row.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
        >>> topk_correct(logits, torch.tensor([1, 2]), (1, 2, 5))
        [1, 1, 2]
    """
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == labels.view(-1, 1)
    return [int(hit[:, :k].any(dim=1).sum()) for k in ks]


#: The top-k accuracies the planning metric may average.
PLANNING_KS: tuple[int, ...] = (1, 3, 5)


def planning_metric(top: dict[str, float], num_classes: int) -> float:
    """Mean of ``top["top{k}"]`` over k in (1, 3, 5) with ``k < num_classes``.

    Top-k with ``k >= num_classes`` is 1 for every model, so it is left out (top-1 always
    counts): 2 or 3 classes use top-1 alone, 4 or 5 classes top-1 and top-3, more all three.

    Example:
        >>> planning_metric({"top1": 0.5, "top3": 0.9, "top5": 1.0}, 4)
        0.7
        >>> planning_metric({"top1": 0.5, "top3": 1.0, "top5": 1.0}, 3)
        0.5
    """
    ks = [k for k in PLANNING_KS if k == 1 or k < num_classes]
    return sum(top[f"top{k}"] for k in ks) / len(ks)


def _edge_seed(seed: int, key: str) -> int:
    return (zlib.crc32(key.encode()) ^ seed) & 0x7FFFFFFF


class VideoTrainer:
    """Trains and evaluates a 3D ConvNet for the planner, a replay or a baseline.

    Args:
        config: The run's configuration (a preset, possibly overridden).
        data: The run's videos (:func:`video3d.trainer.load_data`).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available; per local rank).
        stream: Where progress bars go (``None``: silent). Only rank 0 shows them.
        dist: The distributed context (default: a single process).

    Example:
        >>> from stageplan import plan
        >>> from video3d.trainer import get_preset, graph_for, load_data, rule_for
        >>> cfg = get_preset("tiny")
        >>> trainer = VideoTrainer(cfg, load_data(None, cfg))  # doctest: +SKIP
        >>> result = plan(graph_for(cfg), trainer, storage="runs/x",
        ...               rule=rule_for(cfg))  # doctest: +SKIP
    """

    def __init__(
        self,
        config: TrainConfig,
        data: DataBundle,
        *,
        device: str | None = None,
        stream: TextIO | None = None,
        dist: DistContext | None = None,
    ) -> None:
        import torch

        self.config = config
        self.data = data
        self.dist = dist or DistContext()
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and self.dist.enabled:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stream = stream if self.dist.is_main else None
        self.saves = 0  # checkpoints written by this process (tests check followers write none)
        self.epochs_run: list[tuple[str, int]] = []  # (transition, epoch) as seen on this rank
        if config.threads is not None and not self.cuda:
            torch.set_num_threads(config.threads)

    # -- the transition function -------------------------------------------------------------
    def __call__(self, trial: Any) -> None:
        """Run one transition of the planner (rank 0; followers run :meth:`follow`)."""
        key = f"{trial.source.name}->{trial.target.name}"
        if self.dist.enabled:
            self.dist.broadcast({"params": dict(trial.params), "key": key})
            trial = LeaderTrial(trial, self.dist)
        self.run_transition(trial, key=key)

    def follow(self) -> None:
        """Follower ranks: run every transition rank 0 broadcasts until it says it is done."""
        while True:
            job = self.dist.broadcast(None)
            if job is None:
                return
            self.run_transition(FollowerTrial(job["params"], self.dist), key=job["key"])

    def finish(self) -> None:
        """Rank 0: tell the followers that planning is over."""
        if self.dist.enabled and self.dist.is_main:
            self.dist.broadcast(None)

    def run_transition(self, trial: Any, *, key: str) -> None:
        """Fine-tune from the trial's start weights under its target state, epoch by epoch."""
        import torch

        params = trial.params
        sampling, clip, lr = self.state_settings(params)
        model = self.new_model()
        start = trial.init_checkpoint if self.dist.is_main else None
        opt_state = None
        if start is not None:
            opt_state = self.load_checkpoint(model, start)
        elif self.config.pretrained_2d:
            self.load_pretrained_2d(model)
        untrained = start is None and not self.config.pretrained_2d and self.dist.is_main
        if self.dist.enabled:
            untrained = bool(self.dist.broadcast(untrained))
        self.set_bn_mode(model, clip)
        wrapped = self.wrap(model)
        optimizer = self.new_optimizer(model, lr)
        if opt_state is not None and getattr(trial, "resumed", False):
            with contextlib.suppress(ValueError, KeyError):
                optimizer.load_state_dict(opt_state)
        seed = _edge_seed(self.config.seed, key)

        def save(path: str) -> None:
            self.save_checkpoint(model, path, params, optimizer=optimizer)

        for epoch in trial.epochs():
            self.epochs_run.append((key, epoch))
            if epoch == 0 and untrained:
                value = 0.0
            else:
                if epoch > 0:
                    loss = self.train_epoch(
                        model, wrapped, optimizer, sampling, clip, seed=seed, epoch=epoch,
                        desc=f"  {_short(params)} epoch {epoch}",
                    )
                    if not math.isfinite(loss):
                        value = float("nan")
                        trial.report(value)
                        continue
                value = self.evaluate(model, sampling, clip)["metric"]
            trial.report(value, save=save if self.dist.is_main else None)
        if self.cuda:
            torch.cuda.empty_cache()

    # -- building blocks ---------------------------------------------------------------------
    @staticmethod
    def state_settings(params: dict[str, Any]) -> tuple[str, int, float]:
        """``(sampling, clip_length, learning_rate)`` of a state."""
        try:
            return (str(params.get("sampling", "consecutive")), int(params["clip_length"]),
                    float(params["learning_rate"]))
        except KeyError as exc:
            raise ValueError(
                f"a video state needs 'clip_length' and 'learning_rate', got {params}"
            ) from exc

    def new_model(self) -> nn.Module:
        import torch

        torch.manual_seed(self.config.seed)
        model = build_model_for(self.config, self.data.num_classes)
        model = model.to(self.device)
        if self.cuda:
            model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap ``model`` when running distributed (broadcasts rank 0's weights)."""
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.cuda else None
        return DistributedDataParallel(model, device_ids=ids)

    def new_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.SGD(
            params, lr=lr, momentum=self.config.momentum, weight_decay=self.config.weight_decay
        )

    def set_bn_mode(self, model: nn.Module, clip_length: int) -> None:
        frozen = self.config.bn_frozen(clip_length)
        if frozen and hasattr(model, "freeze_bn_stats"):
            model.freeze_bn_stats()  # type: ignore[operator]
        elif hasattr(model, "unfreeze_bn_stats"):
            model.unfreeze_bn_stats()  # type: ignore[operator]

    def save_checkpoint(
        self, model: nn.Module, path: str, params: dict[str, Any], *, optimizer: Any = None
    ) -> None:
        import torch

        self.saves += 1
        payload: dict[str, Any] = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "params": dict(params),
            "config": self.config.to_dict(),
            "classes": list(self.data.classes),
            "data": self.data.root,
        }
        if optimizer is not None:
            payload["optimizer"] = optimizer.state_dict()
        torch.save(payload, path)

    def load_checkpoint(self, model: nn.Module, path: str) -> Any:
        """Load a checkpoint's weights into ``model``; returns its optimiser state (or None)."""
        payload = load_checkpoint_file(path)
        model.load_state_dict(payload["model"])
        return payload.get("optimizer")

    def load_pretrained_2d(self, model: nn.Module) -> None:
        from video3d.models import inflate_resnet2d, load_resnet2d_state_dict

        assert self.config.pretrained_2d is not None
        state = load_resnet2d_state_dict(self.config.pretrained_2d)
        model.load_state_dict(inflate_resnet2d(state, model))  # type: ignore[arg-type]

    def _start_model(self) -> tuple[nn.Module, nn.Module]:
        """A fresh model from the start weights (random, or the inflated 2D ResNet) and its
        wrapped (DDP) form: where a fixed schedule starts."""
        model = self.new_model()
        if self.config.pretrained_2d:
            self.load_pretrained_2d(model)
        return model, self.wrap(model)

    def _autocast(self) -> Any:
        import torch

        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        x = x.to(self.device, non_blocking=True)
        if self.cuda and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def _normalize(self, clips: torch.Tensor, flips: torch.Generator) -> torch.Tensor:
        """``uint8`` clips from the loader, flipped and normalised where the model runs."""
        import torch

        from video3d.data.device_transforms import normalize_clips, random_flips

        clips = clips.to(self.device, non_blocking=True)
        mask = random_flips(len(clips), generator=flips, device=self.device) \
            if self.config.flip else None
        fmt = torch.channels_last_3d if self.cuda else None
        return normalize_clips(clips, flip=mask, memory_format=fmt)

    def _loader(self, dataset: Any, batch: int, *, shuffle: bool, epoch: int, seed: int) -> Any:
        import torch
        from torch.utils.data import DataLoader, DistributedSampler

        workers = 0 if self.data.cache is not None else self.config.num_workers
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        if self.dist.enabled:
            sampler: Any = DistributedSampler(
                dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                shuffle=shuffle, seed=seed, drop_last=False,
            )
            sampler.set_epoch(epoch)
        elif shuffle:
            gen = torch.Generator().manual_seed(seed * 1000 + epoch)
            sampler = torch.utils.data.RandomSampler(dataset, generator=gen)
        else:
            sampler = None
        return DataLoader(
            dataset, batch_size=batch, sampler=sampler, num_workers=workers,
            pin_memory=self.cuda, persistent_workers=False, drop_last=False,
        )

    def train_epoch(
        self,
        model: nn.Module,
        wrapped: nn.Module,
        optimizer: torch.optim.Optimizer,
        sampling: str,
        clip_length: int,
        *,
        seed: int,
        epoch: int,
        desc: str = "train",
    ) -> float:
        """One pass over the training part; returns the mean loss (NaN if it diverged)."""
        import torch

        batch, accum = self.config.clip_batch(clip_length, self.dist.world_size)
        on_device = self.config.normalize_on_device
        on_device = self.cuda if on_device is None else on_device
        dataset = make_dataset(
            self.data.train, self.config, mode="train", sampling=sampling,
            clip_length=clip_length, cache=self.data.cache, seed=seed, uint8=on_device,
        )
        flips = torch.Generator().manual_seed(seed * 1000 + epoch + 7919 * self.dist.rank)
        loader = self._loader(dataset, batch, shuffle=True, epoch=epoch, seed=seed)
        bar = ProgressBar(len(loader), desc, stream=self.stream)
        wrapped.train()
        optimizer.zero_grad(set_to_none=True)
        total, count, finite = 0.0, 0, True
        steps = len(loader)
        for i, (clips, labels) in enumerate(loader):
            x = self._normalize(clips, flips) if on_device else self._to_device(clips)
            y = labels.to(self.device)
            last = (i + 1) % accum == 0 or i + 1 == steps
            sync = contextlib.nullcontext() if last or not self.dist.enabled else \
                wrapped.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    loss = model.loss(wrapped(x), y)  # type: ignore[operator]
                (loss / accum).backward()
            if last:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            finite = finite and math.isfinite(value)
            total += value * len(y)
            count += len(y)
            bar.update(extra=f"loss {total / max(count, 1):.3f}")
        bar.close()
        stats = self._sum([total, float(count), 0.0 if finite else 1.0])
        if stats[2] > 0:
            return float("nan")
        return stats[0] / max(stats[1], 1.0)

    def _sum(self, values: list[float]) -> list[float]:
        if not self.dist.enabled:
            return values
        import torch

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        return [float(v) for v in self.dist.all_sum(tensor).cpu()]

    def _shard(self, n: int) -> list[int]:
        return list(range(self.dist.rank, n, self.dist.world_size))

    def evaluate(
        self, model: nn.Module, sampling: str, clip_length: int,
        entries: Sequence[VideoEntry] | None = None,
    ) -> dict[str, float]:
        """Planning metric: one centre clip and crop per video of the internal validation split.

        Returns ``top1``, ``top3``, ``top5`` (fractions) and ``metric``: the mean of the top-k
        among k = 1, 3, 5 with k smaller than the class count (:func:`planning_metric`), so a
        top-k that is 1 by construction never flattens the metric of a few-class task.
        """
        import torch
        from torch.utils.data import DataLoader, Subset

        dataset = make_dataset(
            list(entries) if entries is not None else self.data.val, self.config, mode="val",
            sampling=sampling, clip_length=clip_length, cache=self.data.cache,
        )
        part = Subset(dataset, self._shard(len(dataset)))
        batch, _ = self.config.clip_batch(clip_length)
        workers = 0 if self.data.cache is not None else self.config.num_workers
        loader = DataLoader(part, batch_size=batch * 2, num_workers=workers)
        model.eval()
        counts = [0.0, 0.0, 0.0, 0.0]
        with torch.no_grad(), self._autocast():
            for clips, labels in loader:
                logits = model(self._to_device(clips)).float()
                hits = topk_correct(logits, labels.to(self.device), (1, 3, 5))
                for j, h in enumerate(hits):
                    counts[j] += h
                counts[3] += len(labels)
        c1, c3, c5, n = self._sum(counts)
        n = max(n, 1.0)
        top = {"top1": c1 / n, "top3": c3 / n, "top5": c5 / n}
        return {**top, "metric": planning_metric(top, self.data.num_classes)}

    def final_evaluate(
        self, model: nn.Module, sampling: str, clip_length: int,
        entries: Sequence[VideoEntry] | None = None, *, desc: str = "test",
    ) -> dict[str, float]:
        """Final protocol: ``test_clips`` clips x ``test_crops`` crops per video.

        The model's eval output (the mean of the two heads' logits) is averaged over the views
        of each video. Returns ``top1``, ``top5`` (fractions) and ``videos``.
        """
        import torch
        from torch.utils.data import DataLoader, Subset

        from video3d.data import VideoScores

        videos = list(entries) if entries is not None else self.data.test
        if not videos:
            raise ValueError("no test videos to evaluate (the index has no test.txt)")
        dataset = make_dataset(
            videos, self.config, mode="test", sampling=sampling, clip_length=clip_length,
            cache=self.data.cache,
        )
        part = Subset(dataset, self._shard(len(dataset)))
        batch, _ = self.config.clip_batch(clip_length)
        per = max(1, batch // self.config.test_crops)
        workers = 0 if self.data.cache is not None else self.config.num_workers
        loader = DataLoader(part, batch_size=per, num_workers=workers)
        k = self.data.num_classes
        per_video = VideoScores(len(videos), k, dtype=torch.float64, device=self.device)
        labels_all = torch.tensor([e.label for e in videos], device=self.device)
        bar = ProgressBar(len(loader), f"  {desc}", stream=self.stream)
        model.eval()
        with torch.no_grad(), self._autocast():
            for views, _labels, index in loader:
                b, crops = views.shape[:2]
                flat = views.flatten(0, 1)
                per_video.add(model(self._to_device(flat)).float().view(b, crops, k), index)
                bar.update()
        bar.close()
        scores = per_video.mean(all_sum=self.dist.all_sum)
        hits = topk_correct(scores, labels_all, (1, 5))
        return {"top1": hits[0] / len(videos), "top5": hits[1] / len(videos),
                "videos": float(len(videos))}

    # -- fixed schedules ---------------------------------------------------------------------
    def train_epochs(
        self,
        sampling: str,
        epochs: Sequence[tuple[int, float]],
        *,
        key: str,
        before_epoch: Callable[[int, int], bool] | None = None,
        after_epoch: Callable[[int, nn.Module, int], bool] | None = None,
    ) -> tuple[nn.Module, int]:
        """Train a fresh model through ``epochs`` (``(clip, lr)`` per epoch) with one optimiser.

        This is how a hand-written schedule is trained: one SGD optimiser whose LR is set per
        epoch (momentum carries over clip and LR changes). ``before_epoch(index, clip)`` and
        ``after_epoch(index, model, clip)`` may return ``False`` to stop. Returns the model and
        the number of epochs trained.
        """
        model, wrapped = self._start_model()
        seed = _edge_seed(self.config.seed, key)
        optimizer = self.new_optimizer(model, epochs[0][1] if epochs else 0.1)
        current: int | None = None
        done = 0
        for index, (clip, lr) in enumerate(epochs):
            if before_epoch is not None and not before_epoch(index, clip):
                break
            if clip != current:
                self.set_bn_mode(model, clip)
                current = clip
            for group in optimizer.param_groups:
                group["lr"] = lr
            self.train_epoch(model, wrapped, optimizer, sampling, clip, seed=seed,
                             epoch=index + 1, desc=f"  {key} epoch {index + 1}/{len(epochs)}")
            done += 1
            if after_epoch is not None and not after_epoch(index, model, clip):
                break
        return model, done

    def train_schedule(
        self, stages: Plan, *, name: str = "schedule", seed_key: str | None = None
    ) -> nn.Module:
        """Train from the start weights through ``stages`` (a plan: state params + epochs).

        Every stage gets a fresh optimiser at its learning rate, as a planned transition does.
        """
        model, wrapped = self._start_model()
        seed = _edge_seed(self.config.seed, seed_key or name)
        epoch = 0
        for index, stage in enumerate(stages.stages):
            if stage.epochs <= 0:
                continue
            sampling, clip, lr = self.state_settings(stage.params)
            self.set_bn_mode(model, clip)
            optimizer = self.new_optimizer(model, lr)
            for k in range(stage.epochs):
                epoch += 1
                self.train_epoch(
                    model, wrapped, optimizer, sampling, clip, seed=seed, epoch=epoch,
                    desc=f"  {name} stage {index + 1} {_short(stage.params)} epoch {k + 1}"
                    f"/{stage.epochs}",
                )
        return model


def _short(params: dict[str, Any]) -> str:
    names = {"sampling": "", "clip_length": "clip=", "learning_rate": "lr="}
    return " ".join(f"{names.get(k, k + '=')}{v}" for k, v in params.items())


def load_checkpoint_file(path: str) -> dict[str, Any]:
    """Read a trainer checkpoint (weights, params, config, classes)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{path} is not a video3d trainer checkpoint (no 'model' entry)")
    return payload

