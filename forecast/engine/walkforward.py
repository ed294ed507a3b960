"""Walk-forward folds: refit every model (and its scaler) on data strictly before each fold.

A fold is a block of ``refit_every`` consecutive forecast days. Its training origins
are those whose targets all fall before the fold's first target day (``purged``), all
of them (expanding) or the last ``train_length`` (rolling); its validation part is
carved from the end of that training data. Every day of the fold is forecast in one
batched pass. Work units (a model on a fold; or, with warm starts, a network across
all folds in order) run in worker processes; each is seeded the same way whatever
the number of workers, so results do not depend on ``--jobs``.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from ..config.settings import BacktestSettings, NetworkSettings, TrainSettings
from ..data.windows import (MIN_EVAL, MIN_TRAIN, FeatureSeries, Split, carve_validation, forecastable_origins, purged,
                            shared_layout)
from ..stats.distributions import Distribution
from ..errors import ForecastError
from .forecasters import FitContext, SeedEnsemble, make_forecaster
from .global_networks import make_global
from .population import fit_forecasters, population_size
from ..models import ModelEntry
from .epochs import Direct, drain, process_channel, ray_channel, tagged
from .workers import cap_jobs, pool_context, worker_pool


@dataclass(frozen=True)
class Fold:
    number: int            # 1-based in a backtest; 0 for the single split of `fit`
    split: Split           # train / val origins before the fold; test = the fold's origins


def first_test_origin(series: FeatureSeries, origins: np.ndarray, test_start: str | None) -> int:
    """Index into ``origins`` of the first origin whose forecast day is on or after ``test_start``."""
    if test_start is None:
        return int(len(origins) * 0.75)
    days = series.target_dates(origins)
    start = pd.Timestamp(test_start)
    if start <= days[0] or start > days[-1]:
        raise ForecastError(f"--test-start {start:%Y-%m-%d} is outside the forecastable days of the data "
                            f"({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}); pick a date in between")
    return int(np.searchsorted(days, start))


def make_folds(series: FeatureSeries, lookback: int, horizon: int, settings: BacktestSettings,
               val_fraction: float = 0.15) -> list[Fold]:
    origins = forecastable_origins(len(series), lookback, horizon)
    if len(origins) < MIN_TRAIN + 2 * MIN_EVAL:     # not even one fold: say which setting eats the days
        too_long = "--horizon" if horizon > lookback else "--lookback"
        raise ForecastError(f"{too_long} {horizon if too_long == '--horizon' else lookback} is too long for this "
                            f"data: {len(series)} days give {max(len(origins), 0)} windows of --lookback {lookback} "
                            f"and --horizon {horizon}; use a shorter {too_long}")
    first = first_test_origin(series, origins, settings.test_start)
    folds = []
    for number, start in enumerate(range(first, len(origins), settings.refit_every), 1):
        split = fold_split(origins, start, start + settings.refit_every, horizon, settings, val_fraction)
        if len(split.train) < MIN_TRAIN or len(split.val) < MIN_EVAL:
            raise ForecastError(short_fold(number, series, split, lookback))
        folds.append(Fold(number, split))
    return folds


def fold_split(origins: np.ndarray, start: int, stop: int, horizon: int, settings: BacktestSettings,
               val_fraction: float) -> Split:
    """The fold whose test part is ``origins[start:stop]``: trained on the origins whose targets all fall before
    it (all of them, or the last ``train_length`` with a rolling window), validated on the last of those."""
    test = origins[start:stop]
    before = purged(origins[:start], test[0], horizon)
    if settings.window == "rolling":
        before = before[-settings.train_length:]
    train, val = carve_validation(before, min(len(before), max(MIN_EVAL, int(round(len(before) * val_fraction)))),
                                  horizon)
    return Split(train, val, test)


def short_fold(number: int, series: FeatureSeries, split: Split, lookback: int) -> str:
    """Why a fold cannot be trained: too few training or validation windows."""
    day = series.target_dates(split.test[:1])[0]
    return (f"fold {number} (from {day:%Y-%m-%d}) has only {len(split.train)} training and {len(split.val)} "
            f"validation windows of --lookback {lookback}: too short; use a later --test-start, a shorter --lookback "
            f"or a longer --train-length")


@dataclass(frozen=True)
class ModelSetup:
    """A network's own settings (a sweep's best, say), instead of the ones every model shares. Folds are made
    with the longest lookback in play, so every model trains on the same days and forecasts the same days."""

    network: NetworkSettings
    train: TrainSettings
    lookback: int


@dataclass(frozen=True)
class Unit:
    """A piece of work for one process: one model over one fold, or over several folds (in order with warm
    starts; as members of populations of at most ``population`` networks otherwise)."""

    entry: ModelEntry
    folds: tuple[Fold, ...]
    warm_start: bool
    setup: ModelSetup | None = None    # None: the settings shared by all models
    population: int = 1                # networks trained as one (folds x seeds x restarts); 1: one at a time
    series: tuple[int, ...] = ()       # a panel: each fold's series (an index into it); (): the one series

    def data(self, series) -> list[FeatureSeries]:
        """Each fold's series: ``series`` is the one series, or the panel's tuple of them."""
        return [series[i] for i in self.series] if self.series else [series] * len(self.folds)


@dataclass
class UnitResult:
    model: str
    fold: int
    forecasts: np.ndarray   # [N, H]
    seconds: float
    epochs: int
    history: list
    by_seed: dict[int, np.ndarray] | None = None   # seed ensembles: each seed's forecasts [N, H]
    distribution: Distribution | None = None       # distribution forecasts: their mean is ``forecasts``
    fitted: object = None                          # the fitted forecaster, when asked for (``fit`` logs it)
    series: int = 0                                # a panel: the series (its index) forecast


def run_unit(unit: Unit, series: FeatureSeries | tuple, network: NetworkSettings, train: TrainSettings, lookback: int,
             horizon: int, channel=None) -> list[UnitResult]:
    """``fit_unit`` on one torch thread, as every unit of a backtest runs (in this process or a worker): a CPU
    kernel's summation order depends on its thread count, and results must not depend on --jobs. Cores are
    used by running units side by side (--jobs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if unit.setup is not None:
        network, train, lookback = unit.setup.network, unit.setup.train, unit.setup.lookback
    first = unit.data(series)[0]
    try:
        return fit_unit(unit, series, network, train, FitContext(first.feature_names, first.target_name, lookback,
                                                                 horizon), channel=channel)
    finally:
        torch.set_num_threads(threads)
        flush = getattr(channel, "flush", None)       # a Ray channel: the unit's rows in the queue before it returns
        if flush is not None:
            flush()


def fit_unit(unit: Unit, series: FeatureSeries | tuple, network: NetworkSettings, train: TrainSettings,
             ctx: FitContext, progress: bool = False, on_epoch=None, keep_model: bool = False,
             channel=None) -> list[UnitResult]:
    """The one path from a model to its forecasts, for a backtest's folds (a panel's too: each fold on its own
    series) and for ``fit`` (one fold): refit on each fold's training part, forecast its test part in one pass
    (a distribution's mean where there is one, each seed's forecasts for a seed ensemble), chain the weights
    from fold to fold with warm starts. In a population unit every network of every fold (seeds, restarts)
    trains as one; warm-started folds are chained, so only a fold's seeds train together. ``on_epoch``: each
    epoch's losses (``fit``); ``channel``: where they go tagged with model, fold and series (``epochs``)."""
    data = unit.data(series)
    where = unit.series or (0,) * len(unit.folds)
    if unit.entry.scope == "global" and unit.series:
        laid = shared_layout(list(series))          # one input layout for every series the network reads
        return fit_global_unit(unit, [laid[i] for i in unit.series], where, len(series), network, train, ctx,
                               progress, keep_model, channel)

    def forecaster(fold: Fold, own: FeatureSeries, i: int, state=None):
        context = replace(ctx, fold=fold.number, feature_names=own.feature_names)
        hook = tagged(channel, model=unit.entry.name, fold=fold.number, series=i) if channel is not None else on_epoch
        return make_forecaster(unit.entry, network, train, context, init_state=state, progress=progress,
                               on_epoch=hook)

    if unit.population > 1 and not unit.warm_start:
        start = time.perf_counter()
        models = [forecaster(fold, own, i) for fold, own, i in zip(unit.folds, data, where)]
        fit_forecasters([(m, own, fold.split) for m, fold, own in zip(models, unit.folds, data)], unit.population,
                        train, progress)
        seconds = (time.perf_counter() - start) / len(unit.folds)
        return [unit_result(unit, fold, model, own, seconds, keep_model, i)
                for fold, model, own, i in zip(unit.folds, models, data, where)]
    results, state = [], None
    for fold, own, i in zip(unit.folds, data, where):
        start = time.perf_counter()
        model = forecaster(fold, own, i, state)
        fit_forecasters([(model, own, fold.split)], unit.population, train, progress)
        if unit.warm_start and unit.entry.kind == "network":
            state = model.state()
        results.append(unit_result(unit, fold, model, own, time.perf_counter() - start, keep_model, i))
    return results


def fit_global_unit(unit: Unit, data: list, where: tuple, n_series: int, network: NetworkSettings,
                    train: TrainSettings, ctx: FitContext, progress: bool, keep_model: bool,
                    channel=None) -> list[UnitResult]:
    """A global network's folds of a panel: per fold number one network (per seed) on every series' split of
    that fold, all of them members of populations; then each series' forecasts of each fold."""
    start = time.perf_counter()
    numbers = list(dict.fromkeys(fold.number for fold in unit.folds))
    models = {}
    for number in numbers:
        sources = [(own, fold.split, i) for fold, own, i in zip(unit.folds, data, where) if fold.number == number]
        context = replace(ctx, fold=number, feature_names=sources[0][0].feature_names)
        models[number] = make_global(unit.entry, network, train, context, sources,
                                     n_series if network.series_embedding else 0, progress,
                                     tagged(channel, model=unit.entry.name, fold=number, series=None))
    first = [(m.members[0] if isinstance(m, SeedEnsemble) else m).sources[0] for m in models.values()]
    fit_forecasters([(m, own, split) for m, (own, split, _) in zip(models.values(), first)], unit.population, train,
                    progress)
    seconds = (time.perf_counter() - start) / len(unit.folds)
    return [unit_result(unit, fold, models[fold.number], own, seconds, keep_model, i)
            for fold, own, i in zip(unit.folds, data, where)]


def unit_result(unit: Unit, fold: Fold, model, series: FeatureSeries, seconds: float, keep_model: bool,
                where: int = 0) -> UnitResult:
    """A fitted model's forecasts of ``fold``'s test part (each seed's too for a seed ensemble)."""
    distribution, by_seed = model.predict_distribution(series, fold.split.test), None
    if isinstance(model, SeedEnsemble):
        members = model.member_predictions(series, fold.split.test)
        by_seed, forecasts = dict(zip(model.seeds, members)), members.mean(axis=0)
    elif distribution is None:
        forecasts = model.predict(series, fold.split.test)
    if distribution is not None:
        forecasts = distribution.mean           # the point forecast is the distribution's mean, exactly
    return UnitResult(unit.entry.name, fold.number, forecasts, seconds, len(model.history_), model.history_, by_seed,
                      distribution, model if keep_model else None, where)


def plan_units(entries: list[ModelEntry], folds: list, warm_start: bool, network: NetworkSettings,
               train: TrainSettings, setups: dict[str, ModelSetup] | None = None, panel: bool = False) -> list[Unit]:
    """Networks with warm starts chain their folds; a network trained as populations (``population_size``)
    groups its folds so that each unit holds at most that many networks (folds x seeds); everything else is
    one unit per fold. ``folds``: the one series' folds, or with ``panel`` each series' list of folds (a unit
    then names each fold's series: a panel's networks are members of one population). ``setups``: a
    network's own settings by model name (the others use the shared ones). The grouping follows from the work
    and the settings alone, never from the number of workers."""
    by_series = folds if panel else [folds]
    units = []
    for entry in entries:
        setup = (setups or {}).get(entry.name) if entry.kind == "network" else None
        own = setup.train if setup else train
        size = population_size(entry, setup.network if setup else network, own)

        def unit(chosen: list, warm: bool, population: int) -> Unit:
            return Unit(entry, tuple(f for _, f in chosen), warm, setup, population,
                        tuple(i for i, _ in chosen) if panel else ())

        latest = [(i, f) for i, series_folds in enumerate(by_series) for f in series_folds[::-1]]
        if panel and entry.scope == "global":      # one network a fold number, for all series: members of one unit
            numbers = sorted({f.number for _, f in latest}, reverse=True)
            per_unit = max(1, size // len(own.seed_list))
            units += [unit([m for m in latest if m[1].number in numbers[k:k + per_unit]], False, size)
                      for k in range(0, len(numbers), per_unit)]
        elif warm_start and entry.kind == "network":
            units += [unit([(i, f) for f in series_folds], True, size) for i, series_folds in enumerate(by_series)]
        elif size > 1:
            per_unit = max(1, size // len(own.seed_list))
            units += [unit(latest[k:k + per_unit], False, size) for k in range(0, len(latest), per_unit)]
        else:
            units += [unit([member], False, 1) for member in latest]
    # Slow units first, so the pool does not end waiting on one long network fold: networks before the
    # rest, and of those the latest folds first (an expanding window trains them on the most data).
    return sorted(units, key=lambda u: (u.entry.kind != "network", -len(u.folds), -max(f.number for f in u.folds)))


def run_units(units: list[Unit], series: FeatureSeries | tuple, network: NetworkSettings, train: TrainSettings,
              lookback: int, horizon: int, jobs: int, echo: Callable[[str], None] = print,
              names: list[str] | None = None, cluster=None, on_epochs=None) -> list[UnitResult]:
    """Run every unit, in this process (``jobs == 1``), in ``jobs`` worker processes, or as Ray tasks on
    ``cluster`` (a ``cluster.RaySession``: the series and settings sent once). ``series``: the one series, or a
    panel's tuple of them (``names``: theirs, for the progress lines). Every way gives the same results.
    ``on_epochs``: called with the epoch rows of the units still training, as they come (``epochs``)."""
    args = (series, network, train, lookback, horizon)
    results: list[UnitResult] = []
    progress = Progress(sum(len(u.folds) for u in units), echo)

    def report(batch: list[UnitResult]) -> None:
        for r in batch:
            extra = f", {r.epochs} epochs" if r.epochs else ""
            where = f"{names[r.series]:<8} " if names else ""
            progress.step(f"{where}{r.model:<8} fold {r.fold}: {r.seconds:.1f}s{extra}")
        results.extend(batch)

    if cluster is not None:
        from .cluster import run_tasks, task_gpus

        with ray_channel(on_epochs) as channel:
            waiting = (lambda: drain(channel, on_epochs)) if channel is not None else None
            for _, batch in run_tasks(run_unit, units, (*args, channel), lambda u: describe_unit(u, names),
                                      gpus=task_gpus(train.accelerator), on_wait=waiting):
                report(batch)
        return results
    jobs, note = cap_jobs(jobs, len(units))
    if note:
        echo(f"note: {note}")
    if jobs == 1:
        channel = Direct(on_epochs) if on_epochs is not None else None
        for unit in units:
            report(run_unit(unit, *args, channel))
        return results
    context = pool_context(train.accelerator)
    with process_channel(context, on_epochs) as channel, worker_pool(jobs, context) as pool:
        pending = {pool.submit(run_unit, unit, *args, channel) for unit in units}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if channel is not None:
                drain(channel, on_epochs)
            for future in done:
                report(future.result())
    return results


def describe_unit(unit: Unit, names: list[str] | None = None) -> str:
    """A unit for people: its model, folds and (on a panel) series."""
    folds = ",".join(str(f.number) for f in unit.folds)
    where = sorted({names[i] for i in unit.series}) if names and unit.series else []
    return f"{unit.entry.name} fold{'s' if len(unit.folds) > 1 else ''} {folds}" + (f" of {', '.join(where)}"
                                                                                     if where else "")


class Progress:
    """``[done/total] line, about T left``: the time left from the pace so far."""

    def __init__(self, total: int, echo: Callable[[str], None]):
        self.total, self.done, self.echo, self.started = total, 0, echo, time.perf_counter()

    def step(self, line: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        eta = f"  (about {_duration(left)} left)" if self.done < self.total else ""
        self.echo(f"  [{self.done}/{self.total}] {line}{eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
