"""How a trial is scored: walk-forward validation folds strictly before the test period.

The series is cut at ``--test-start`` (the sweep never sees a day from there on). Its last
``val_folds * fold_days`` forecast days form the folds; each fold refits the network (and its scaler)
on every day before it, early-stopping on a validation part carved from the end of that training
data, exactly as a backtest fold does (``walkforward.run_unit``). Folds are made once, with the
longest lookback of the search space, so every trial trains on the same days and forecasts the
same days whatever lookback it draws.

A fold's loss is the network's squared error over the naive forecast's on the fold's days (1 - R2
vs naive); a trial reports it per fold (Optuna's intermediate values, for pruning) and is scored by
the pooled ratio over all folds: below 1 the network beats the naive forecast on validation days.
Networks that forecast a distribution (``--distribution``) are scored by their mean negative
log-likelihood per forecast day instead, on the same out-of-sample fold days.

On a panel every series is cut at the same ``--test-start``; the folds are the last ``val_folds *
fold_days`` days of the panel's calendar, each series' folds made as a panel backtest makes them
(``engine.panel``). A trial's value is the mean over the series of each one's pooled loss, so a
quiet series weighs as much as a volatile one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config.settings import BacktestSettings, NetworkSettings, TrainSettings
from ..config.sweep_settings import SearchSpace
from ..data.windows import FeatureSeries, forecastable_origins, make_targets
from ..errors import ForecastError, Interrupted
from ..models import ModelEntry, get_entry
from ..engine.population import population_size
from ..engine.panel import panel_calendar, panel_folds
from ..engine.walkforward import Fold, Unit, make_folds, run_unit
from .space import describe, setup_of, suggest
from .trial_runs import RUN_KEY, WORKER_ATTR, TrialRuns


def loss_name(distribution: str | None) -> str:
    """What a trial's value is."""
    return ("mean negative log-likelihood per forecast" if distribution else
            "squared error / naive's (below 1 beats naive)")


def default_test_start(series: FeatureSeries | tuple) -> str:
    """The last quarter of the data (of a panel's calendar): the day three quarters of the way through."""
    days = panel_calendar(series, 1, 1) if isinstance(series, tuple) else series.dates
    return f"{days[int(len(days) * 0.75)]:%Y-%m-%d}"


def before(series: FeatureSeries, day: str) -> FeatureSeries:
    """The series up to the day before ``day``: what the sweep may see (every per-day field cut)."""
    return series.rows(slice(0, int(np.searchsorted(series.dates, pd.Timestamp(day)))))


def longest_lookback(spaces: dict[str, SearchSpace]) -> int:
    """The longest lookback any model may draw: the folds are made with it."""
    return max(max(space.lookbacks) for space in spaces.values())


def r2_vs_naive(loss: float, distribution: str | None) -> dict[str, float]:
    """A point forecast's loss as R2 against the naive forecast; nothing for a distribution's NLL."""
    return {} if distribution else {"val_r2_vs_naive": 1 - loss}


def validation_folds(series: FeatureSeries, test_start: str, val_folds: int, fold_days: int, lookback: int, horizon: int,
                     val_fraction: float) -> tuple[FeatureSeries, list[Fold]]:
    """The part before ``test_start`` and ``val_folds`` folds of ``fold_days`` days at its end."""
    days = series.dates
    if not days[0] < pd.Timestamp(test_start) <= days[-1]:
        raise ForecastError(f"--test-start {test_start} is outside the data ({days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d})")
    seen = before(series, test_start)
    origins = forecastable_origins(len(seen), lookback, horizon)
    first = len(origins) - val_folds * fold_days
    hint = (f"the sweep's {val_folds} validation folds of {fold_days} days before --test-start {test_start} "
            f"leave too little training data at lookbacks up to {lookback}; use fewer --val-folds, fewer "
            f"--fold-days or a later --test-start")
    if first < 1:
        raise ForecastError(hint)
    settings = BacktestSettings(test_start=f"{seen.target_dates(origins[first:first + 1])[0]:%Y-%m-%d}",
                                refit_every=fold_days)
    try:
        folds = make_folds(seen, lookback, horizon, settings, val_fraction)
    except ForecastError:
        raise ForecastError(hint) from None
    return seen, folds


