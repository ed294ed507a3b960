"""MLflow: experiments, runs, metrics, artifacts and the logged model.

The store is MLflow's own default (``mlflow.db`` SQLite + ``mlruns/`` artifacts in
the working folder) unless ``MLFLOW_TRACKING_URI`` points elsewhere, e.g. a team's
tracking server.
"""

from __future__ import annotations

import contextlib

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from ..errors import ForecastError

TAG_KIND = "forecast.kind"          # "fit", "backtest", "backtest-model", "bench", "diagnose"
TAG_SOURCE = "forecast.source"      # ticker / CSV stem / synthetic name
NETWORK_DIR = "network"             # the run's artifact folder holding weights.pt and network.json
EXPERIMENT_KIND = "mlflow.experimentKind"
_opened: set[str] = set()


def _mlflow():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    return mlflow


def client():
    """An ``MlflowClient`` of the current store (for code that works on runs by id, from any process)."""
    return _mlflow().MlflowClient()


def active_experiment_id() -> str:
    """The experiment of this process's active run."""
    return _mlflow().active_run().info.experiment_id


def open_store() -> None:
    """Check the store answers, create it under a lock if new, and fail the runs of dead processes.

    Once per process and store; every command that touches the store goes through here.
    """
    uri = store.tracking_uri()
    if uri in _opened:
        return
    store.check_store()
    mlflow = _mlflow()
    try:
        with store.creation_lock():
            client = mlflow.MlflowClient()
            client.search_experiments(max_results=1)   # creates and migrates a new SQLite store
        store.reap_orphaned_runs(client)
    except Exception as err:      # a store check_store could not tell unusable (a damaged database...): one line
        raise store.unusable(err) from None
    _opened.add(uri)


def experiment_name(source_name: str, explicit: str | None = None) -> str:
    return explicit or f"forecast/{source_name}"


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """MLflow rejects NaN in some stores and charts; leave undefined metrics out."""
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(float(v))}


def log_model(network, input_example: np.ndarray, lookback: int, features: list[str], target: str,
              series: str | None = None) -> None:
    """Log a trained network without pickle: ``network/`` (weights as tensors + settings) for
    ``forecast predict``, and the same two files as an MLflow model from code (``forecast/serving.py``)
    for ``mlflow.pyfunc.load_model`` and ``mlflow models predict``. A panel's fit logs one per series
    (``series``: its name in file form): ``network/<series>/`` and the model ``model-<series>``."""
    import tempfile

    import mlflow.pyfunc
    import torch
    from mlflow.models import infer_signature

    from . import serving
    from ..models.saved import save_network

    mlflow = _mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        weights, spec = save_network(network, Path(tmp), lookback, features, target)
        mlflow.log_artifacts(tmp, artifact_path=network_path(series))
        with torch.no_grad():
            output = network(torch.from_numpy(input_example)).numpy()
        mlflow.pyfunc.log_model(
            name=f"model-{series}" if series else "model", python_model=serving.__file__, artifacts={"weights": str(weights), "network": str(spec)},
            signature=infer_signature(input_example, output), input_example=input_example,
            # Explicit requirements: inferring them re-imports the model in a subprocess (seconds).
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "forecast"])


def start_run(experiment: str, run_name: str, tags: dict[str, str], params: dict[str, Any], nested: bool = False):
    """An active MLflow run with tags (and who runs it: host, pid) and params set."""
    mlflow = _mlflow()
    if not nested:
        open_store()
        found = mlflow.set_experiment(experiment)
        if EXPERIMENT_KIND not in found.tags:   # MLflow's UI then opens it on the runs table, not the GenAI view
            mlflow.set_experiment_tag(EXPERIMENT_KIND, "custom_model_development")
    tags = {**tags, **store.identity_tags()}
    run = mlflow.start_run(run_name=run_name, nested=nested, tags={k: str(v) for k, v in tags.items()})
    if params:
        # MLflow caps a param value at 6,000 characters; ours are short scalars.
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})
    return run


def end_run(status: str = "FINISHED", attempts: int = 3) -> None:
    """Close the active run as FINISHED, FAILED or KILLED. A store that will not take it at once (a SQLite write
    cut short by Ctrl-C can leave a pooled connection mid-transaction, holding the lock) is tried again on fresh
    connections."""
    import time

    mlflow = _mlflow()
    if status != "FINISHED":      # stopped or failed, perhaps inside a write: no abandoned connection left to wait on
        _fresh_connections()
    for attempt in range(attempts):
        try:
            mlflow.end_run(status=status)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            _fresh_connections()
            time.sleep(0.5)


def _fresh_connections() -> None:
    """Drop the tracking store's pooled database connections (each next use opens a new one), and collect the
    one an interrupted write abandoned: SQLAlchemy invalidates it without closing it, so its lock lasts until
    it is collected."""
    import gc

    with contextlib.suppress(Exception):
        from mlflow.tracking._tracking_service.utils import _get_store

        engine = getattr(_get_store(), "engine", None)
        if engine is not None:
            engine.dispose()
    gc.collect()


def set_tags(tags: dict[str, Any]) -> None:
    _mlflow().set_tags({k: str(v) for k, v in tags.items()})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    values = _finite(metrics)
    if values:
        _mlflow().log_metrics(values, step=step)


