"""Covariates: other series as inputs of every window, aligned to the target's trading days without look-ahead.

A covariate is a ticker (downloaded, cached or bundled as ``--ticker`` is) or a CSV, with a transform
after a colon: ``return`` (the default: log returns of its close, for prices), ``diff`` (changes,
for rates) or ``level`` (the value itself, for an index such as the VIX). The transform is taken
on the covariate's own days.

The alignment rule, one for every covariate: on each trading day ``d`` of the target, a covariate
enters as the last value it had on or before ``d`` and as that value's age, ``log(1 + calendar days
since it was observed)``. A forecast for the day after ``d`` reads rows up to ``d`` only, so it uses
values dated strictly before the day it forecasts. A day on which the covariate has no value (its
exchange was closed) repeats its last value with a larger age; a day on which the target does not
trade is not a row at all. The target's rows start where every covariate has a value. Covariates are
scaled with the target's features, on training rows only, and never forecast.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import ForecastError
from .covariate_spec import Covariate
from .history import PriceHistory
from .windows import MIN_EVAL, MIN_TRAIN, FeatureSeries

def covariate_values(cov: Covariate, history: PriceHistory) -> pd.Series:
    """The transformed series on the covariate's own days (a return or a change needs the day before)."""
    close = history.frame["adj_close"]
    if cov.transform == "return":
        return np.log(close).diff().iloc[1:]
    if cov.transform == "diff":
        return close.diff().iloc[1:]
    return close


def align(dates: pd.DatetimeIndex, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(value, age)`` on each of ``dates``: the last value dated on or before the day and log(1 + its age in
    calendar days); NaN before the covariate's first value."""
    observed = values.index.to_numpy().astype("datetime64[D]")
    days = dates.to_numpy().astype("datetime64[D]")
    last = np.searchsorted(observed, days, side="right") - 1                    # its latest day <= each date
    known = last >= 0
    value = np.full(len(days), np.nan)
    age = np.full(len(days), np.nan)
    value[known] = values.to_numpy(dtype=np.float64)[last[known]]
    age[known] = np.log1p((days[known] - observed[last[known]]).astype(np.int64))
    return value, age


def with_covariates(series: FeatureSeries, name: str, covariates: list[tuple[Covariate, pd.Series]], lookback: int,
                    horizon: int) -> FeatureSeries:
    """``series`` from the first day on which every covariate has a value, with two feature columns a covariate
    (``<name>:<transform>`` and ``<name>:age``); a one-line error naming the covariate whose start leaves too
    little history, or that shares no days with the target."""
    if not covariates:
        return series
    starts = []
    for cov, values in covariates:
        if values.empty:
            raise ForecastError(f"covariate {cov.name} has no values; drop it")
        if values.index[0] > series.dates[-1] or values.index[-1] < series.dates[0]:
            raise ForecastError(f"covariate {cov.name} ({values.index[0]:%Y-%m-%d} to {values.index[-1]:%Y-%m-%d}) "
                                f"shares no days with {name} ({series.dates[0]:%Y-%m-%d} to "
                                f"{series.dates[-1]:%Y-%m-%d}); drop it, or use data that overlaps")
        starts.append((values.index[0], cov))
    start, latest = max(starts, key=lambda pair: pair[0])
    keep = np.asarray(series.dates >= start)
    need = lookback + horizon + MIN_TRAIN + 2 * MIN_EVAL
    if keep.sum() < need:
        raise ForecastError(f"covariate {latest.name} starts on {start:%Y-%m-%d}, leaving {int(keep.sum())} days of "
                            f"{name} with every covariate; at least {need} are needed for --lookback {lookback}: drop "
                            f"it, or use a covariate with a longer common history")
    series = series.rows(keep)
    columns, names = [series.features], list(series.feature_names)
    for cov, values in covariates:
        value, age = align(series.dates, values)
        columns.append(np.column_stack([value, age]))
        names += [f"{cov.name}:{cov.transform}", f"{cov.name}:age"]
    return replace(series, features=np.column_stack(columns).astype(np.float64), feature_names=tuple(names))
