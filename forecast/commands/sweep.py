"""``forecast sweep``: tune each network by walk-forward validation before the test period.

ingest -> cut at --test-start -> validation folds -> one study per model (RDB storage) -> workers run
trials (refit and score fold by fold, report, prune; one nested MLflow run each) -> best settings,
tables, importances, figures -> the sweep's MLflow parent run.

The output folder is the sweep's home and is reused by design: it holds the default SQLite storage,
and running the same command again resumes the studies (``prepare_out`` with ``Resumable``: new, empty,
or this study's sweep folder, whose ``sweep.json`` names the study). While a run works on it the folder
has no manifest.json; when the run ends, every file written (each atomically) is listed in a new one.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..config.sweep_settings import SweepConfig
from ..config.yaml_io import to_flat_dict
from ..console import Echo, configure_output
from ..data.load import load_data
from ..data.panels import Panel, is_panel, load_panel
from ..errors import ForecastError, Interrupted
from ..models import parse_models, unique_models
from ..models.custom import check_custom_cells, load_cell
from ..report.tables import text_table
from ..tracking import runs as tracking
from ..tracking.outputs import MANIFEST, Resumable, folder_name, prepare_out
from ..tracking.record import RunRecord, data_tags, panel_tags

STORAGE_FILE = "study.db"


@dataclass
class SweepResult:
    out_dir: Path
    run_id: str | None
    best: pd.DataFrame                       # one row per model: its best trial
    trials: dict[str, pd.DataFrame]          # model -> every trial of its study
    this_run: list[dict]                     # the trials this command ran (all its workers)


def default_out(study: str) -> Path:
    return Path("runs") / folder_name("sweep", study)


@dataclass
class SweepRecord(RunRecord):
    """The run record of a sweep: its own folder check, and the parent run the studies share (resumed)."""

    study: str = ""
    studies: list = field(default_factory=list)
    wait: float = 0.0

    def prepare(self) -> None:
        """What is left once ``sweep`` has checked the folder (before it put the study storage there)."""
        (self.out / MANIFEST).unlink(missing_ok=True)     # being worked on: visibly incomplete until the end
        self.work = self.out                              # resumed and joined by design: written in place

    def publish(self) -> None:
        """Written in place: complete once its manifest is."""

    def discard(self) -> None:
        """The study and its files stay for the sweep to resume."""

    def start_run(self) -> str:
        from ..sweep.trial_runs import KIND_SWEEP, open_parent

        tags = {tracking.TAG_KIND: KIND_SWEEP, tracking.TAG_SOURCE: self.source, "ticker": self.source,
                "optuna.study": self.study}
        return open_parent(self.studies, self.experiment, self.run_name, tags, self.params, self.wait)


def sweep(cfg: SweepConfig, echo: Echo = print) -> SweepResult:
    d, s = cfg.data, cfg.sweep
    entries = _networks(s.models, d.target, echo)
    base = s.study or d.source_name
    out = Path(cfg.out) if cfg.out else default_out(base)
    data = _load(d, echo)
    series = data.series if isinstance(data, Panel) else data[1]
    from ..sweep.results import SWEEP_FILE

    prepare_out(out, tracked=cfg.track, resume=Resumable(SWEEP_FILE, STORAGE_FILE, base))
    plan = _plan(cfg, entries, base, out, series, echo, data.names if isinstance(data, Panel) else [])
    experiment = tracking.experiment_name(d.source_name, cfg.experiment) if cfg.track else None
    # Another process made these studies a moment ago: wait for the parent run it is making, not a second one.
    from ..sweep.studies import counts

    fresh = not plan.created and not any(counts(v)["total"] for v in plan.studies.values())
    params = to_flat_dict(cfg) | {"sweep.storage": plan.shown_url}
    record = SweepRecord(out, "sweep", d.source_name, experiment, f"sweep-{base}", params, echo, study=base,
                         studies=list(plan.studies.values()), wait=20.0 if fresh else 0.0)
    from ..engine.cluster import executor

    with executor(s.executor, s.ray_address, s.jobs, echo) as cluster, record:
        if cluster is not None:
            _check_cluster_stores(cluster, plan.shown_url, cfg.track)
        record.tags(panel_tags(data) if isinstance(data, Panel) else data_tags(*data))
        sweep_facts = {"study": base, "storage": plan.shown_url, "studies": plan.names, "sampler": s.sampler,
                       "trials": s.trials, "parent_run": record.run_id, **plan.facts}
        record.json("sweep.json", sweep_facts)
        started = time.perf_counter()
        work = plan.work_plan(cfg, record, entries)
        rows = (_run_on_ray(work, s.jobs, plan.storage, echo) if cluster is not None else
                _run_workers(work, s.jobs, plan.storage, echo))
        _speed(rows, time.perf_counter() - started, echo)
        best, trials = _write_results(record, cfg, plan.studies, sweep_facts, echo)
    return SweepResult(record.out, record.run_id, best, trials, rows)


def _load(d, echo: Echo):
    """A panel (``Panel``), or one series' ``(history, series)``."""
    return load_panel(d, echo) if is_panel(d) else load_data(d, echo)


