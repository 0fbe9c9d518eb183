"""Show a plan in optuna-dashboard: a study note, trial notes and a study user attribute.

optuna-dashboard shows each transition of a plan stored with :class:`OptunaStorage` as a trial,
but its "Best Trial" badge marks the single transition with the best knee value, and nothing
shows which transitions the plan chose. :func:`publish_plan` writes the plan where the
dashboard shows it:

* the study's note (Markdown, on the study page): the chosen path, a table of the stages with
  their epochs, values and trial numbers, the final value, and what was explored;
* a note on every chosen transition's trial ("chosen by the plan: stage 2 of 4");
* the study user attribute ``stageplan:plan``: the same facts as JSON, for scripts.

Publishing again replaces all three (a trial no longer chosen gets its note cleared).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from stageplan.integrations.optuna._encoding import ATTR_PREFIX, T_SOURCE, T_TARGET
from stageplan.integrations.optuna._storage import OptunaStorage

from stageplan import Plan

__all__ = ["PLAN_ATTR", "plan_note", "publish_plan"]

#: The study user attribute that holds the published plan.
PLAN_ATTR = ATTR_PREFIX + "plan"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _summary(plan: Plan, trials: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    stages = []
    for i, stage in enumerate(plan.stages):
        number = trials.get((stage.source, stage.state)) if stage.source else None
        stages.append({**stage.to_dict(), "stage": i + 1, "trial": number})
    path = [plan.stages[0].source or "start", *[s.state for s in plan.stages]]
    done = [t for t in plan.transitions if t.status == "complete"]
    return {
        "stages": stages,
        "path": path,
        "total_epochs": plan.total_epochs,
        "final_value": plan.final_value,
        "mode": plan.mode,
        "explored": len(plan.transitions),
        "failed": sum(t.status == "failed" for t in plan.transitions),
        "epochs_trained": sum(t.epochs for t in plan.transitions),
        "complete": len(done),
    }


def plan_note(plan: Plan, trials: Mapping[tuple[str, str], int] | None = None) -> str:
    """The study note :func:`publish_plan` writes (Markdown).

    Args:
        plan: The plan.
        trials: ``{(source, target): trial number}`` of the chosen transitions, if known.
    """
    info = _summary(plan, trials or {})
    numbers = [f"#{s['trial']}" for s in info["stages"] if s["trial"] is not None]
    lines = [
        "## stageplan: the plan",
        "",
        f"**{len(plan.stages)} stages, {plan.total_epochs} epochs, final value "
        f"{_fmt(plan.final_value)}** ({'higher' if plan.mode == 'max' else 'lower'} is better).",
        "",
        "Chosen path: " + " → ".join(f"`{p}`" for p in info["path"])
        + (f" (trials {', '.join(numbers)})." if numbers else "."),
        "",
        "| stage | state | hyper-parameters | epochs | value | from | trial |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in info["stages"]:
        trial = "" if s["trial"] is None else f"#{s['trial']}"
        lines.append(
            f"| {s['stage']} | `{s['state']}` | {_params(s['params'])} | {s['epochs']} | "
            f"{_fmt(s['value'])} | `{s['source'] or ''}` | {trial} |"
        )
    lines += [
        "",
        "Each trial of this study is one explored transition (its curve: the validation value "
        "per epoch, epoch 0 before training). The dashboard's *Best Trial* is the single "
        "transition with the best kept value; the plan above is the path chosen by dynamic "
        "programming over all of them, and its trials carry a note saying so.",
    ]
    if plan.transitions:
        lines += [
            "",
            f"Explored {info['explored']} transitions ({info['failed']} failed), "
            f"{info['epochs_trained']} epochs trained in all.",
        ]
    if plan.rule:
        rule = ", ".join(f"{k}={v}" for k, v in plan.rule.items() if v is not None)
        lines += ["", f"Knee rule: {rule}."]
    return "\n".join(lines) + "\n"


def _trial_note(plan: Plan, index: int) -> str:
    stage = plan.stages[index]
    return (
        f"### Chosen by the plan: stage {index + 1} of {len(plan.stages)}\n\n"
        f"`{stage.source}` → `{stage.state}` ({_params(stage.params)}): the plan trains "
        f"{stage.epochs} epochs here (the kept epoch), value {_fmt(stage.value)}. The whole "
        f"plan: {plan.total_epochs} epochs, final value {_fmt(plan.final_value)} (see the "
        "study's note).\n"
    )


def _load_study(storage: Any, study_name: str) -> tuple[Any, Callable[[Any], int]]:
    """The plan's study, and how to find the storage id of one of its trials."""
    import optuna

    if isinstance(storage, optuna.Study):
        return storage, _trial_id_in_study
    if not isinstance(storage, OptunaStorage):
        storage = OptunaStorage(storage, study_name=study_name)
    return storage.load_study(), storage._trial_id


