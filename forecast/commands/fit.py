"""``forecast fit``: train one model on a time-ordered split and score it next to the naive forecast.

A fit is a walk-forward with one fold (fold 0: train, validation, test in time order): the same
unit, the same scoring and the same run record as a backtest, plus what only a fit has: the
forecasts figure of the test period, the logged model, and its ``test_*`` metrics.
"""

from __future__ import annotations

import time

import numpy as np

from ..config.settings import FitConfig
from ..console import Echo
from ..data.load import load_data
from ..data.panels import is_panel
from ..data.windows import make_inputs, time_split
from ..evaluate.distribution_scores import REFERENCE_DISTRIBUTION
from ..evaluate.scores import NAIVE
from ..models import get_entry
from ..models.custom import check_custom_cells
from ..report.figures import plot_forecasts
from ..report.tables import text_table
from ..tracking import runs as tracking
from ..tracking.record import RunRecord, data_tags
from .fit_common import (DISTRIBUTION_COLUMNS, TABLE_COLUMNS, FitResult, checked_entry, epochs_trained,
                         restarts_used, score_fit)


def fit(cfg: FitConfig, echo: Echo = print, progress: bool = True) -> FitResult:
    """Train one model on the train part, pick its epoch on validation, score it on the test part."""
    d = cfg.data
    if is_panel(d):
        from .panel_fit import panel_fit

        return panel_fit(cfg, echo, progress)
    entry = checked_entry(cfg)
    history, series = load_data(d, echo)
    split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
    _say_split(series, split, echo)
    from ..engine.forecasters import FitContext   # torch: only once the input is good
    from ..engine.walkforward import Fold

    check_custom_cells([entry], len(series.feature_names), cfg.network, d.lookback)
    ctx, fold = FitContext(series.feature_names, d.target, d.lookback, d.horizon), Fold(0, split)
    record = RunRecord.for_settings(cfg, "fit", d.source_name, f"fit-{entry.name}", (d.source_name, entry.name), echo)
    with record:
        record.tags(data_tags(history, series) | {"model": entry.name})
        results = _train(cfg, entry, series, ctx, fold, record, progress, echo)
        frame, metrics, verdicts = score_fit(series, fold, results, cfg)
        _write(record, cfg, entry.name, frame, metrics, results[0].fitted, series)
        _print(echo, metrics, verdicts, len(split.test), d.target)
    return FitResult(metrics, frame, record.out, record.run_id, results[0].fitted.history_, results[0].fitted)


def _say_split(series, split, echo: Echo) -> None:
    dates = series.target_dates
    echo(f"split: train {len(split.train)} windows to {dates(split.train)[-1]:%Y-%m-%d}, validation "
         f"{len(split.val)} to {dates(split.val)[-1]:%Y-%m-%d}, test {len(split.test)} from "
         f"{dates(split.test)[0]:%Y-%m-%d} to {dates(split.test)[-1]:%Y-%m-%d}")


def _train(cfg: FitConfig, entry, series, ctx, fold, record: RunRecord, progress: bool, echo: Echo) -> list:
    """The model on fold 0 (its losses logged as they come), then its references: naive, and for a
    distribution the reference distribution. Results in that order."""
    from ..engine.population import population_size
    from ..engine.walkforward import Unit, fit_unit

    seeds = cfg.train.seed_list
    started = time.perf_counter()
    unit = Unit(entry, (fold,), False, population=population_size(entry, cfg.network, cfg.train))
    [main] = fit_unit(unit, series, cfg.network, cfg.train, ctx, progress=progress,
                      on_epoch=record.epoch_logger(per_seed=len(seeds) > 1), keep_model=True)
    seconds = time.perf_counter() - started
    echo(f"trained {entry.name}{f' ({len(seeds)} seeds)' if len(seeds) > 1 else ''} in {seconds:.1f}s"
         f"{epochs_trained(main.fitted)}")
    record.metrics({"train_seconds": seconds, "restarts_used": restarts_used(main.fitted)})
    references = [NAIVE] + ([REFERENCE_DISTRIBUTION] if main.distribution is not None else [])
    return [main] + [fit_unit(Unit(get_entry(name), (fold,), False), series, cfg.network, cfg.train, ctx)[0]
                     for name in references if name != entry.name]


def _write(record: RunRecord, cfg: FitConfig, model: str, frame, metrics: dict, forecaster, series) -> None:
    d = cfg.data
    for name, values in metrics.items():
        prefix = "test_" if name == model else f"{name}_test_"
        record.metrics({prefix + k: v for k, v in values.items() if not isinstance(v, (dict, str))})
    record.csv("predictions.csv", frame)
    record.json("metrics.json", {m: {k: tracking.clean(v) for k, v in vals.items()} for m, vals in metrics.items()})
    record.config(cfg)
    record.figure("forecasts.png", plot_forecasts, frame, title=f"{d.source_name}: {d.target} forecasts on the test period")
    if record.run_id and hasattr(forecaster, "network_"):
        example = make_inputs(series.features, np.array([len(series) - 1]), d.lookback)
        tracking.log_model(forecaster.network_, example, d.lookback, list(series.feature_names), d.target)


def _print(echo: Echo, metrics: dict, verdicts: dict, days: int, target: str) -> None:
    echo(f"\ntest metrics ({days} days, {target} target):")
    echo(text_table([{"model": m, **vals} for m, vals in metrics.items()],
                    TABLE_COLUMNS + (["qlike"] if target == "volatility" else [])))
    if verdicts:
        echo(f"\ndistribution forecasts ({days} days; coverage accepted when Kupiec and "
             f"Christoffersen p >= 0.05):")
        echo(text_table([{"model": m, **vals} for m, vals in verdicts.items()], DISTRIBUTION_COLUMNS))