def _networks(models: list[str], target: str, echo: Echo) -> list:
    """The networks to tune, each importable: a baseline has nothing to tune."""
    entries = parse_models(unique_models(models, echo), target)
    baselines = [e.name for e in entries if e.kind != "network"]
    if baselines:
        raise ForecastError(f"--models: a sweep tunes networks; {', '.join(baselines)} has nothing to tune (the "
                            f"backtest compares baselines as they are)")
    for entry in entries:
        if entry.custom:
            load_cell(entry.cell)
    return entries


@dataclass
class SweepPlan:
    """The studies a sweep works on and the validation folds that score their trials."""

    spec: object
    storage: object
    shown_url: str                       # the storage URL with any password masked
    names: dict[str, str]                # model -> study name
    studies: dict
    created: bool
    facts: dict[str, str]                # what a trial's value means, kept with every study
    evaluation: object

    def work_plan(self, cfg: SweepConfig, record: RunRecord, entries: list):
        from ..sweep import studies as st
        from ..sweep.trial_runs import TrialRuns

        s = cfg.sweep
        runs = (TrialRuns(tracking.active_experiment_id(), record.run_id, cfg.data.source_name)
                if record.run_id else None)
        return st.WorkPlan(self.spec, self.names, entries, s.trials, s.sampler, cfg.train.seed,
                           time.time() + s.timeout if s.timeout else None, self.evaluation, runs)


def _plan(cfg: SweepConfig, entries: list, base: str, out: Path, series, echo: Echo, series_names: list[str]) -> SweepPlan:
    """``series``: the one series, or a panel's tuple of them (``series_names``: theirs)."""
    from ..sweep import studies as st
    from ..sweep.objective import (Evaluation, default_test_start, longest_lookback, panel_validation_folds,
                                   validation_folds)
    from ..sweep.results import data_facts
    from ..sweep.space import family

    d, s = cfg.data, cfg.sweep
    url = s.storage or f"sqlite:///{(out / STORAGE_FILE).resolve()}"
    spec = st.StorageSpec(url, s.heartbeat, s.grace_period, s.max_retries, cfg.track)
    storage = st.open_storage(spec)
    names = {e.name: st.study_name(base, e.name, d.target) for e in entries}
    existing = st.load_existing(storage, names)
    known = {v.user_attrs.get(st.FACT + "test_start") for v in existing.values()} - {None}
    test_start = s.test_start or (sorted(known)[0] if known else default_test_start(series))
    spaces = {e.name: cfg.space_for(family(e)) for e in entries}
    if isinstance(series, tuple):
        seen, folds, where = panel_validation_folds(series, series_names, test_start, s.val_folds,
                                                    s.fold_days, longest_lookback(spaces), d.horizon, d.val_fraction)
    else:
        (seen, folds), where = validation_folds(series, test_start, s.val_folds, s.fold_days, longest_lookback(spaces),
                                                d.horizon, d.val_fraction), ()
    first = seen[0] if where else seen
    check_custom_cells(entries, len(first.feature_names), cfg.network, min(min(sp.lookbacks) for sp in spaces.values()))
    facts = data_facts(d) | {"test_start": test_start, "val_folds": str(s.val_folds), "fold_days": str(s.fold_days),
                             "recipe": _recipe(cfg)}
    studies, created = st.open_studies(storage, names, facts, existing)
    own = [seen[i] if where else seen for i in (where or (0,) * len(folds))]
    begin = min(s_.target_dates(f.split.test[:1])[0] for s_, f in zip(own, folds))
    end = max(s_.target_dates(f.split.test[-1:])[0] for s_, f in zip(own, folds))
    across = f" of {len(seen)} series (the value: the mean over the series)" if where else ""
    echo(f"sweep: {len(entries)} studies in {st.redact(url)} ({', '.join(names.values())}); {s.sampler} sampler, "
         f"{s.trials} finished trials each; validation: {len({f.number for f in folds})} folds{across} from "
         f"{begin:%Y-%m-%d} to {end:%Y-%m-%d}, test period from {test_start} never seen")
    evaluation = Evaluation(seen, folds, d.horizon, cfg.network, cfg.train, spaces, where)
    return SweepPlan(spec, storage, st.redact(url), names, studies, created, facts, evaluation)


