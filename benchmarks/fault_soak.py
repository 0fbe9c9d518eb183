"""Fault-injection soak: kill planning workers at chosen points, restart them, lose nothing.

The paper graph (clip lengths x learning rates x samplings) is planned with a deterministic
synthetic trainer by ``--workers`` worker processes sharing one storage (a directory, a
journal file, SQLite, PostgreSQL). Worker lives are cut short with SIGKILL, N times per
storage, at one of these points, picked at random for every worker that is started:

* ``claim``: after a transition was claimed, before its first epoch;
* ``report``: inside ``trial.report``, just before or just after the progress is stored;
* ``checkpoint``: while the trainer's ``save`` writes a checkpoint (half a file on disk);
* ``record``: while the finished transition's record is written (the local storage's
  temporary file written but not renamed; some of an Optuna trial's attributes written but
  not its final state);
* ``random``: from outside, after a random delay.

A killed worker is replaced at once; once the kill budget is spent, workers run undisturbed
until the plan is done. Then the run is checked against an uninterrupted one:

* the same plan (stages, epochs, values) and the same record (curve, knee, value) for every
  transition;
* no transition COMPLETE twice (Optuna: one COMPLETE trial per transition);
* no record lost or half-written (every transition has exactly one readable record; no
  temporary or stale-lock files left);
* no orphaned checkpoint (every checkpoint left in the store is named by a record);
* re-trained epochs: every epoch a worker trained beyond the uninterrupted run's, per kill.

Usage::

    python benchmarks/fault_soak.py --quick                     # CI: 4 kills per storage
    python benchmarks/fault_soak.py --kills 50 --out benchmarks/results/fault_soak.json
    python benchmarks/fault_soak.py --storages dir,journal      # a subset

PostgreSQL needs ``STAGEPLAN_TEST_POSTGRES_URL`` (a database on a server where the user may
create databases: the soak makes a new database per run and drops it after); without it
that storage is skipped with a printed reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KINDS = ("claim", "report", "checkpoint", "record", "random")
STORAGES = ("dir", "journal", "sqlite", "postgres")


# -- the workload ------------------------------------------------------------------------------


def soak_graph(quick: bool) -> Any:
    from stageplan import TransitionGraph

    return TransitionGraph.paper(
        clip_lengths=[16, 32, 64],
        learning_rates=[0.1, 0.01, 0.001],
        samplings=("consecutive",) if quick else ("consecutive", "uniform"),
    )


def soak_rule() -> Any:
    from stageplan import KneeRule

    return KneeRule.paper(delay=3, max_epochs=8)


def curve(params: dict[str, Any], start: float, epoch: int) -> float:
    """A deterministic curve that rises from ``start`` and peaks; its top depends on the state."""
    lr = float(params["learning_rate"])
    clip = int(params["clip_length"])
    bonus = 0.02 * (1 if params.get("sampling") == "uniform" else 0)
    top = start + 0.08 * clip / 16 + 0.3 * abs(math.log10(lr)) / 3 + bonus
    return round(top - (top - start) * math.exp(-epoch / 1.5) - 0.004 * max(0, epoch - 4) ** 2, 12)


# -- a worker (run as a subprocess) ------------------------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _open_storage(spec: dict[str, Any]) -> Any:
    from stageplan import LocalStorage

    if spec["kind"] == "dir":
        return LocalStorage(spec["url"])
    from stageplan.integrations.optuna import OptunaStorage

    return OptunaStorage(spec["url"], study_name="soak", checkpoints=spec.get("checkpoints"))


def worker_main(config: dict[str, Any]) -> None:
    """Plan on the shared storage; die at the configured point (if any)."""
    from stageplan import plan

    rng = random.Random(config["seed"])
    kill = config.get("kill")  # {"kind": ..., "after": n}
    counts: Counter[str] = Counter()
    log = open(config["log"], "a", buffering=1)  # noqa: SIM115 - one line per epoch

    def hit(kind: str) -> None:
        if kill is not None and kill["kind"] == kind:
            counts[kind] += 1
            if counts[kind] >= kill["after"]:
                log.write(f"KILL {kind} {os.getpid()}\n")
                _die()

    store = _open_storage(config["storage"])
    in_finish = [False]
    if kill is not None and kill["kind"] == "record":
        _arm_record_kill(store, in_finish, hit)
    if kill is not None and kill["kind"] == "report":
        original_save = store.save_progress
        before = rng.random() < 0.5

        def save_progress(edge: Any, progress: Any, *, worker: str) -> None:
            if before:
                hit("report")
            original_save(edge, progress, worker=worker)
            if not before:
                hit("report")

        store.save_progress = save_progress

    def fn(trial: Any) -> None:
        hit("claim")
        label = f"{trial.source.name}->{trial.target.name}"
        start = 0.0
        if trial.init_checkpoint is not None:
            saved = json.loads(Path(trial.init_checkpoint).read_text())
            if trial.resumed:
                if (saved["edge"], saved["epoch"]) != (label, trial.epoch):
                    raise RuntimeError(f"resumed from the wrong checkpoint: {saved}")
                start = saved["start"]
            else:
                start = saved["value"]
        for epoch in trial.epochs():
            if epoch > 0:
                time.sleep(config["sleep"])
                log.write(f"EPOCH {label} {epoch} {os.getpid()}\n")
            value = curve(trial.params, start, epoch)

            def save(path: str, epoch: int = epoch, value: float = value) -> None:
                body = json.dumps({"edge": label, "epoch": epoch, "value": value, "start": start})
                with open(path, "w") as fh:
                    if kill is not None and kill["kind"] == "checkpoint":
                        fh.write(body[: len(body) // 2])
                        fh.flush()
                        hit("checkpoint")
                        fh.seek(0)
                        fh.truncate()
                    fh.write(body)

            trial.report(value, save=save)

    original_finish = store.finish

    def finish(record: Any, *, worker: str) -> None:
        in_finish[0] = True
        try:
            original_finish(record, worker=worker)
        finally:
            in_finish[0] = False

    store.finish = finish
    plan(
        soak_graph(config["quick"]),
        fn,
        storage=store,
        rule=soak_rule(),
        stale_after=config["stale_after"],
        poll_interval=0.05,
        progress=False,
    )


def _arm_record_kill(store: Any, in_finish: list[bool], hit: Any) -> None:
    """Die part-way through writing a finished transition's record."""
    from stageplan import LocalStorage

    if isinstance(store, LocalStorage):
        import stageplan.storage._local as local

        real_replace = os.replace

        class _Os:  # the module's view of os: replace() dies inside finish()
            def __getattr__(self, name: str) -> Any:
                return getattr(os, name)

            @staticmethod
            def replace(src: Any, dst: Any) -> None:
                if in_finish[0] and str(dst).endswith(".json") and "transitions" in str(dst):
                    hit("record")  # the temporary file is written, not yet renamed
                real_replace(src, dst)

        local.os = _Os()  # type: ignore[assignment]
        return
    backend = store._backend()  # the harness reaches into the adapter to cut a write short
    for name in ("set_trial_user_attr", "set_trial_state_values"):
        real = getattr(backend, name)

        def wrapped(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if in_finish[0]:
                hit("record")
            return _real(*args, **kwargs)

        setattr(backend, name, wrapped)


# -- the driver --------------------------------------------------------------------------------


def _reference(quick: bool, root: Path) -> dict[str, Any]:
    """The uninterrupted plan, with one worker on a directory storage."""
    root.mkdir(parents=True, exist_ok=True)
    config = _worker_config("dir", {"kind": "dir", "url": str(root / "ref")}, root, quick, None,
                            sleep=0.0)
    proc = _spawn(config, root)
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"the uninterrupted reference run failed:\n{err[-3000:]}")
    from stageplan import LocalStorage

    return _summary(LocalStorage(root / "ref"), quick)


