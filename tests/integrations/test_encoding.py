"""The stored format: plan studies written by earlier releases keep loading and resuming.

``_old_study`` writes a study through Optuna's public storage API exactly as the adapter
stored it before it was split into modules (attribute names and value shapes spelled out
here, not taken from the code under test), with checkpoints in the old directory layout
``<slug>/<slug>-eNNNN-<12 hex>``. Planning on it must reuse the finished transition, resume the
taken-over one from its last kept checkpoint, and end with the plan a fresh run makes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from stageplan.integrations.optuna import OptunaStorage

from stageplan import LocalStorage, StorageMismatchError, plan
from stageplan.storage import edge_slug

sys.path.insert(0, str(Path(__file__).parent))
import plan_worker  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: What plan() stored as settings for plan_worker.RULE (KneeRule(delay=3, max_epochs=6)).
OLD_META = {
    "mode": "max",
    "rule": {
        "ceiling": None,
        "delay": 3,
        "family": "exp",
        "horizon": 1000,
        "max_epochs": 6,
        "method": "evidence",
        "min_epochs": None,
        "patience": None,
        "resolution": 0.0,
        "risk": 0.2,
        "tolerance": 1.0,
    },
}
FINISHED = ("start", "sampling=consecutive,clip_length=16,learning_rate=0.1")
TAKEN_OVER = ("start", "sampling=consecutive,clip_length=32,learning_rate=0.1")


def _label(edge: tuple[str, str]) -> str:
    return f"{edge[0]} -> {edge[1]}"


def _old_checkpoint(root: Path, edge: tuple[str, str], epoch: int, value: float) -> str:
    """A checkpoint where the old checkpoint_dir store put it; returns its reference."""
    slug = edge_slug(edge, max_len=60)
    ref = f"{slug}/{slug}-e{epoch:04d}-{epoch:012x}"
    (root / slug).mkdir(parents=True, exist_ok=True)
    saved = {"edge": f"{edge[0]}->{edge[1]}", "epoch": epoch, "value": value, "start": 0.0}
    (root / ref).write_text(json.dumps(saved))
    return ref


def _old_study(journal: Path, ckpt: Path, reference: Any) -> None:
    graph = plan_worker.graph()
    storage = JournalStorage(JournalFileBackend(str(journal)))
    sid = storage.create_new_study([StudyDirection.MAXIMIZE], "stageplan")
    storage.set_study_user_attr(sid, "stageplan:graph", json.loads(json.dumps(graph.to_dict())))
    storage.set_study_user_attr(sid, "stageplan:meta", OLD_META)
    storage.set_study_user_attr(sid, "stageplan:version", 1)
    choices = {"clip_length": [16, 32], "learning_rate": [0.1, 0.01]}
    now = time.time()
    owner = {"worker": "old-host:1", "host": "old-host", "pid": 1, "time": now - 100}

    def trial(edge: tuple[str, str], state: TrialState, attrs: dict[str, Any], **kw: Any) -> int:
        target = graph.state(edge[1]).params
        params = {k: v for k, v in target.items() if k in choices}
        base = {
            "stageplan:edge": _label(edge),
            "stageplan:source": edge[0],
            "stageplan:target": edge[1],
            "stageplan:takes_over": None,
        }
        template = FrozenTrial(
            number=-1,
            state=state,
            value=kw.get("value"),
            datetime_start=kw.get("start"),
            datetime_complete=kw.get("start"),
            params=params,
            distributions={k: CategoricalDistribution(choices[k]) for k in params},
            user_attrs={**base, **attrs},
            system_attrs={},
            intermediate_values=kw.get("intermediate", {}),
            trial_id=-1,
        )
        storage.create_new_trial(sid, template_trial=template)
        return len(storage.get_all_trials(sid, deepcopy=False)) - 1

    done = next(r for r in reference.transitions if r.edge == FINISHED)
    ref = _old_checkpoint(ckpt, FINISHED, done.checkpoint_epoch, done.value)
    record = {
        "source": FINISHED[0],
        "target": FINISHED[1],
        "status": "complete",
        "values": list(done.values),
        "knee_epoch": done.knee_epoch,
        "checkpoint_epoch": done.checkpoint_epoch,
        "value": done.value,
        "checkpoint": ref,
        "decision": done.decision,
        "error": None,
        "worker": "old-host:1",
        "duration_s": 1.5,
        "resumed_from": None,
    }
    finished_attrs = {
        "stageplan:owner": owner,
        "stageplan:progress": {
            "progress": {
                "values": list(done.values),
                "checkpoints": {str(done.checkpoint_epoch): ref},
                "init_checkpoint": None,
            },
            "heartbeat": now - 90,
            "worker": "old-host:1",
        },
        "stageplan:curve": list(done.values),
        "stageplan:status": "complete",
        "stageplan:knee_epoch": done.knee_epoch,
        "stageplan:checkpoint_epoch": done.checkpoint_epoch,
        "stageplan:stop_reason": done.decision["reason"],
        "stageplan:fit_params": done.decision["params"],
        "stageplan:checkpoint": ref,
        "stageplan:worker": "old-host:1",
        "stageplan:record": record,
    }
    from datetime import datetime

    trial(
        FINISHED,
        TrialState.COMPLETE,
        finished_attrs,
        value=done.value,
        start=datetime.now(),
        intermediate=dict(enumerate(done.values)),
    )
    # A transition whose worker died after epoch 4; a take-over enqueued its successor.
    params = graph.state(TAKEN_OVER[1]).params
    values = [plan_worker.curve(params, 0.0, e) for e in range(5)]
    kept = {e: _old_checkpoint(ckpt, TAKEN_OVER, e, values[e]) for e in (2, 3)}
    progress = {
        "progress": {
            "values": values,
            "checkpoints": {str(e): r for e, r in kept.items()},
            "init_checkpoint": None,
        },
        "heartbeat": now - 50,
        "worker": "old-host:1",
    }
    dead = trial(
        TAKEN_OVER,
        TrialState.FAIL,
        {
            "stageplan:owner": owner,
            "stageplan:progress": progress,
            "stageplan:taken_over_by": {"worker": "old-host:2", "time": now - 10},
        },
        start=datetime.now(),
        intermediate=dict(enumerate(values)),
    )
    trial(
        TAKEN_OVER,
        TrialState.WAITING,
        {"stageplan:takes_over": dead, "stageplan:progress": progress},
        intermediate=dict(enumerate(values[:4])),
    )
    for source, target in graph.edges:
        if (source.name, target.name) not in (FINISHED, TAKEN_OVER):
            trial((source.name, target.name), TrialState.WAITING, {})
    storage.set_study_user_attr(sid, "stageplan:format", "stageplan-optuna")


def _summary(p: Any) -> Any:
    return (
        [(s.state, s.epochs, s.value) for s in p.stages],
        {r.edge: (r.status, r.values, r.knee_epoch, r.value) for r in p.transitions},
    )


def test_a_study_stored_by_the_old_adapter_loads_and_resumes(tmp_path: Path) -> None:
    reference = plan(
        plan_worker.graph(),
        plan_worker.make_fn(None, 0.0),
        storage=LocalStorage(tmp_path / "ref"),
        rule=plan_worker.RULE,
        progress=False,
    )
    journal, ckpt, log = tmp_path / "plan.log", tmp_path / "ckpt", tmp_path / "epochs.log"
    _old_study(journal, ckpt, reference)
    store = OptunaStorage(f"journal:{journal}", checkpoints=ckpt)
    records = store.records()
    assert list(records) == [FINISHED] and records[FINISHED].checkpoint is not None
    assert Path(store.checkpoints.fetch(records[FINISHED].checkpoint)).is_file()

    got = plan(
        plan_worker.graph(),
        plan_worker.make_fn(str(log), 0.0),
        storage=store,
        rule=plan_worker.RULE,
        progress=False,
    )
    assert _summary(got) == _summary(reference)
    ran: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        label, epoch = line.split()[:2]
        ran.setdefault(label, []).append(int(epoch))
    assert f"{FINISHED[0]}->{FINISHED[1]}" not in ran  # reused, never re-run
    assert ran[f"{TAKEN_OVER[0]}->{TAKEN_OVER[1]}"][0] == 4  # resumed after epoch 3
    assert store.records()[TAKEN_OVER].resumed_from == 3
    trials = store.load_study().get_trials()
    assert len(trials) == len(plan_worker.graph().edges) + 1  # the taken-over trial stays FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) == len(plan_worker.graph().edges)


def test_another_format_version_is_refused_by_name(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'plan.log'}"
    graph = plan_worker.graph().to_dict()
    OptunaStorage(url).open(graph, OLD_META)
    study = optuna.load_study(
        study_name="stageplan",
        storage=JournalStorage(JournalFileBackend(str(tmp_path / "plan.log"))),
    )
    study.set_user_attr("stageplan:version", 2)
    with pytest.raises(StorageMismatchError, match="uses storage format version 2; .* version 1"):
        OptunaStorage(url).open(graph, OLD_META)


def test_curves_keep_non_finite_values_as_strings() -> None:
    from stageplan.integrations.optuna._encoding import record_attrs

    from stageplan import TransitionRecord

    rec = TransitionRecord("a", "b", "complete", values=[0.5, math.nan, math.inf, -math.inf])
    attrs = record_attrs(rec)
    assert attrs["stageplan:curve"] == [0.5, "nan", "inf", "-inf"]
    assert list(attrs)[-1] == "stageplan:record"  # written last: its presence means complete
    assert json.loads(json.dumps(attrs["stageplan:record"]))["values"][1] == "nan"