def _recipe(cfg: SweepConfig) -> str:
    """The fixed settings that change what a trial's value means (not where it runs): kept with the study."""
    t = cfg.train
    return (f"max_epochs={t.max_epochs} patience={t.patience} seeds={','.join(map(str, t.seed_list))} "
            f"tbptt={t.tbptt_k1}/{t.tbptt_k2} chrono={cfg.network.chrono} position={cfg.network.position} val_fraction={cfg.data.val_fraction} "
            f"distribution={cfg.network.distribution}")


def _check_cluster_stores(cluster, storage: str, tracked: bool) -> None:
    """Stores every machine of the cluster can reach, or one line: a SQLite file lives on one machine."""
    if cluster.machines < 2:
        return
    if storage.startswith("sqlite"):
        raise ForecastError(f"--executor ray: the cluster has {cluster.machines} machines, and the study storage "
                            f"{storage} is a file on this one; give --storage postgresql://user@host/db, which every "
                            f"machine reaches")
    if tracked and tracking.tracking_uri().startswith("sqlite"):
        raise ForecastError(f"--executor ray: the cluster has {cluster.machines} machines, and the tracking store "
                            f"{tracking.shown_uri()} is a file on this one; set MLFLOW_TRACKING_URI to a tracking "
                            f"server (http://host:5000), or use --no-track")


def _run_on_ray(plan, jobs: int, storage, echo: Echo) -> list[dict]:
    """``jobs`` workers as Ray tasks sharing the studies through their storage; stopped, their unfinished trials
    are released as the local workers' are (found by the command's token: the tasks ran anywhere)."""
    import uuid

    from ..engine.cluster import run_tasks, task_gpus
    from ..sweep import studies as st
    from ..tracking.store import absolute_uri

    token = uuid.uuid4().hex
    plan = replace(plan, owner=token, tracking_uri=absolute_uri())
    rows: list[dict] = []
    try:
        for _, got in run_tasks(st.work_on, list(range(jobs)), (plan,), lambda k: f"sweep worker {k}",
                                gpus=task_gpus(plan.evaluation.train.accelerator), on_wait=TrialProgress(plan, echo)):
            rows += got
        return rows
    except BaseException as err:
        _release_unfinished(err, plan, storage, st.owned_by_command(token), echo)
        raise


class TrialProgress:
    """Trials finished / wanted and the time left, read from the studies every few seconds: Ray workers report
    nothing while they run."""

    EVERY = 2.0

    def __init__(self, plan, echo: Echo):
        self.plan, self.echo, self.started, self.last, self.shown = plan, echo, time.perf_counter(), 0.0, -1
        self.wanted = plan.trials * len(plan.studies)
        self.studies = None                # opened at the first look, then read again each time

    def __call__(self) -> None:
        import optuna

        from ..sweep import studies as st

        now = time.perf_counter()
        if now - self.last < self.EVERY:
            return
        self.last = now
        try:
            if self.studies is None:
                storage = st.open_storage(self.plan.storage)
                self.studies = [optuna.load_study(study_name=n, storage=storage) for n in self.plan.studies.values()]
            done = sum(min(self.plan.trials, st.counts(study)["finished"]) for study in self.studies)
        except Exception:          # progress is a courtesy: a busy storage skips a line
            return
        if done != self.shown and done:
            self.shown = done
            left = (now - self.started) / done * (self.wanted - done)
            self.echo(f"  [{done}/{self.wanted}] trials finished" + (f" (about {left:.0f}s left)" if done < self.wanted
                                                                       else ""))


def _release_unfinished(err: BaseException, plan, storage, owned, echo: Echo) -> None:
    """A stopped or failed sweep: its workers' RUNNING trials marked failed (KILLED runs when stopped) and queued
    again."""
    from ..sweep import studies as st

    stopped = isinstance(err, (KeyboardInterrupt, Interrupted))
    try:
        released = st.release(storage, list(plan.studies.values()), owned, plan.storage,
                              "KILLED" if stopped else "FAILED",
                              "the sweep was stopped" if stopped else f"the sweep failed: {type(err).__name__}")
    except Exception as trouble:      # the storage went away too: heartbeats will tell the trials dead
        echo(f"note: the unfinished trials could not be released ({type(trouble).__name__}); after "
             f"--grace-period any worker fails and retries them")
    else:
        if released:
            echo(f"note: trial(s) {', '.join(map(str, released))} stopped unfinished: marked failed and "
                 f"queued again, so the next run of this sweep starts with them")


