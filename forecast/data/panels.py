"""A panel: several series forecast side by side (``--tickers``, several CSVs, or one long CSV).

Each series keeps its own trading days; nothing is aligned across series but the covariates,
by the one rule of ``covariates.py``: a series' row for day ``d`` holds another series' value
from its last day on or before ``d``. A day on which a series does not trade is not a row of
it, so not a forecast day for it. With ``--covariates panel`` every other series of the panel
is an input of each series (by its returns), next to the covariates every series shares (the simulated
panel, ``--synthetic panel``, adds its covariate ``sim-signal`` there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ForecastError, shorten
from .covariate_spec import Covariate
from .covariates import covariate_values
from .history import PriceHistory
from .ingest import load_csv_panel, load_ticker, series_count
from .load import covariate_series, load_covariates
from .synthetic import simulate_panel
from .windows import FeatureSeries


@dataclass(frozen=True)
class Panel:
    """The series of a panel, in the order given: each history and its model-ready series."""

    histories: tuple[PriceHistory, ...]
    series: tuple[FeatureSeries, ...]

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.histories]

    def __len__(self) -> int:
        return len(self.histories)


def panel_histories(settings) -> list[PriceHistory]:
    """The histories ``settings`` name: each ticker, each CSV (a long CSV's every series), or the simulated
    panel's; names unique."""
    if settings.synthetic == "panel":
        return list(_simulated(settings).histories)
    if settings.tickers:
        histories = [load_ticker(t, settings.cache_dir, settings.offline) for t in settings.tickers]
    elif settings.csv:
        histories = [h for path in settings.csv.split(",") if path.strip()
                     for h in load_csv_panel(path.strip(), settings.date_format)]
    else:
        raise ForecastError("a panel needs --tickers, or --csv with several files or a Ticker column")
    names = [h.name for h in histories]
    for name in names:
        if names.count(name) > 1:
            raise ForecastError(f"two series of the panel are named {shorten(name)}; give each series once (rename "
                                f"one of the files)")
    return histories


def load_panel(settings, echo: Callable[[str], None] = print) -> Panel:
    """Load every series, say where each came from, and build its features (covariates included)."""
    histories = panel_histories(settings)
    for history in histories:
        echo(f"data: {history.describe()}")
    shared, notes = load_covariates(settings, echo)
    pool = histories + ([_simulated(settings).covariate] if settings.synthetic == "panel" else [])
    series = []
    for history in histories:
        others = [(Covariate(o.name), covariate_values(Covariate(o.name), o)) for o in pool
                  if o is not history] if settings.panel_covariates else []
        series.append(covariate_series(history, shared + others, settings, echo))
    for note in [n for h in histories for n in h.notes] + notes:
        echo(f"note: {note}")
    return Panel(tuple(histories), tuple(series))


def _simulated(settings):
    return simulate_panel(settings.synthetic_length, settings.synthetic_noise, settings.synthetic_seed)


def is_panel(settings) -> bool:
    """Do ``settings`` name several series (``--tickers``, several CSVs, a CSV with a Ticker column, or the
    simulated panel)?"""
    if settings.synthetic == "panel":
        return True
    if len(settings.tickers) > 1 or (settings.csv and len([p for p in settings.csv.split(",") if p.strip()]) > 1):
        return True
    if settings.csv and not settings.tickers:
        return series_count(settings.csv.split(",")[0].strip()) > 1
    return False
