"""Optuna studies in an RDB storage, shared by every worker on every machine.

One study per model, named ``<study>-<model>-<target>``, holding in its user attributes what its
trials' values mean (model, target, data, test start, folds): a later run that differs is refused.
Workers run trials one at a time and start one only while the finished (complete or pruned) and
running trials of the study fall short of ``--trials``, so the count holds across machines; a worker
with nothing to start waits for the last running trials, which may fail and need replacing.

A trial whose worker died keeps no heartbeat: after the grace period any worker fails it and queues
it again (Optuna's retry callback, at most ``max_retries`` times), and its MLflow run is marked
FAILED. A worker that starts finds at once the trials of dead processes on its own host; a command
stopped by Ctrl-C or SIGTERM fails and re-queues the trials of its own workers and marks their runs
KILLED, so a stopped sweep leaves no RUNNING trial and resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import socket
import time
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from ..tracking import store
from ..errors import ForecastError, redact   # redact: the one masking of a URL's password, for st.redact too
from ..models import ModelEntry
from .trial_runs import WORKER_ATTR, TrialRuns, end_trial_run
from .objective import Evaluation, Objective

OWNER = "owner"
FACT = "forecast."      # prefix of the studies' user attributes


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and experimental-feature warnings off: the sweep prints its own."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class StorageSpec:
    url: str
    heartbeat: int
    grace_period: int
    max_retries: int
    tracked: bool


class Requeue:
    """A trial failed for want of a heartbeat (or by a stopped command): close its MLflow run, queue it again."""

    def __init__(self, max_retries: int, tracked: bool, status: str = "FAILED",
                 reason: str = "no heartbeat within the grace period: its worker died"):
        self.max_retries, self.tracked, self.status, self.reason = max_retries, tracked, status, reason

    def __call__(self, study, trial) -> None:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        if self.tracked:
            end_trial_run(study, trial, self.status, self.reason)
        RetryHeartbeatStaleTrialCallback(max_retry=self.max_retries)(study, trial)


def open_storage(spec: StorageSpec):
    """Optuna's RDB storage with heartbeats, or a one-line error when it cannot be reached."""
    import optuna
    import sqlalchemy.exc

    quiet_optuna()
    url = spec.url
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]     # SQLAlchemy 2.1 reads it as psycopg 3
    if url.startswith("sqlite"):
        engine: dict[str, Any] = {"connect_args": {"timeout": 60}}        # workers queue on the file lock
    elif spec.url.startswith("postgresql"):
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    else:
        engine = {"pool_pre_ping": True}

    def lock():   # a new SQLite file: one worker creates its tables while the others wait
        sqlite = store.sqlite_path(url)
        return store.creation_lock(sqlite) if sqlite is not None else contextlib.nullcontext()

    try:
        for attempt in range(5):
            try:
                with lock():
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=engine, heartbeat_interval=spec.heartbeat,
                        grace_period=spec.grace_period,
                        heartbeat_stale_trial_callback=Requeue(spec.max_retries, spec.tracked))
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Workers that start together on a new database race to create its tables; the loser
                # finds them made on the next try.
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
    except (ImportError, sqlalchemy.exc.SQLAlchemyError, ValueError, RuntimeError, OSError) as err:
        reason = getattr(err, "orig", None) or err.__cause__ or err
        line = next((s.strip() for s in str(reason).splitlines() if s.strip()), type(err).__name__)
        raise ForecastError(f"the study storage {redact(spec.url)} cannot be opened ({redact(line)}); start the "
                            f"database, fix --storage, or leave it out for a SQLite file in --out") from None


def study_name(base: str, model: str, target: str) -> str:
    return f"{base}-{model}-{target}"


def load_existing(storage, names: dict[str, str]) -> dict[str, Any]:
    """The studies among ``names`` (model -> study name) that exist already."""
    import optuna

    found = {}
    for model, name in names.items():
        try:
            found[model] = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
    return found


