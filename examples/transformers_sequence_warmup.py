"""Plan a sequence-length warm-up x learning rate for a tiny BERT with the Hugging Face Trainer.

The workload: a two-layer BERT built from a config (nothing is downloaded) classifies
generated token sequences: each 64-token sequence holds three copies of one marker token, A
(label 1) or B (label 0), at random positions. A state fixes the *sequence length* the model
trains and evaluates on (the first 16, 32 or 64 tokens: short sequences are cheap and teach
what the markers mean, but many have lost all three) and the *learning rate* (constant
within a state). The paper's extended transition graph over length x learning rate is
planned with the knee rule; every transition is one ``Trainer`` through
``stageplan.integrations.transformers.TransformersTransition``, and ``eval_accuracy`` after
every epoch is the curve.

Run (a few minutes on two CPU cores; ``--quick`` takes about a minute):
    python examples/transformers_sequence_warmup.py [--out runs/transformers-example] [--quick]
    python examples/transformers_sequence_warmup.py --storage sqlite:///runs/hf.db
        # then: optuna-dashboard sqlite:///runs/hf.db  (the plan is the study's note)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a config

import numpy as np
import torch
from stageplan.integrations.transformers import TransformersTransition
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

from stageplan import KneeRule, Plan, TransitionGraph

VOCAB = 24
FULL = 64
MARK_A, MARK_B = 3, 4


class Sequences(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The first ``length`` tokens of each sequence; the label comes from all of them."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, length: int) -> None:
        self.ids, self.labels = ids[:, :length].contiguous(), labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def make_sequences(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, FULL), generator=g)
    ids[:, 0] = 1  # a [CLS]-like first token
    labels = torch.randint(0, 2, (n,), generator=g)
    for _ in range(3):
        spots = torch.randint(1, FULL, (n,), generator=g)
        ids[torch.arange(n), spots] = torch.where(labels == 1, MARK_A, MARK_B)
    return ids, labels


def accuracy(prediction: Any) -> dict[str, float]:
    predicted = np.argmax(prediction.predictions, -1)
    return {"accuracy": float((predicted == prediction.label_ids).mean())}


def build(quick: bool, workdir: Path) -> tuple[TransitionGraph, TransformersTransition, KneeRule]:
    n_train, n_val = (256, 128) if quick else (512, 512)
    train_ids, train_labels = make_sequences(n_train, seed=0)
    val_ids, val_labels = make_sequences(n_val, seed=1)
    if quick:
        graph = TransitionGraph.grid(("seq_len", [16, 64]), ("learning_rate", [3e-3, 1e-3]))
        rule = KneeRule(delay=2, max_epochs=4)
    else:
        graph = TransitionGraph.grid(
            ("seq_len", [16, 32, 64]), ("learning_rate", [1e-3, 3e-4, 1e-4])
        )
        rule = KneeRule(delay=3, max_epochs=8)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=FULL, num_labels=2,
    )  # fmt: skip

    def datasets(params: dict[str, Any]) -> tuple[Sequences, Sequences]:
        length = int(params["seq_len"])
        return (
            Sequences(train_ids, train_labels, length),
            Sequences(val_ids, val_labels, length),
        )

    args = TrainingArguments(
        output_dir=str(workdir / "hf"),
        eval_strategy="epoch",
        lr_scheduler_type="constant",
        per_device_train_batch_size=16,
        per_device_eval_batch_size=128,
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    run = TransformersTransition(
        BertForSequenceClassification,
        config=config,
        datasets=datasets,
        args=args,
        monitor="eval_accuracy",
        trainer_kwargs={"compute_metrics": accuracy},
    )
    return graph, run, rule


def main(argv: list[str] | None = None) -> Plan:
    from stageplan import plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/transformers-example", help="output directory")
    parser.add_argument(
        "--storage", default=None, help="plan storage (default OUT/storage; or an Optuna URL)"
    )
    parser.add_argument("--quick", action="store_true", help="a small graph and dataset")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    out = Path(args.out)
    storage = args.storage or str(out / "storage")
    started = time.perf_counter()
    graph, run, rule = build(args.quick, out)
    result = plan(graph, run, storage=storage, rule=rule, progress=not args.quiet)
    result.save(out / "plan.json")
    if args.storage and ("://" in args.storage or args.storage.startswith("journal:")):
        from stageplan.integrations.optuna import publish_plan

        publish_plan(args.storage, result)
    print(result.summary())
    print(f"plan written to {out / 'plan.json'} ({time.perf_counter() - started:.1f} s)")
    return result


if __name__ == "__main__":
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    main(sys.argv[1:])