def _summary(store: Any, quick: bool) -> dict[str, Any]:
    from stageplan._planner import build_plan

    records = store.records()
    p = build_plan(soak_graph(quick), records, mode="max")
    return {
        "stages": [(s.state, s.epochs, s.value) for s in p.stages],
        "records": {
            f"{a}->{b}": (r.status, r.values, r.knee_epoch, r.checkpoint_epoch, r.value)
            for (a, b), r in records.items()
        },
        "epochs": {f"{a}->{b}": r.epochs for (a, b), r in records.items()},
    }


def _worker_config(
    name: str, storage: dict[str, Any], root: Path, quick: bool, kill: dict[str, Any] | None,
    *, sleep: float,
) -> dict[str, Any]:
    """A worker's settings; ``sleep``: seconds it sleeps per trained epoch."""
    return {
        "storage": storage,
        "log": str(root / f"{name}.log"),
        "quick": quick,
        "kill": kill,
        "seed": random.getrandbits(32),
        "sleep": sleep,
        "stale_after": 600.0,  # one host: a dead worker is found by its pid, at once
    }


def _spawn(config: dict[str, Any], root: Path) -> subprocess.Popen[str]:
    path = root / f"worker-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _postgres_database() -> tuple[str, Any] | None:
    server = os.environ.get("STAGEPLAN_TEST_POSTGRES_URL")
    if not server:
        return None
    from stageplan.integrations.optuna._databases import (
        drop_postgres_database,
        new_postgres_database,
    )

    url = new_postgres_database(server, prefix="stageplan_soak")
    return url, lambda: drop_postgres_database(url, server_url=server)


