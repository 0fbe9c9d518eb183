"""TransformersTransition end to end with the real Hugging Face Trainer (a tiny BERT)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
pytest.importorskip("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stageplan.integrations.transformers import TransformersTransition  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    EvalPrediction,
    TrainerCallback,
    TrainingArguments,
)

from stageplan import (  # noqa: E402
    KneeRule,
    LocalStorage,
    TransitionFailedError,
    TransitionGraph,
    plan,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny models: one intra-op thread is as fast, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


VOCAB = 12
CONFIG = BertConfig(
    vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=32, num_labels=2,
)


class Sequences(torch.utils.data.Dataset):
    """Label 1 when the first token is in the upper half of the vocabulary."""

    def __init__(self, n: int, length: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, VOCAB, (n, length), generator=g)
        self.labels = (self.ids[:, 0] > VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


LENGTHS: list[int] = []


def datasets(params: dict[str, Any]) -> tuple[Sequences, Sequences]:
    length = int(params["seq_len"])
    LENGTHS.append(length)
    return Sequences(192, length, 0), Sequences(128, length, 1)


def accuracy(p: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}


def args(tmp_path: Path, **kw: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "hf"), eval_strategy="epoch", per_device_train_batch_size=32,
        per_device_eval_batch_size=64, lr_scheduler_type="constant", logging_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, seed=0, **kw,
    )


def test_plans_with_the_real_trainer(tmp_path: Path) -> None:
    LENGTHS.clear()
    seen_lr: list[float] = []
    epochs_trained: list[int] = []

    class Counter(TrainerCallback):  # a user callback, kept next to the planner's
        def on_epoch_end(self, *args: Any, **kwargs: Any) -> None:
            epochs_trained.append(1)

    def trainer_kwargs(params: dict[str, Any]) -> dict[str, Any]:
        seen_lr.append(float(params["learning_rate"]))
        return {"compute_metrics": accuracy, "callbacks": [Counter()]}

    run = TransformersTransition(
        BertForSequenceClassification, config=CONFIG, datasets=datasets, args=args(tmp_path),
        monitor="eval_accuracy", trainer_kwargs=trainer_kwargs,
    )
    assert run.training_args({"learning_rate": 0.003, "seq_len": 8}).learning_rate == 0.003
    graph = TransitionGraph.grid(("seq_len", [8, 24]), ("learning_rate", [3e-3, 3e-4]))
    result = plan(graph, run, storage=tmp_path / "plan", rule=KneeRule(delay=1, max_epochs=3),
                  progress=False)
    records = {t.target: t for t in result.transitions}
    assert all(t.status == "complete" for t in result.transitions), result.summary()
    assert len(result.transitions) == len(graph.edges)
    assert sorted(set(LENGTHS)) == [8, 24] and sorted(set(seen_lr)) == [3e-4, 3e-3]
    # training stopped when the rule said so: epoch 0 is evaluate() alone, then one
    # training epoch per reported value (eval_strategy="epoch")
    assert all(len(t.values) <= 4 for t in result.transitions)
    assert len(epochs_trained) == sum(len(t.values) - 1 for t in result.transitions)
    # Epoch 0 of an LR-only transition evaluates the source's kept weights on the same data:
    # the source's value again, which holds only if from_pretrained loaded them.
    same_length = [t for t in result.transitions
                   if t.source != "start" and t.source.split(",")[0] == t.target.split(",")[0]]
    assert same_length
    for t in same_length:
        assert t.values[0] == pytest.approx(records[t.source].value)
    # The kept checkpoints are save_pretrained directories.
    kept = [t for t in result.transitions if t.checkpoint and (t.checkpoint_epoch or 0) > 0
            and (tmp_path / "plan" / t.checkpoint).exists()]
    assert kept
    path = LocalStorage(tmp_path / "plan").checkpoints.fetch(kept[0].checkpoint or "")
    assert (Path(path) / "config.json").exists()
    BertForSequenceClassification.from_pretrained(path)
    assert result.final_value is not None and result.final_value > 0.75


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval_strategy"):
        TransformersTransition(BertForSequenceClassification, config=CONFIG, datasets=datasets,
                               args=TrainingArguments(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="config="):
        TransformersTransition(BertForSequenceClassification, datasets=datasets,
                               args=args(tmp_path))
    with pytest.raises(TypeError, match="from_pretrained"):
        TransformersTransition(object, config=CONFIG, datasets=datasets, args=args(tmp_path))
    with pytest.raises(TypeError, match="TrainingArguments"):
        TransformersTransition(BertForSequenceClassification, config=CONFIG, datasets=datasets,
                               args={"eval_strategy": "epoch"})


def test_a_missing_monitor_fails_naming_the_metrics(tmp_path: Path) -> None:
    run = TransformersTransition(
        BertForSequenceClassification, config=CONFIG, datasets=datasets, args=args(tmp_path),
        monitor="eval_f1",
    )
    graph = TransitionGraph.grid(("seq_len", [8]), ("learning_rate", [3e-3]))
    with pytest.raises(TransitionFailedError, match="eval_f1.*eval_loss"):
        plan(graph, run, storage=tmp_path / "plan", on_error="raise", progress=False,
             rule=KneeRule(delay=1, max_epochs=2))


def test_a_pretrained_start_is_loaded_with_from_pretrained(tmp_path: Path) -> None:
    model = BertForSequenceClassification(CONFIG)
    with torch.no_grad():  # always predicts class 1
        model.classifier.bias.copy_(torch.tensor([-50.0, 50.0]))
    model.save_pretrained(tmp_path / "start")
    run = TransformersTransition(
        BertForSequenceClassification, pretrained=str(tmp_path / "start"), datasets=datasets,
        args=args(tmp_path), monitor="accuracy", trainer_kwargs={"compute_metrics": accuracy},
    )
    graph = TransitionGraph.grid(("seq_len", [8]), ("learning_rate", [1e-9]))
    result = plan(graph, run, storage=tmp_path / "plan", progress=False,
                  rule=KneeRule(delay=1, max_epochs=1))
    (t,) = result.transitions
    _, evaluation = datasets({"seq_len": 8})
    assert t.values[0] == pytest.approx(float(evaluation.labels.float().mean()))