def _trial_id_in_study(trial: Any) -> int:
    """The storage id of a trial read from an ``optuna.Study`` passed to :func:`publish_plan`.

    Optuna has no public accessor for it (checked on Optuna 5.0.0: ``FrozenTrial._trial_id``;
    a ``Study`` does not expose its storage or study id either). A plan's storage (URL,
    :class:`OptunaStorage`, Optuna storage object) needs none of this: it looks the id up
    through ``BaseStorage.get_trial_id_from_study_id_trial_number``. Should a release rename
    the attribute, the ``TypeError`` below says to pass the storage instead.
    """
    trial_id = getattr(trial, "_trial_id", None)
    if not isinstance(trial_id, int):
        raise TypeError(
            "publish_plan cannot address the trials of this optuna.Study (this Optuna release "
            "hides their ids): pass the plan's storage instead (its URL or OptunaStorage)"
        )
    return trial_id


def publish_plan(
    storage: Any,
    plan: Plan | str | os.PathLike[str],
    *,
    study_name: str = "stageplan",
) -> dict[str, Any]:
    """Write ``plan`` into its Optuna study so that optuna-dashboard shows it.

    Call it after planning (``plan(..., storage="sqlite:///runs/plan.db")``), then open
    ``optuna-dashboard sqlite:///runs/plan.db``: the study page shows the plan as its note,
    and the chosen transitions' trials are marked in their notes.

    Args:
        storage: The plan's storage: a URL (``sqlite:///...``, ``postgresql://...``,
            ``journal:path``), an :class:`OptunaStorage`, an Optuna storage object or the
            ``optuna.Study`` itself.
        plan: The plan, or the path of its ``plan.json``.
        study_name: The study (``OptunaStorage``'s default ``"stageplan"``); ignored for an
            ``OptunaStorage`` or a study.

    Returns:
        What was stored in the study user attribute ``stageplan:plan``: stages (with their
        trial numbers), path, total epochs, final value, mode and what was explored.
    """
    try:
        from optuna_dashboard import save_note
    except ImportError as exc:
        raise ImportError(
            "publish_plan needs optuna-dashboard: pip install 'stageplan[optuna]'"
        ) from exc
    import optuna

    if not isinstance(plan, Plan):
        plan = Plan.load(plan)
    study, trial_id = _load_study(storage, study_name)
    trials: dict[tuple[str, str], Any] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        key = (t.user_attrs.get(T_SOURCE), t.user_attrs.get(T_TARGET))
        if isinstance(key[0], str) and isinstance(key[1], str):
            trials[key] = t
    numbers = {key: t.number for key, t in trials.items()}
    chosen = [
        (i, trials[(s.source, s.state)])
        for i, s in enumerate(plan.stages)
        if s.source is not None and (s.source, s.state) in trials
    ]
    if plan.transitions and len(chosen) != len(plan.stages):
        missing = [
            f"{s.source} -> {s.state}"
            for s in plan.stages
            if (s.source, s.state) not in trials
        ]
        raise ValueError(
            f"study {study.study_name!r} has no finished trial for the plan's transitions "
            f"{missing}: is this the plan's own storage?"
        )
    info = _summary(plan, numbers)
    previous = study.user_attrs.get(PLAN_ATTR)
    before = {
        s.get("trial") for s in (previous or {}).get("stages", []) if isinstance(s, Mapping)
    }
    now = {t.number for _, t in chosen}
    by_number = {t.number: t for t in trials.values()}
    for number in before - now - {None}:
        if number in by_number:  # no longer chosen: clear our note
            save_note(optuna.trial.Trial(study, trial_id(by_number[number])), "")
    for index, frozen in chosen:
        save_note(optuna.trial.Trial(study, trial_id(frozen)), _trial_note(plan, index))
    save_note(study, plan_note(plan, numbers))
    study.set_user_attr(PLAN_ATTR, info)
    return info