def soak_one(
    kind: str, kills: int, workers: int, quick: bool, reference: dict[str, Any], root: Path,
    *, epoch_sleep: float = 0.01,
) -> dict[str, Any]:
    """Soak one storage; return its figures and the problems found (empty when all is well).

    ``epoch_sleep``: seconds each worker sleeps per trained epoch (longer plans leave room for
    more kills before the end)."""
    root.mkdir(parents=True)
    cleanup = None
    if kind == "dir":
        storage: dict[str, Any] = {"kind": "dir", "url": str(root / "plan")}
    elif kind == "journal":
        storage = {"kind": "journal", "url": f"journal:{root / 'plan.log'}"}
    elif kind == "sqlite":
        storage = {"kind": "sqlite", "url": f"sqlite:///{root / 'plan.db'}"}
    else:
        made = _postgres_database()
        if made is None:
            return {"storage": kind, "skipped": "STAGEPLAN_TEST_POSTGRES_URL is unset"}
        url, cleanup = made
        storage = {"kind": "postgres", "url": url, "checkpoints": str(root / "checkpoints")}
    try:
        return _soak(kind, storage, kills, workers, quick, reference, root, epoch_sleep)
    finally:
        if cleanup is not None:
            cleanup()


def _soak(
    kind: str,
    storage: dict[str, Any],
    kills: int,
    workers: int,
    quick: bool,
    reference: dict[str, Any],
    root: Path,
    epoch_sleep: float,
) -> dict[str, Any]:
    started = time.monotonic()
    log = root / f"{kind}.log"
    planned: Counter[str] = Counter()
    done_kills: Counter[str] = Counter()
    failures: list[str] = []
    running: dict[int, tuple[subprocess.Popen[str], dict[str, Any], float | None]] = {}
    budget = kills
    deadline = time.monotonic() + 600 + 20 * kills

    def start_one() -> None:
        nonlocal budget
        kill = None
        external = None
        if budget > 0:
            budget -= 1
            k = random.choice(KINDS)
            planned[k] += 1
            if k == "random":
                external = time.monotonic() + random.uniform(1.0, 4.0)
            else:
                kill = {"kind": k, "after": random.randint(1, 4 if k != "report" else 12)}
        config = _worker_config(kind, storage, root, quick, kill, sleep=epoch_sleep)
        proc = _spawn(config, root)
        running[proc.pid] = (proc, config, external)

    for _ in range(workers):
        start_one()
    while running:
        if time.monotonic() > deadline:
            for proc, _, _ in running.values():
                proc.kill()
            failures.append("the soak ran past its deadline")
            break
        time.sleep(0.05)
        for pid, (proc, config, external) in list(running.items()):
            if external is not None and proc.poll() is None and time.monotonic() >= external:
                proc.kill()
            code = proc.poll()
            if code is None:
                continue
            del running[pid]
            err = proc.stderr.read() if proc.stderr else ""
            if code == -signal.SIGKILL:
                planned_kind = (config["kill"] or {}).get("kind", "random")
                done_kills[planned_kind] += 1
                start_one()
            elif code != 0:
                failures.append(f"worker {pid} exited {code}: {err.strip()[-1500:]}")
            elif config["kill"] is not None or external is not None:
                # Its kill point never came (the plan ended first): the kill is not counted.
                pass
            if code == 0 and budget > 0 and not running:
                start_one()
    wall = time.monotonic() - started
    store = _open_storage(storage)
    report: dict[str, Any] = {
        "storage": kind,
        "kills_planned": dict(planned),
        "kills": dict(done_kills),
        "kills_total": sum(done_kills.values()),
        "wall_s": round(wall, 1),
    }
    failures += _verify(store, storage, quick, reference, log, report)
    report["problems"] = failures
    return report


