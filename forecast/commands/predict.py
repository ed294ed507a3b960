"""``forecast predict``: the next trading day's forecast from a logged model and the latest data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import tracking
from ..config import DataConfig, PredictConfig
from ..data.calendar import CAVEAT, next_trading_day
from ..data.windows import make_inputs
from ..errors import ForecastError
from .common import Echo, load_data


@dataclass
class Prediction:
    run_id: str
    origin: pd.Timestamp
    date: pd.Timestamp
    forecasts: np.ndarray          # [H] target units
    last_price: float
    target: str

    def describe(self) -> list[str]:
        lines = [f"model: run {self.run_id}; data up to {self.origin:%Y-%m-%d}"]
        if self.target == "return":
            r = float(self.forecasts[0])
            lines.append(f"forecast for {self.date:%Y-%m-%d}: log return {r:+.5f} ({100 * np.expm1(r):+.3f}%), "
                         f"implied price {self.last_price * np.exp(r):,.2f} (last close {self.last_price:,.2f})")
        else:
            lines.append(f"forecast for {self.date:%Y-%m-%d}: daily volatility {float(self.forecasts[0]):.5f} "
                         f"({100 * float(self.forecasts[0]) * np.sqrt(252):.1f}% annualised)")
        lines.append(f"next trading day from the NYSE calendar; {CAVEAT}")
        return lines


def predict(cfg: PredictConfig, echo: Echo = print) -> Prediction:
    """Forecast the next trading day after the latest data with a logged model."""
    import torch

    source = DataConfig(ticker=cfg.ticker, csv=cfg.csv, offline=cfg.offline, cache_dir=cfg.cache_dir).source_name
    fit_run = tracking.latest_fit_run(source, cfg.run_id)
    p = fit_run.data.params
    try:
        lookback, target, features = int(p["data.lookback"]), p["data.target"], p["data.features"]
    except KeyError:
        raise ForecastError(f"run {fit_run.info.run_id} is not a `forecast fit` run (no data params)") from None
    data = DataConfig(ticker=cfg.ticker, csv=cfg.csv, date_format=cfg.date_format, offline=cfg.offline,
                      cache_dir=cfg.cache_dir, lookback=lookback, target=target, features=features.split(","))
    network = tracking.load_network(fit_run.info.run_id, (cfg.model,) if cfg.model else (), cfg.allow_pickle)
    history, series = load_data(data, echo)
    if len(series) < lookback:
        raise ForecastError(f"history has {len(series)} days, fewer than the model's lookback {lookback}")
    x = make_inputs(series.features, np.array([len(series) - 1]), lookback)
    with torch.no_grad():
        forecasts = network(torch.from_numpy(x)).numpy()[0]
    origin = series.dates[-1]
    result = Prediction(fit_run.info.run_id, origin, next_trading_day(origin), forecasts, float(series.price[-1]), target)
    for line in result.describe():
        echo(line)
    return result
