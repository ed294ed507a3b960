"""The history a command's data settings name, and its features and target.

Takes a ``DataSettings`` (``forecast.config``) by its fields, so that this layer needs
nothing from the layers above it.
"""

from __future__ import annotations

from typing import Callable

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
    """Load, say where the data came from, and build features and target."""
    history = load_history(settings)
    echo(f"data: {history.describe()}")
    series = build_series(history, settings.target, settings.features)
    for note in history.notes:
        echo(f"note: {note}")
    return history, series