def _verify(
    store: Any,
    storage: dict[str, Any],
    quick: bool,
    reference: dict[str, Any],
    log: Path,
    report: dict[str, Any],
) -> list[str]:
    problems: list[str] = []
    try:
        got = _summary(store, quick)
    except Exception as exc:  # noqa: BLE001 - a damaged storage is a finding
        return [f"the storage cannot be read back: {type(exc).__name__}: {exc}"]
    if got["stages"] != reference["stages"]:
        problems.append(f"plan differs: {got['stages']} vs {reference['stages']}")
    want_records = {k: list(map(_jsonable, v)) for k, v in reference["records"].items()}
    got_records = {k: list(map(_jsonable, v)) for k, v in got["records"].items()}
    if set(got_records) != set(want_records):
        missing = sorted(set(want_records) - set(got_records))
        problems.append(f"records lost: {missing[:5]}")
    for edge, want in want_records.items():
        if edge in got_records and got_records[edge] != want:
            problems.append(f"{edge}: record differs: {got_records[edge]} vs {want}")
    # Training done: every epoch > 0 a worker trained, against the uninterrupted run.
    trained: Counter[str] = Counter()
    history: dict[str, list[str]] = defaultdict(list)
    for line in log.read_text().splitlines():
        parts = line.split(" ")
        if parts[0] == "EPOCH":
            trained[parts[1]] += 1
            history[parts[1]].append(f"{parts[2]}@{parts[3]}")
        elif parts[0] == "KILL":
            for h in history.values():
                if h and h[-1].endswith("@" + parts[2]):
                    h.append(f"KILL-{parts[1]}")
    retrained = {e: trained[e] - n for e, n in reference["epochs"].items() if trained[e] > n}
    report["epochs_uninterrupted"] = sum(reference["epochs"].values())
    report["epochs_trained"] = sum(trained.values())
    report["epochs_retrained"] = sum(retrained.values())
    report["max_retrained_per_transition"] = max(retrained.values(), default=0)
    for edge, steps in history.items():
        pids = [step.split("@")[1] for step in steps if "@" in step]
        changes = [p for i, p in enumerate(pids) if i == 0 or p != pids[i - 1]]
        if len(changes) != len(set(changes)):
            problems.append(f"{edge} ran in two workers at once: epoch@pid {' '.join(steps)}")
    if retrained:
        worst = max(retrained, key=lambda e: retrained[e])
        report["worst_transition"] = f"{worst}: epoch@pid {' '.join(history[worst])}"
    if any(trained[e] < n for e, n in reference["epochs"].items()):
        problems.append("some transition trained fewer epochs than its record holds")
    kills = report["kills_total"]
    if report["epochs_retrained"] > 2 * max(kills, 1):
        worst = max(retrained, key=lambda e: retrained[e])
        problems.append(
            f"{report['epochs_retrained']} epochs re-trained for {kills} kills: more than the "
            f"epochs since the last kept checkpoint (worst {worst}: epoch@pid "
            f"{' '.join(history[worst])})"
        )
    problems += _check_store_leftovers(store, storage)
    return problems


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x))