def panel_validation_folds(panel: tuple, names: list[str], test_start: str, val_folds: int, fold_days: int,
                           lookback: int, horizon: int, val_fraction: float) -> tuple[tuple, list[Fold], tuple]:
    """A panel's ``validation_folds``: each series before ``test_start``, and the folds of the last ``val_folds *
    fold_days`` days of the panel's calendar, flattened, with each fold's series (its index)."""
    calendar = panel_calendar(panel, lookback, horizon)
    if not calendar[0] < pd.Timestamp(test_start) <= calendar[-1]:
        raise ForecastError(f"--test-start {test_start} is outside the panel's forecast days ({calendar[0]:%Y-%m-%d} "
                            f"to {calendar[-1]:%Y-%m-%d})")
    seen = tuple(before(s, test_start) for s in panel)
    days = panel_calendar(seen, lookback, horizon)
    first = len(days) - val_folds * fold_days
    if first < 1:
        raise ForecastError(f"the sweep's {val_folds} validation folds of {fold_days} days before --test-start "
                            f"{test_start} leave too little training data; use fewer --val-folds, fewer --fold-days "
                            f"or a later --test-start")
    settings = BacktestSettings(test_start=f"{days[first]:%Y-%m-%d}", refit_every=fold_days)
    by_series = panel_folds(seen, names, lookback, horizon, settings, val_fraction, echo=lambda _: None)
    pairs = [(f, i) for i, own in enumerate(by_series) for f in own]
    return seen, [f for f, _ in pairs], tuple(i for _, i in pairs)


def trial_value(losses: list[tuple[float, float]], where: tuple[int, ...] = ()) -> float:
    """A trial's value from its folds' ``(sum, weight)`` losses: pooled over the folds; on a panel (``where``: each
    fold's series) pooled over each series' folds, then averaged over the series."""
    by_series: dict[int, list[float]] = {}
    for (total, weight), i in zip(losses, where or (0,) * len(losses)):
        pair = by_series.setdefault(i, [0.0, 0.0])
        pair[0], pair[1] = pair[0] + total, pair[1] + weight
    return float(np.mean([total / weight for total, weight in by_series.values()]))


@dataclass
class Evaluation:
    """What scoring a trial needs (sent to every worker): the seen data, the folds, the fixed settings.
    ``series`` is the one series, or a panel's tuple of them with ``where`` naming each fold's series."""

    series: FeatureSeries | tuple
    folds: list[Fold]
    horizon: int
    network: NetworkSettings
    train: TrainSettings
    spaces: dict[str, SearchSpace]      # model name -> its search space
    where: tuple[int, ...] = ()         # a panel: each fold's series (an index into ``series``)

    def __post_init__(self) -> None:
        naive = get_entry("naive")
        results = [run_unit(Unit(naive, (f,), False, series=self.where[k:k + 1]), self.series, self.network,
                            self.train, self.lookback, self.horizon)[0] for k, f in enumerate(self.folds)]
        self.naive_sse = [self._sse(k, r.forecasts) for k, r in enumerate(results)]

    @property
    def lookback(self) -> int:
        return longest_lookback(self.spaces)

    def target(self, k: int) -> np.ndarray:
        """Fold ``k``'s outcomes ``[N, H]``."""
        series = self.series[self.where[k]] if self.where else self.series
        return make_targets(series.target, self.folds[k].split.test, self.horizon)

    def _sse(self, k: int, forecasts: np.ndarray) -> float:
        return float(((forecasts - self.target(k)) ** 2).sum())

    def loss(self, k: int, result) -> tuple[float, float]:
        """Fold ``k``'s loss as ``(sum, weight)``: the squared error and naive's, or the NLL summed over
        forecasts and their number. Pooled over folds: ``sum of sums / sum of weights`` (``value``)."""
        if not self.network.distribution:
            return self._sse(k, result.forecasts), self.naive_sse[k]
        y = self.target(k)
        nll = np.stack([result.distribution.nll(y[:, h], h + 1) for h in range(self.horizon)])
        return float(nll.sum()), float(nll.size)

    def value(self, losses: list[tuple[float, float]]) -> float:
        return trial_value(losses, self.where)

    def step(self, k: int) -> int:
        """Fold ``k``'s step for pruning: its number (on a panel, where numbers repeat across series: ``k``)."""
        return k if self.where else self.folds[k].number