def _run_workers(plan, jobs: int, storage, echo: Echo) -> list[dict]:
    """``jobs`` workers (this process for one): each runs trials until the studies are done."""
    from ..engine.workers import cap_jobs, pool_context, worker_pids, worker_pool
    from ..sweep import studies as st

    jobs, note = cap_jobs(jobs, plan.trials * len(plan.entries))
    if note:
        echo(f"note: {note}")
    pids = {os.getpid()}
    try:
        if jobs == 1:
            return st.work(plan, 0, echo)
        rows: list[dict] = []
        # Fresh processes: no database connection or torch state inherited from this one.
        with worker_pool(jobs, pool_context(fresh=True), setup=configure_output) as pool:
            futures = [pool.submit(st.work, plan, k) for k in range(jobs)]
            try:
                for future in as_completed(futures):
                    rows += future.result()
            except BaseException:
                pids |= worker_pids(pool)
                raise
        return rows
    except BaseException as err:
        import psutil

        psutil.wait_procs([p for p in map(_process, pids - {os.getpid()}) if p], timeout=5)
        _release_unfinished(err, plan, storage, st.owned_by(pids), echo)
        raise


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _speed(rows: list[dict], wall: float, echo: Echo) -> None:
    if not rows:
        echo("this run started no trial: the studies already have their trials (raise --trials to add some)")
        return
    seconds = sum(r["seconds"] for r in rows) / len(rows)
    fitting = sum(r["fit_seconds"] or 0.0 for r in rows) / len(rows)
    workers = len({r["worker"] for r in rows})
    echo(f"this run: {len(rows)} trials in {wall:.0f}s with {workers} worker(s): {3600 * len(rows) / wall:.0f} "
         f"trials/hour; a trial took {seconds:.1f}s, {fitting:.1f}s of it fitting ({seconds - fitting:.2f}s for "
         f"storage, tracking and scoring)")


def _write_results(record: SweepRecord, cfg: SweepConfig, studies: dict, facts: dict,
                   echo: Echo) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    from ..sweep import results as rs
    from ..sweep.space import describe, setup_of
    from ..sweep.studies import counts
    from ..sweep.objective import loss_name, r2_vs_naive

    distribution = cfg.network.distribution
    loss = loss_name(distribution)
    (record.out / rs.BEST_DIR).mkdir(exist_ok=True)
    rows, trials, best_facts = [], {}, {}
    for model, study in studies.items():
        name = study.study_name
        frame = trials[model] = rs.trials_frame(study)
        n = counts(study)
        record.csv(f"trials_{model}.csv", frame)
        record.figure(f"history_{model}.png", rs.plot_history, frame, title=f"{model}: validation loss by trial",
                      loss=loss, naive=None if distribution else 1.0)
        found = rs.importances(study)
        if found is not None:
            record.csv(f"importance_{model}.csv", found[0])
            record.figure(f"importance_{model}.png", rs.plot_importance, found[0],
                          title=f"{model}: which hyperparameters matter")
        else:
            echo(f"note: {model}: too few complete trials ({n['complete']}) for hyperparameter importances")
        trial = rs.best_trial(study)
        row = {"model": model, "study": name, "complete": n["complete"], "pruned": n["pruned"], "failed": n["fail"]}
        if trial is not None:
            setup = setup_of(trial.params, cfg.network, cfg.train)
            yaml = rs.best_yaml(rs.best_settings(cfg, setup), model, name, trial, facts["test_start"], n["finished"],
                                record.out, loss)
            record.text(f"{rs.BEST_DIR}/{model}.yaml", yaml)
            row |= {"best_trial": trial.number, "val_loss": trial.value, **r2_vs_naive(trial.value, distribution),
                    "settings": describe(setup), **trial.params}
            best_facts[model] = {"trial": trial.number, "val_loss": trial.value}
            record.metrics({f"best_val_loss_{model}": trial.value, f"complete_trials_{model}": n["complete"]})
        rows.append(row)
    best = pd.DataFrame(rows)
    record.csv("best_trials.csv", best)
    record.json("sweep.json", facts | {"best": best_facts})
    record.config(replace(cfg, sweep=replace(cfg.sweep, storage=facts["storage"] if cfg.sweep.storage else None)))
    echo(f"\nbest per model (validation loss on the validation folds: {loss}):")
    echo(text_table(best.to_dict("records"), [c for c in ("complete", "pruned", "failed", "best_trial", "val_loss",
                                                          "settings") if c in best]))
    return best, trials
