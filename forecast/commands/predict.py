"""``forecast predict``: the next trading day's forecast from a logged model and the latest data.

A distribution model (``fit --distribution``) also gets its 90% interval and the one-day value at
risk of a long position at 1% and 5%: the loss that the return falls short of with that
probability, in percent and in index points.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..tracking import runs as tracking
from ..config.settings import DataSettings, PredictConfig
from ..data.calendar import CAVEAT, next_trading_day
from ..data.windows import make_inputs
from ..stats.distributions import PARAMETERS, Distribution
from ..errors import ForecastError
from ..console import Echo
from ..data.load import load_data
from ..data.panels import is_panel, load_panel
from ..tracking.record import series_slug
from ..report.tables import text_table


@dataclass
class Prediction:
    run_id: str
    origin: pd.Timestamp
    date: pd.Timestamp
    forecasts: np.ndarray          # [H] target units
    last_price: float
    target: str
    distribution: Distribution | None = None   # the next day's (and further steps') forecast distribution

    def interval(self, lower: float = 0.05, upper: float = 0.95) -> tuple[float, float]:
        """The next day's ``lower``-``upper`` interval of the log return."""
        q = self.distribution.quantiles([lower, upper])[0]
        return float(q[0]), float(q[1])

    def value_at_risk(self, level: float) -> tuple[float, float]:
        """``(loss as a share of the price, loss in index points)`` exceeded with probability ``level``."""
        q = float(self.distribution.quantiles([level])[0, 0])
        loss = -float(np.expm1(q))
        return loss, loss * self.last_price

    def describe(self) -> list[str]:
        lines = [f"model: run {self.run_id}; data up to {self.origin:%Y-%m-%d}"]
        if self.target == "return":
            r = float(self.forecasts[0])
            lines.append(f"forecast for {self.date:%Y-%m-%d}: log return {r:+.5f} ({100 * np.expm1(r):+.3f}%), "
                         f"implied price {self.last_price * np.exp(r):,.2f} (last close {self.last_price:,.2f})")
            if self.distribution is not None:
                lines += self._distribution_lines()
        else:
            lines.append(f"forecast for {self.date:%Y-%m-%d}: daily volatility {float(self.forecasts[0]):.5f} "
                         f"({100 * float(self.forecasts[0]) * np.sqrt(252):.1f}% annualised)")
        lines.append(f"next trading day from the NYSE calendar; {CAVEAT}")
        return lines


    def _distribution_lines(self) -> list[str]:
        d = self.distribution
        lo, hi = self.interval()
        price = self.last_price
        family = d.family + (f", {float(d.df[0, 0]):.1f} degrees of freedom" if d.df is not None else "")
        lines = [f"distribution: {family}; standard deviation {float(d.sd[0, 0]):.5f} "
                 f"({100 * float(d.sd[0, 0]) * np.sqrt(252):.1f}% annualised)",
                 f"90% interval: log return {lo:+.5f} to {hi:+.5f} ({100 * np.expm1(lo):+.2f}% to "
                 f"{100 * np.expm1(hi):+.2f}%), price {price * np.exp(lo):,.2f} to {price * np.exp(hi):,.2f}"]
        for level in (0.01, 0.05):
            loss, points = self.value_at_risk(level)
            lines.append(f"value at risk {100 * level:g}% (one day, long position): {100 * loss:.2f}% of the price, "
                         f"{points:,.2f} index points (a worse day than this has a {100 * level:g}% chance)")
        return lines


