"""Walk-forward folds of a panel: one set of date boundaries for every series.

Each series keeps its own trading days. The panel's calendar is the union of the days its series
forecast; the test period starts on ``--test-start`` (default: three quarters into that calendar) and
is cut into folds of ``--refit-every`` of its days. Fold k of series s forecasts s's days from the
fold's first day to the next fold's, and trains on s's origins whose targets all fall before the
fold's first day (``fold_split``, as one series' folds are made), so every model of every series is
refit strictly before each fold and a global network, trained on all series at once, never sees a
day of any series from the fold on. A series with no day in a fold, or too little history before it
(a shorter series), sits that fold out, with a note.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..config.settings import BacktestSettings
from ..data.windows import MIN_EVAL, MIN_TRAIN, FeatureSeries, forecastable_origins
from ..errors import ForecastError
from .walkforward import Fold, fold_split, short_fold


def panel_calendar(panel: tuple[FeatureSeries, ...], lookback: int, horizon: int) -> pd.DatetimeIndex:
    """Every day some series of the panel forecasts, in order."""
    days = [s.target_dates(forecastable_origins(len(s), lookback, horizon)) for s in panel]
    return pd.DatetimeIndex(np.unique(np.concatenate([d.to_numpy() for d in days])))


def panel_folds(panel: tuple[FeatureSeries, ...], names: list[str], lookback: int, horizon: int,
                settings: BacktestSettings, val_fraction: float = 0.15,
                echo: Callable[[str], None] = print) -> list[list[Fold]]:
    """Each series' folds, numbered alike across the panel (a series may lack some)."""
    calendar = panel_calendar(panel, lookback, horizon)
    if settings.test_start is None:
        first = int(len(calendar) * 0.75)
    else:
        start = pd.Timestamp(settings.test_start)
        if not calendar[0] < start <= calendar[-1]:
            raise ForecastError(f"--test-start {start:%Y-%m-%d} is outside the panel's forecast days "
                                f"({calendar[0]:%Y-%m-%d} to {calendar[-1]:%Y-%m-%d}); pick a date in between")
        first = int(np.searchsorted(calendar, start))
    bounds = list(calendar[first::settings.refit_every]) + [calendar[-1] + pd.Timedelta(days=1)]
    folds = []
    for name, series in zip(names, panel):
        origins = forecastable_origins(len(series), lookback, horizon)
        days = series.target_dates(origins)
        own = []
        for number, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
            start, stop = np.searchsorted(days, begin), np.searchsorted(days, end)
            if stop <= start:
                continue
            split = fold_split(origins, start, stop, horizon, settings, val_fraction)
            if len(split.train) < MIN_TRAIN or len(split.val) < MIN_EVAL:
                echo(f"note: {name}: {short_fold(number, series, split, lookback).split(':')[0]}: it sits this "
                     f"fold out")
                continue
            own.append(Fold(number, split))
        if not own:
            raise ForecastError(f"{name} has no fold it can be trained for (its history is too short before "
                                f"--test-start, or has no day in the test period); drop it or use a later "
                                f"--test-start")
        folds.append(own)
    return folds