def _check_store_leftovers(store: Any, storage: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    records = store.records()
    named = {r.checkpoint for r in records.values() if r.checkpoint}
    if storage["kind"] == "dir":
        root = Path(storage["url"])
        on_disk = {str(p.relative_to(root)) for p in (root / "checkpoints").glob("*/*")}
        litter = [p.name for p in root.glob("transitions/.*.tmp")]
        litter += (
            [p.name for p in (root / "running").glob("*")] if (root / "running").is_dir() else []
        )
        if litter:
            problems.append(f"files left behind: {sorted(litter)[:5]}")
    else:
        from optuna.trial import TrialState

        study = store.load_study()
        complete: Counter[str] = Counter()
        waiting_or_running = []
        for t in study.get_trials():
            edge = t.user_attrs.get("stageplan:edge")
            if t.state == TrialState.COMPLETE:
                complete[edge] += 1
            if t.state in (TrialState.RUNNING, TrialState.WAITING):
                waiting_or_running.append((edge, t.state.name))
        twice = {e: n for e, n in complete.items() if n > 1}
        if twice:
            problems.append(f"transitions COMPLETE more than once: {twice}")
        if waiting_or_running:
            problems.append(f"trials left open: {waiting_or_running[:5]}")
        if storage["kind"] == "postgres":
            folder = Path(storage["checkpoints"])
            on_disk = {str(p.relative_to(folder)) for p in folder.glob("*/*")}
        else:
            base = storage["url"].split(":", 1)[1].removeprefix("///")
            folder = Path(base + ".artifacts")
            on_disk = {p.name for p in folder.glob("*")}
    orphans = sorted(on_disk - named)
    if orphans:
        problems.append(f"{len(orphans)} orphaned checkpoints: {orphans[:3]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="4 kills per storage, one sampling")
    parser.add_argument("--kills", type=int, help="kills per storage (default 50, quick 4)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--storages", default=",".join(STORAGES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument(
        "--epoch-sleep",
        type=float,
        default=0.01,
        help="seconds per trained epoch (longer plans leave room for more kills before the end)",
    )
    args = parser.parse_args(argv)
    if not args.epoch_sleep >= 0:
        parser.error(f"--epoch-sleep must be >= 0 seconds, got {args.epoch_sleep}")
    if args.worker:
        worker_main(json.loads(Path(args.worker).read_text()))
        return 0
    kinds = [k.strip() for k in args.storages.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in STORAGES]
    if unknown:
        parser.error(f"--storages: unknown {unknown}; choose from {list(STORAGES)}")
    kills = args.kills if args.kills is not None else (4 if args.quick else 50)
    if kills < 0 or args.workers < 1:
        parser.error(f"--kills must be >= 0 and --workers >= 1, got {kills}, {args.workers}")
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="stageplan-soak-") as tmp:
        root = Path(tmp)
        reference = _reference(args.quick, root / "reference")
        print(
            f"reference: {len(reference['records'])} transitions, "
            f"{sum(reference['epochs'].values())} epochs, plan "
            f"{[s[0] for s in reference['stages']]}",
            flush=True,
        )
        results = []
        for kind in kinds:
            r = soak_one(kind, kills, args.workers, args.quick, reference, root / kind,
                         epoch_sleep=args.epoch_sleep)
            results.append(r)
            if "skipped" in r:
                print(f"{kind}: skipped ({r['skipped']})", flush=True)
                continue
            verdict = "OK" if not r["problems"] else "PROBLEMS: " + " | ".join(r["problems"])
            if "epochs_trained" not in r:
                print(f"{kind}: {r['kills_total']} kills: {verdict}", flush=True)
                continue
            print(
                f"{kind}: {r['kills_total']} kills {r['kills']}, epochs trained "
                f"{r['epochs_trained']} (uninterrupted {r['epochs_uninterrupted']}, re-trained "
                f"{r['epochs_retrained']}, at most {r['max_retrained_per_transition']} in one "
                f"transition), {r['wall_s']} s: {verdict}",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"kills_per_storage": kills, "workers": args.workers, "runs": results}, indent=1
            )
            + "\n"
        )
    bad = [r for r in results if r.get("problems")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
