"""The sweep's MLflow runs: one parent run per sweep, one nested run per trial.

The parent run's id is kept in every model study's user attributes, so that every worker on every
machine, and every later run of the same sweep, nests its trials under the same parent. Trials are
logged by hand with ``MlflowClient`` (an explicit run id, never the process's active run), so parallel
workers cannot nest under each other; each trial run carries who ran it (host, pid), so that a run
left RUNNING by a killed worker is marked FAILED later, by a dead trial's retry or by the store's
reaping of dead processes' runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..tracking import store, runs as tracking

TAG_PARENT = "mlflow.parentRunId"
KIND_SWEEP, KIND_TRIAL = "sweep", "sweep-trial"
WORKER_ATTR = "forecast.worker"             # a trial's user attribute: who runs it (host, pid, start) and its MLflow run
RUN_KEY = "mlflow_run"
PARENT_ATTR = "forecast.mlflow_parent_run"  # a study's user attribute: the sweep's parent run


@dataclass
class TrialRuns:
    """Nested runs under ``parent_run_id`` in ``experiment_id``, from any process."""

    experiment_id: str
    parent_run_id: str
    source: str
    _client: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self):                 # sent to worker processes without the client
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None:
            self._client = tracking.client()
        return self._client

    def start(self, model: str, study: str, trial, params: dict[str, Any]) -> str:
        from mlflow.entities import Param

        tags = {TAG_PARENT: self.parent_run_id, tracking.TAG_KIND: KIND_TRIAL, tracking.TAG_SOURCE: self.source,
                "ticker": self.source, "model": model, "optuna.study": study, "optuna.trial": str(trial.number),
                **store.identity_tags()}
        run = self.client.create_run(self.experiment_id, run_name=f"{model}-trial-{trial.number}", tags=tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def log(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        values = _metrics(metrics, step)
        if values:
            self.client.log_batch(run_id, metrics=values)

    def end(self, run_id: str, status: str, metrics: dict[str, float], tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, metrics=_metrics(metrics), tags=[RunTag(k, str(v)) for k, v in tags.items()])
        self.client.set_terminated(run_id, status=status)


def _metrics(metrics: dict[str, float], step: int = 0) -> list:
    """MLflow's metric entities of the finite ``metrics``, stamped now."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, v, now, step) for k, v in tracking._finite(metrics).items()]


def end_trial_run(study, trial, status: str, reason: str) -> None:
    """Close the MLflow run of a trial that its worker cannot close any more (dead, or stopped).

    The trial names its run; a worker killed between creating the run and naming it leaves it to be
    found by its tags (the sweep's parent run, the study and the trial number) in the parent's experiment,
    where every trial run is made."""
    client = tracking.client()
    run_id = trial.user_attrs.get(WORKER_ATTR, {}).get(RUN_KEY)
    parent = study.user_attrs.get(PARENT_ATTR)
    try:
        if run_id:
            runs = [client.get_run(run_id)]
        elif parent:
            runs = client.search_runs([client.get_run(parent).info.experiment_id],
                                      f"tags.`{TAG_PARENT}` = '{parent}' and "
                                      f"tags.`optuna.study` = '{study.study_name}' and "
                                      f"tags.`optuna.trial` = '{trial.number}'")
        else:
            runs = []
        for run in runs:
            if run.info.status == "RUNNING":
                store.close_run(client, run.info.run_id, status, reason)
    except Exception:   # another tracking store, or a deleted run: nothing of ours to close
        return


def open_parent(studies: list, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
                wait: float = 20.0) -> str:
    """The sweep's parent run, active in this process: the one the studies name (resumed), else a new one,
    whose id the studies then keep. When another process is creating the studies' parent run this moment
    (``wait`` > 0 and this process created no study), wait for it rather than make a second one."""
    import mlflow

    tracking.open_store()
    client = tracking.client()
    deadline = time.time() + wait
    while True:
        known = [s.user_attrs.get(PARENT_ATTR) for s in studies]
        for run_id in dict.fromkeys(r for r in known if r):
            try:
                run = client.get_run(run_id)
            except Exception:
                continue                     # kept by a study, but not in this tracking store
            if run.info.lifecycle_stage != "active":
                continue
            mlflow.set_experiment(experiment_id=run.info.experiment_id)
            mlflow.start_run(run_id=run_id)
            mlflow.set_tags(store.identity_tags())
            _keep(studies, run_id)
            return run_id
        if time.time() >= deadline:
            break
        time.sleep(1.0)     # the studies read their user attributes from the storage afresh each time
    run_id = tracking.start_run(experiment, run_name, tags, params).info.run_id
    _keep(studies, run_id)
    return run_id


def _keep(studies: list, run_id: str) -> None:
    for study in studies:
        if study.user_attrs.get(PARENT_ATTR) != run_id:
            study.set_user_attr(PARENT_ATTR, run_id)