def open_studies(storage, names: dict[str, str], facts: dict[str, str],
                 existing: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Every model's study (``existing``: those already loaded), created with ``facts`` (plus its model) or
    checked against them; ``(studies, whether this call created the first one)``: the process that did
    makes the parent run."""
    studies, created = {}, None
    for model, name in names.items():
        wanted = {**facts, "model": model}
        study, new = (existing[model], False) if model in existing else _create(storage, name)
        if new:
            for key, value in wanted.items():
                study.set_user_attr(FACT + key, value)
            created = True if created is None else created
        else:
            _check(study, wanted, storage)
            created = bool(created)
        studies[model] = study
    return studies, bool(created)


def _create(storage, name: str):
    """``(study, whether this call created it)``: another worker may create it first."""
    import optuna

    try:
        return optuna.create_study(study_name=name, storage=storage, direction="minimize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage), False


def _check(study, wanted: dict[str, str], storage) -> None:
    import optuna

    for _ in range(6):   # a new study: another worker may have created it this moment and be writing its facts
        if FACT + "model" in study.user_attrs or study.get_trials(deepcopy=False):
            break
        time.sleep(0.5)  # the study reads its attributes and trials from the storage afresh each time
    attrs = study.user_attrs
    if FACT + "model" not in attrs or study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ForecastError(f"study {study.study_name!r} in {redact(storage.url)} is not a forecast sweep's "
                            f"study; choose another --study")
    for key, value in wanted.items():
        if attrs.get(FACT + key) != value:
            raise ForecastError(f"study {study.study_name!r} in {redact(storage.url)} was made with "
                                f"{key.replace('_', '-')} {attrs.get(FACT + key)!r}, not {value!r}: its trials "
                                f"would not compare; use the same setting or another --study")


def counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    n = {s.name.lower(): states.count(s) for s in TrialState}
    n["finished"], n["total"] = n["complete"] + n["pruned"], len(states)
    return n


def release(storage, names: list[str], owned: Callable[[dict], bool], spec: StorageSpec, status: str,
            reason: str) -> list[int]:
    """Fail the RUNNING trials ``owned`` picks (their worker is gone), close their runs with ``status`` and
    queue them again; the trial numbers."""
    import optuna

    released = []
    for name in names:
        released += _release(optuna.load_study(study_name=name, storage=storage), owned, spec, status, reason)
    return released


def _release(study, owned: Callable[[dict], bool], spec: StorageSpec, status: str, reason: str) -> list[int]:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage, released = study._storage, []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not owned(trial.user_attrs.get(WORKER_ATTR, {})):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:      # it finished after all, or another worker failed it first
            continue
        Requeue(spec.max_retries, spec.tracked, status, reason)(study, storage.get_trial(trial._trial_id))
        released.append(trial.number)
    return released


def owned_by_command(token: str) -> Callable[[dict], bool]:
    """The trials of the workers a command started wherever they ran (Ray tasks on other machines)."""
    return lambda attrs: attrs.get(OWNER) == token


def owned_by(pids: set[int]) -> Callable[[dict], bool]:
    host = socket.gethostname()
    return lambda attrs: attrs.get(store.TAG_HOST) == host and attrs.get(store.TAG_PID, "") in {str(p) for p in pids}


# ---------------------------------------------------------------- workers


@dataclass
class WorkPlan:
    """Everything a worker needs; sent to worker processes."""

    storage: StorageSpec
    studies: dict[str, str]           # model -> study name
    entries: list[ModelEntry]
    trials: int
    sampler: str
    seed: int
    deadline: float | None            # time.time() after which no trial starts
    evaluation: Evaluation
    runs: TrialRuns | None
    owner: str | None = None          # the command's token in its trials' worker attributes (Ray workers: whose)
    tracking_uri: str | None = None   # Ray workers: the tracking store, the same from any working folder


def make_sampler(kind: str, seed: int):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)   # parallel workers: fewer repeats
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(kind: str):
    """Random search keeps every trial complete (Greff's importance study); TPE prunes on the folds."""
    import optuna

    if kind == "tpe":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def work(plan: WorkPlan, worker: int = 0, echo: Callable[[str], None] | None = None) -> list[dict]:
    """Run trials until every study has ``plan.trials`` finished ones (or the deadline): model after model;
    when the last trials of a study run elsewhere, on to the next study, and back to wait for them at the end
    (one of them may fail, or its worker die, and need replacing)."""
    import optuna

    echo = echo or (lambda line: print(line, flush=True))
    storage = open_storage(plan.storage)
    who = store.identity_tags() | ({OWNER: plan.owner} if plan.owner else {})
    poll = max(1, min(5, plan.storage.heartbeat))
    done: list[dict] = []
    pending = {entry.name: _open(plan, entry, storage, worker, who) for entry in plan.entries}
    while pending:
        ran = False
        for model, (study, objective) in list(pending.items()):
            while True:
                if plan.deadline is not None and time.time() >= plan.deadline:
                    return done
                n = counts(study)
                if n["finished"] >= plan.trials:
                    del pending[model]
                    break
                if n["finished"] + n["running"] >= plan.trials and n["waiting"] == 0:
                    optuna.storages.fail_stale_trials(study)     # its last trials run elsewhere; one may be dead
                    break
                started = time.perf_counter()
                study.optimize(objective, n_trials=1, catch=(Exception,))
                trial = storage.get_trial(objective.trial_id)
                row = {"model": model, "trial": trial.number, "state": trial.state.name, "value": trial.value,
                       "seconds": time.perf_counter() - started,
                       "fit_seconds": trial.user_attrs.get("fit_seconds", 0.0), "worker": os.getpid()}
                done.append(row)
                ran = True
                echo(_line(row, trial, objective))
        if pending and not ran:
            time.sleep(poll)
    return done


def work_on(worker: int, plan: WorkPlan) -> list[dict]:
    """``work`` as a task (its worker's number first) in a process started elsewhere, in another folder."""
    if plan.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = plan.tracking_uri
    return work(plan, worker)


def _open(plan: WorkPlan, entry: ModelEntry, storage, worker: int, who: dict[str, str]):
    """A model's study as this worker samples it, after failing the trials of dead processes on this host."""
    import optuna

    name = plan.studies[entry.name]
    study = optuna.load_study(study_name=name, storage=storage)
    _release(study, store.is_orphaned, plan.storage, "FAILED", "its worker process on this host no longer exists")
    # Own draws per model, worker and run (a resumed sweep must not draw its first trials again); the same
    # draws for the same seed in a fresh one-worker sweep.
    seen = len(study.get_trials(deepcopy=False))
    seed = (plan.seed + zlib.crc32(entry.name.encode()) + 1000 * worker + seen) % 2**32
    study.sampler, study.pruner = make_sampler(plan.sampler, seed), make_pruner(plan.sampler)
    return study, Objective(entry, name, plan.evaluation, plan.runs, who)


def _line(row: dict, trial, objective: Objective) -> str:
    state = row["state"].lower()
    score = f"val loss {row['value']:.4f}" if row["value"] is not None else trial.user_attrs.get("error", "")
    if state == "pruned":
        last = max(trial.intermediate_values) if trial.intermediate_values else None
        score = f"after fold {last}" if last is not None else ""
    return (f"  {row['model']} trial {row['trial']:>3} {state:<8} {score} ({objective.summary()}) "
            f"{row['seconds']:.1f}s [pid {row['worker']}]")