def log_metric_rows(rows: list[tuple[str, float, int]]) -> None:
    """Metrics of the active run, each with its own step (``(key, value, step)``), in one request."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(value), now, int(step)) for key, value, step in rows if value == value and
               abs(float(value)) != float("inf")]
    if metrics:
        mlflow = _mlflow()
        client().log_batch(mlflow.active_run().info.run_id, metrics=metrics)


def log_files(paths: list[Path], root: Path | None = None) -> None:
    """Exactly these files as artifacts of the active run (never a whole folder), in their folders under ``root``."""
    mlflow = _mlflow()
    for path in paths:
        folder = path.parent.relative_to(root).as_posix() if root is not None else "."
        mlflow.log_artifact(str(path), artifact_path=None if folder == "." else folder)


def tracking_uri() -> str:
    return store.tracking_uri()


def shown_uri() -> str:
    """The store's address for messages and logs: its password masked."""
    return store.shown_uri()


def find_runs(experiment: str | None = None, kind: str | None = None, source: str | None = None,
              max_results: int = 1000):
    """Finished runs (newest first) as a pandas frame; empty if none (and no store is created to say so).

    User text never goes into MLflow's filter string: ``kind`` is one of the toolkit's own
    words, and the source (a ticker or file name, compared without case) is matched here.
    """
    import pandas as pd

    if not store.store_exists():
        return pd.DataFrame()
    open_store()
    runs = _search_finished(experiment, kind, max_results if source is None else 50_000)
    if source is not None and not runs.empty:
        runs = runs[runs[f"tags.{TAG_SOURCE}"].str.lower() == source.lower()].head(max_results)
    return runs


def _search_finished(experiment: str | None, kind: str | None, max_results: int, output_format: str = "pandas"):
    """Finished runs of an open store, newest first: a pandas frame, or a list of runs."""
    names = [experiment] if experiment else None
    filters = ["attributes.status = 'FINISHED'"]
    if kind:
        if not kind.replace("-", "").isalpha():
            raise ValueError(f"kind must be a plain word, got {kind!r}")
        filters.append(f"tags.`{TAG_KIND}` = '{kind}'")
    return _mlflow().search_runs(experiment_names=names, search_all_experiments=names is None,
                                 filter_string=" and ".join(filters), order_by=["attributes.start_time DESC"],
                                 max_results=max_results, output_format=output_format)


def latest_fit_run(source: str, run_id: str | None = None, fit_args: str | None = None):
    """The run to predict with: ``run_id`` if given, else the newest finished fit of ``source``.
    ``fit_args``: the data flags of the fit to suggest when there is none (default ``--ticker SOURCE``)."""
    if not store.store_exists():
        raise ForecastError(f"no tracking store at {shown_uri()}: run `forecast fit` first (from this folder)")
    open_store()
    if run_id:
        try:
            return _mlflow().get_run(run_id)
        except Exception:
            raise ForecastError(f"--run-id {run_id!r} not found in the tracking store {shown_uri()}") from None
    runs = _search_finished(None, "fit", 50_000, output_format="list")
    found = next((r for r in runs if r.data.tags.get(TAG_SOURCE, "").lower() == source.lower()), None)
    if found is None:
        raise ForecastError(f"no finished fit of {source!r} in {shown_uri()}; run "
                            f"`forecast fit {fit_args or f'--ticker {source}'}` first")
    return found


def network_path(series: str | None = None) -> str:
    """Where a run keeps its network (a panel's fit: one folder per series)."""
    return f"{NETWORK_DIR}/{series}" if series else NETWORK_DIR


def load_network(run_id: str, allowed_cells: tuple[str, ...] = (), allow_pickle: bool = False,
                 series: str | None = None):
    """The logged network of a run (raw windows in, forecasts out; ``series``: a panel fit's network of that
    series), rebuilt from the toolkit's classes with its weights read as tensors only. Runs logged by older
    versions hold a pickle instead: those load only with ``allow_pickle`` (unpickling runs whatever code the
    store holds)."""
    import tempfile

    mlflow = _mlflow()
    from ..models.saved import load_network as load_saved

    # Downloaded into a folder of our own, removed when loaded (or refused): MLflow's default is a
    # temporary folder that nobody removes. torch.load reads the weights whole, so nothing is needed later.
    with tempfile.TemporaryDirectory(prefix="forecast-network-") as tmp:
        try:
            folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=network_path(series),
                                                         dst_path=tmp)
        except Exception:
            folder = None
        if folder is not None:
            return load_saved(Path(folder), allowed_cells, name=f"run {run_id}")
    if series:
        raise ForecastError(f"run {run_id} has no network of {series}: is it a fit of this panel?")
    if not allow_pickle:
        raise ForecastError(f"run {run_id} has no {NETWORK_DIR}/ weights: it was logged by an older version as a "
                            f"pickle, and unpickling runs code from the tracking store; refit, or pass "
                            f"--allow-pickle if you trust the store")
    import mlflow.pytorch

    try:
        return mlflow.pytorch.load_model(f"runs:/{run_id}/model", map_location="cpu").eval()
    except Exception as err:
        raise ForecastError(f"run {run_id} has no loadable model ({type(err).__name__}); is it a fit run?") from None


def clean(value: Any) -> Any:
    """Strict-JSON-safe value: NaN and +-Infinity -> None, numpy scalars and arrays -> Python, dicts, lists and
    tuples cleaned inside (strict JSON has no token for a number that is not finite)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
