"""The history a command's data settings name, and its features and target (and its covariates).

Takes a ``DataSettings`` (``forecast.config``) by its fields, so that this layer needs
nothing from the layers above it.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from ..errors import ForecastError
from .covariate_spec import PANEL, Covariate
from .covariates import covariate_values, with_covariates
from .history import PriceHistory
from .ingest import load_csv, load_ticker
from .synthetic import simulate
from .windows import FeatureSeries, build_series


def load_history(settings) -> PriceHistory:
    """A CSV, a simulation, or a ticker (download -> cache -> bundled), as ``settings`` say."""
    if settings.csv:
        return load_csv(settings.csv.strip(" ,"), settings.date_format)
    if settings.synthetic:
        return simulate(settings.synthetic, settings.synthetic_length, settings.synthetic_noise,
                        settings.synthetic_seed, settings.synthetic_lag)
    return load_ticker((settings.tickers or [settings.ticker])[0], settings.cache_dir, settings.offline)


def load_data(settings, echo: Callable[[str], None] = print) -> tuple[PriceHistory, FeatureSeries]:
    """Load, say where the data came from, and build features and target (with the covariates as features)."""
    if settings.panel:
        flag = "--tickers" if settings.tickers else "--synthetic panel" if settings.synthetic else "--csv"
        raise ForecastError(f"{flag} names a panel of several series: "
                            f"`fit`, `backtest`, `sweep` and `predict` take panels; this command takes one series")
    if settings.panel_covariates:
        raise ForecastError("--covariates panel means every other series of a panel; give a panel (--tickers)")
    history = load_history(settings)
    echo(f"data: {history.describe()}")
    covariates, notes = load_covariates(settings, echo)
    series = covariate_series(history, covariates, settings, echo)
    for note in history.notes + notes:
        echo(f"note: {note}")
    return history, series


def load_covariates(settings, echo: Callable[[str], None]) -> tuple[list[tuple[Covariate, pd.Series]], list[str]]:
    """The covariates ``settings`` name (tickers, then files; not ``panel``) as ``(covariate, transformed
    values)``, and their notes."""
    covariates, notes = [], []
    for text in settings.covariates:
        if text == PANEL:
            continue
        cov = Covariate.parse(text)
        covariates.append((cov, load_ticker(cov.source, settings.cache_dir, settings.offline)))
    for text in settings.covariate_csv:
        cov = Covariate.parse(text, csv=True)
        covariates.append((cov, load_csv(cov.source, settings.date_format)))
    for cov, source in covariates:
        echo(f"covariate: {source.describe()} ({cov.transform})")
        notes += source.notes
    return [(cov, covariate_values(cov, source)) for cov, source in covariates], notes


def covariate_series(history: PriceHistory, covariates: list, settings, echo: Callable[[str], None]) -> FeatureSeries:
    """``history``'s features and target, with ``covariates`` as inputs (from the day every one has a value)."""
    series = with_covariates(build_series(history, settings.target, settings.features), history.name, covariates,
                             settings.lookback, settings.horizon)
    if covariates:
        echo(f"{history.name} with covariates: {len(series):,} days from {series.dates[0]:%Y-%m-%d} (every "
             f"covariate has a value from then on)")
    return series