def predict(cfg: PredictConfig, echo: Echo = print) -> Prediction | list[Prediction]:
    """Forecast the next trading day after the latest data with a logged model (every series' with a panel's
    fit: a list of them)."""
    data = DataSettings(ticker=cfg.ticker, tickers=cfg.tickers, csv=cfg.csv, date_format=cfg.date_format,
                        offline=cfg.offline, cache_dir=cfg.cache_dir)
    panel = is_panel(data)
    fit_args = (f"--csv {shlex.quote(cfg.csv)}" if cfg.csv else
                f"--tickers {shlex.quote(','.join(cfg.tickers))}" if panel else None)   # the fit that makes the run
    fit_run = tracking.latest_fit_run(data.source_name, cfg.run_id, fit_args)
    data = _fitted_data(fit_run, data)
    cells = (cfg.model,) if cfg.model else ()
    run_id = fit_run.info.run_id
    if not panel:
        network = tracking.load_network(run_id, cells, cfg.allow_pickle)
        return _forecast(network, load_data(data, echo)[1], data, run_id, echo)
    loaded = load_panel(data, echo)
    fitted = fit_run.data.tags.get("series", "")
    if fitted != ",".join(loaded.names)[:500]:
        raise ForecastError(f"run {run_id} is a fit of {fitted or 'one series'}, not of the panel "
                            f"{','.join(loaded.names)}: fit this panel first (`forecast fit {fit_args}`)")
    networks = [tracking.load_network(run_id, cells, cfg.allow_pickle, series=series_slug(n)) for n in loaded.names]
    predictions = []
    for name, series, network in zip(loaded.names, loaded.series, networks):
        echo(f"\n{name}:")
        predictions.append(_forecast(network, series, data, run_id, echo))
    what = "log return" if data.target == "return" else "volatility"
    echo(f"\nnext trading day, every series ({data.target} target):")
    echo(text_table([{"series": n, "date": f"{p.date:%Y-%m-%d}", what: float(p.forecasts[0]),
                      **({"implied price": p.last_price * float(np.exp(p.forecasts[0]))} if data.target == "return"
                         else {})} for n, p in zip(loaded.names, predictions)],
                    ["date", what] + (["implied price"] if data.target == "return" else []), first="series"))
    return predictions


def _fitted_data(fit_run, data: DataSettings) -> DataSettings:
    """``data`` with the fit run's lookback, target, features and covariates (``predict`` fetches them again)."""
    p = fit_run.data.params
    try:
        lookback, target, features = int(p["data.lookback"]), p["data.target"], p["data.features"]
    except KeyError:
        raise ForecastError(f"run {fit_run.info.run_id} is not a `forecast fit` run (no data params)") from None
    covariates = {key: [c for c in p.get(f"data.{key}", "").split(",") if c] for key in ("covariates", "covariate_csv")}
    return replace(data, lookback=lookback, target=target, features=features.split(","), **covariates)


def _forecast(network, series, data: DataSettings, run_id: str, echo: Echo) -> Prediction:
    """The network's forecast from the last ``lookback`` days of ``series``, said and returned."""
    import torch

    lookback, target = data.lookback, data.target
    if len(series) < lookback:
        raise ForecastError(f"history has {len(series)} days, fewer than the model's lookback {lookback}")
    x = make_inputs(series.features, np.array([len(series) - 1]), lookback)
    with torch.no_grad():
        output = network(torch.from_numpy(x)).double().numpy()          # [1, H] or [1, H, P]
    distribution = None
    if output.ndim == 3:
        family = {p: f for f, p in PARAMETERS.items()}[output.shape[-1]]
        distribution = Distribution.from_output(family, output)
        output = output[..., 0]
    origin = series.dates[-1]
    result = Prediction(run_id, origin, next_trading_day(origin), output[0], float(series.price[-1]), target,
                        distribution)
    for line in result.describe():
        echo(line)
    note = unseen_note(output[0], series.target, target)
    if note:
        echo(note)
    return result


PRICE_MOVE = 0.4      # an implied price change beyond 40% in a day: no index has moved that much


def unseen_note(forecasts: np.ndarray, history: np.ndarray, target: str) -> str | None:
    """A note when a forecast ``[H]`` lies outside anything the history's target has seen (its daily minimum to
    maximum; for the return target also an implied price change beyond 40%): such a number cannot be trusted."""
    seen = history[np.isfinite(history)]
    lo, hi = (float(seen.min()), float(seen.max())) if len(seen) else (-np.inf, np.inf)
    f = np.asarray(forecasts, dtype=np.float64)
    outside = ~np.isfinite(f) | (f < lo) | (f > hi)
    if target == "return":
        with np.errstate(over="ignore", invalid="ignore"):
            outside |= np.abs(np.expm1(f)) > PRICE_MOVE
    if not outside.any():
        return None
    what = "daily log return" if target == "return" else "daily volatility"
    return (f"note: this forecast ({what} {float(f[outside][0]):+.5g}) lies outside anything the history has seen "
            f"({lo:+.5f} to {hi:+.5f}); do not trust it: the model may have diverged or its run been damaged, refit")
