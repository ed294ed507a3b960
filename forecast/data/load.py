"""The history a command's data settings name, and its features and target (and its covariates).

Takes a ``DataSettings`` (``forecast.config``) by its fields, so that this layer needs
nothing from the layers above it.
"""

from __future__ import annotations

from typing import Callable

from .covariate_spec import Covariate
from .covariates import covariate_values, with_covariates
from .history import PriceHistory
from .ingest import load_csv, load_ticker
from .synthetic import simulate
from .windows import FeatureSeries, build_series


def load_history(settings) -> PriceHistory:
    """A CSV, a simulation, or a ticker (download -> cache -> bundled), as ``settings`` say."""
    if settings.csv:
        return load_csv(settings.csv, settings.date_format)
    if settings.synthetic:
        return simulate(settings.synthetic, settings.synthetic_length, settings.synthetic_noise,
                        settings.synthetic_seed, settings.synthetic_lag)
    return load_ticker(settings.ticker, settings.cache_dir, settings.offline)


def load_data(settings, echo: Callable[[str], None] = print) -> tuple[PriceHistory, FeatureSeries]:
    """Load, say where the data came from, and build features and target (with the covariates as features)."""
    history = load_history(settings)
    echo(f"data: {history.describe()}")
    series = build_series(history, settings.target, settings.features)
    notes = list(history.notes)
    covariates = []
    for cov in (*map(Covariate.parse, settings.covariates),
                *(Covariate.parse(text, csv=True) for text in settings.covariate_csv)):
        source = (load_csv(cov.source, settings.date_format) if cov.csv else
                  load_ticker(cov.source, settings.cache_dir, settings.offline))
        echo(f"covariate: {source.describe()} ({cov.transform})")
        notes += source.notes
        covariates.append((cov, covariate_values(cov, source)))
    series = with_covariates(series, history.name, covariates, settings.lookback, settings.horizon)
    if covariates:
        echo(f"with covariates: {len(series):,} days from {series.dates[0]:%Y-%m-%d} (every covariate has a value "
             f"from then on)")
    for note in notes:
        echo(f"note: {note}")
    return history, series