class Objective:
    """One trial of one model: sample, refit and score fold after fold, report, prune; tracked as it goes."""

    def __init__(self, entry: ModelEntry, study: str, evaluation: Evaluation, runs: TrialRuns | None,
                 identity: dict[str, str]):
        self.entry, self.study, self.evaluation, self.runs, self.identity = entry, study, evaluation, runs, identity
        self.trial_id: int | None = None
        self.setup = None

    def __call__(self, trial) -> float:
        import optuna

        ev = self.evaluation
        self.trial_id = trial._trial_id
        # First, before sampling (which may take a while): a stopped command finds its trials by it.
        trial.set_user_attr(WORKER_ATTR, self.identity)
        params = suggest(trial, ev.spaces[self.entry.name])
        setup = self.setup = setup_of(params, ev.network, ev.train)
        run_id = None
        if self.runs is not None:
            run_id = self.runs.start(self.entry.name, self.study, trial, params | {"dropout_used": setup.network.dropout})
            trial.set_user_attr(WORKER_ATTR, {**self.identity, RUN_KEY: run_id})
        started, fit_seconds, losses = time.perf_counter(), 0.0, []
        try:
            for k, (fold, result) in enumerate(zip(ev.folds, self.fold_results(setup))):
                fold_total, fold_weight = ev.loss(k, result)
                if not np.isfinite(fold_total):
                    raise ForecastError(f"fold {fold.number}: the forecasts are not numbers")
                losses.append((fold_total, fold_weight))
                fit_seconds += result.seconds
                loss = fold_total / fold_weight
                trial.report(loss, ev.step(k))
                if run_id:
                    self.runs.log(run_id, {"fold_val_loss": loss, "fold_epochs": result.epochs,
                                           "fold_fit_seconds": result.seconds}, step=ev.step(k))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {fold.number} (val loss {loss:.4f})")
            value = ev.value(losses)
            trial.set_user_attr("fit_seconds", fit_seconds)
            r2 = r2_vs_naive(value, ev.network.distribution)
            self._end(run_id, "FINISHED", "COMPLETE", {"val_loss": value, **r2, "fit_seconds": fit_seconds,
                                                       "trial_seconds": time.perf_counter() - started})
            return value
        except optuna.TrialPruned:
            trial.set_user_attr("fit_seconds", fit_seconds)
            self._end(run_id, "FINISHED", "PRUNED", {"fit_seconds": fit_seconds})
            raise
        except Exception as err:   # one failing trial (NaN loss, out of memory) fails; the study goes on
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            trial.set_user_attr("error", f"{type(err).__name__}: {message}"[:500])
            self._end(run_id, "FAILED", "FAIL", {}, error=message)
            raise
        except (KeyboardInterrupt, Interrupted):
            self._end(run_id, "KILLED", "INTERRUPTED", {}, error="interrupted")
            raise

    def fold_results(self, setup):
        """Each validation fold's result, in order: the folds trained as one population where that pays (pruning
        then judges them after the last), else fold after fold (a pruned trial trains no further fold)."""
        ev = self.evaluation
        size = population_size(self.entry, setup.network, setup.train)
        if size > 1 or ev.where:      # a panel: one unit (a global network trains each fold on every series)
            results = run_unit(Unit(self.entry, tuple(ev.folds), False, population=size, series=ev.where), ev.series,
                               setup.network, setup.train, setup.lookback, ev.horizon)
            by_fold = {(r.series, r.fold): r for r in results}
            yield from (by_fold[i, fold.number] for fold, i in zip(ev.folds, ev.where or (0,) * len(ev.folds)))
            return
        for fold in ev.folds:
            yield run_unit(Unit(self.entry, (fold,), False), ev.series, setup.network, setup.train, setup.lookback,
                           ev.horizon)[0]

    def _end(self, run_id: str | None, status: str, state: str, metrics: dict, error: str | None = None) -> None:
        if not run_id:
            return
        try:
            self.runs.end(run_id, status, metrics, {"optuna.state": state, **({"error": error[:500]} if error else {})})
        except Exception:   # tracking trouble must not turn a scored trial into a failed one
            pass

    def summary(self) -> str:
        return describe(self.setup) if self.setup is not None else ""
