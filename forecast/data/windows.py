"""Pure numpy: daily features and targets, sliding windows, time-ordered splits.

Alignment, used everywhere: day ``t`` is an *origin*. The input window of origin
``t`` holds the feature rows ``t-L+1 .. t`` (all known at the close of day ``t``);
its targets are the values on days ``t+1 .. t+H``. A forecast for day ``t+1``
therefore uses data up to and including day ``t`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ForecastError
from .history import PriceHistory

PARKINSON = 1.0 / np.sqrt(4.0 * np.log(2.0))
MIN_TRAIN, MIN_EVAL = 30, 5


@dataclass(frozen=True)
class FeatureSeries:
    """Model-ready daily arrays; row ``i`` is trading day ``dates[i]``."""

    dates: pd.DatetimeIndex      # [T]
    features: np.ndarray         # [T, F] unscaled
    feature_names: tuple[str, ...]
    target: np.ndarray           # [T] target value observed on each day
    target_name: str             # "return" or "volatility"
    price: np.ndarray            # [T] adjusted close (implied prices, trading)
    returns: np.ndarray          # [T] log return of the adjusted close
    proxy: np.ndarray | None = None  # [T] daily volatility proxy (Parkinson, else |return|): HAR's input

    def __len__(self) -> int:
        return len(self.dates)

    def target_dates(self, origins: np.ndarray, step: int = 1) -> pd.DatetimeIndex:
        return self.dates[np.asarray(origins) + step]

    def rows(self, keep) -> "FeatureSeries":
        """The series on the days ``keep`` selects (a slice or a boolean mask). Every per-day field (an array as
        long as the dates) is cut, not a list of them: a field a list missed would carry other days along."""
        cut = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (np.ndarray, pd.Index)) and value.ndim and len(value) == len(self):
                cut[f.name] = value[keep]
        return replace(self, **cut)


def volatility_proxy(frame: pd.DataFrame, returns: np.ndarray) -> tuple[np.ndarray, str]:
    """Daily volatility proxy: Parkinson's high-low estimator where High/Low exist, else |return|.

    Parkinson (1980): sigma_t = ln(H_t / L_t) / sqrt(4 ln 2), an unbiased estimate of the
    day's standard deviation for a driftless Brownian price, far less noisy than |r_t|.
    """
    if "high" in frame and "low" in frame:
        return np.log(frame["high"].to_numpy() / frame["low"].to_numpy()) * PARKINSON, "parkinson"
    return np.abs(returns), "abs_return"


def build_series(history: PriceHistory, target: str = "return", features: list[str] | tuple = ("returns",)) -> FeatureSeries:
    """Prices -> per-day features and target. The first day is dropped: it has no return."""
    frame = history.frame
    price = frame["adj_close"].to_numpy()
    returns = np.diff(np.log(price))
    columns: dict[str, np.ndarray] = {"returns": returns}
    if "range" in features:
        if "high" not in frame or "low" not in frame:
            raise ForecastError(f"--features range needs High and Low columns, which {history.name} lacks; drop 'range'")
        columns["range"] = np.log(frame["high"].to_numpy() / frame["low"].to_numpy())[1:]
    if "volume" in features:
        volume = frame["volume"].to_numpy() if "volume" in frame else None
        if volume is None or (volume <= 0).any():
            raise ForecastError(f"--features volume needs a positive Volume on every day, which {history.name} lacks; drop 'volume'")
        columns["volume"] = np.diff(np.log(volume))
    inverted = (frame["high"] < frame["low"]).to_numpy() if "high" in frame and "low" in frame else np.zeros(0, bool)
    if (target == "volatility" or "range" in features) and inverted.any():   # both read log(High / Low)
        day = frame.index[inverted][0]
        flag = "--target volatility" if target == "volatility" else "--features range"
        raise ForecastError(f"{flag}: High is below Low on {day:%Y-%m-%d} in {history.name}; fix the data")
    # A High below Low on some day: no Parkinson proxy, |return| on every day.
    proxy, kind = volatility_proxy(frame.drop(columns=["high", "low"]) if inverted.any() else frame,
                                   np.r_[np.nan, returns])
    proxy = proxy[1:]
    if target == "volatility":
        if kind != "parkinson":
            history.notes.append("no High/Low columns: the volatility proxy is the absolute daily return")
        columns["volatility"] = proxy
        y = columns["volatility"]
    else:
        y = returns
    names = tuple(columns)
    return FeatureSeries(
        dates=frame.index[1:],
        features=np.column_stack([columns[n] for n in names]).astype(np.float64),
        feature_names=names,
        target=np.asarray(y, dtype=np.float64),
        target_name=target,
        price=price[1:],
        returns=returns,
        proxy=np.asarray(proxy, dtype=np.float64),
    )


def forecastable_origins(n_days: int, lookback: int, horizon: int) -> np.ndarray:
    """Origins with a full input window and all ``horizon`` targets inside the data."""
    return np.arange(lookback - 1, n_days - horizon)


def make_inputs(features: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """Input windows ``[N, L, F]`` (float32) for the given origins; vectorised, no per-sample loop."""
    origins = np.asarray(origins, dtype=np.int64)
    if len(origins) and (origins.min() < lookback - 1 or origins.max() >= len(features)):
        raise ForecastError(f"origins must lie in [{lookback - 1}, {len(features) - 1}] for --lookback {lookback}")
    view = sliding_window_view(features, lookback, axis=0)  # [T-L+1, F, L], no copy
    return np.ascontiguousarray(view[origins - lookback + 1].transpose(0, 2, 1), dtype=np.float32)


def make_targets(target: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Targets ``[N, H]``: the values on days ``t+1 .. t+H`` of each origin ``t``."""
    origins = np.asarray(origins, dtype=np.int64)
    if len(origins) and origins.max() + horizon >= len(target):
        raise ForecastError(f"origin {origins.max()} has no {horizon}-day target inside the data")
    view = sliding_window_view(target, horizon)  # [T-H+1, H]
    return np.ascontiguousarray(view[origins + 1], dtype=np.float32)


@dataclass(frozen=True)
class Split:
    """Origins of each part, in time order; no training target overlaps a later part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def purged(origins: np.ndarray, before: int, horizon: int) -> np.ndarray:
    """Origins whose targets (``t+1 .. t+H``) all fall strictly before day ``before + 1``.

    With ``before`` the first origin of a later part, this drops the last ``H-1`` origins
    whose multi-day targets would overlap that part's targets.
    """
    return origins[origins + horizon <= before]


def carve_validation(before: np.ndarray, n_val: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)``: the last ``n_val`` origins validate; training origins are purged before them."""
    if n_val == 0:
        return before, before[:0]
    val = before[len(before) - n_val:]
    return purged(before, val[0], horizon), val


def time_split(n_days: int, lookback: int, horizon: int, val_fraction: float, test_fraction: float) -> Split:
    """Train / validation / test by time: the test part is the most recent windows."""
    origins = forecastable_origins(n_days, lookback, horizon)
    n_test = int(round(len(origins) * test_fraction))
    n_val = int(round(len(origins) * val_fraction))
    test = origins[len(origins) - n_test:]
    train, val = carve_validation(purged(origins, test[0] if n_test else n_days, horizon), n_val, horizon)
    if len(train) < MIN_TRAIN or len(val) < MIN_EVAL or len(test) < MIN_EVAL:
        share = max(1e-9, 1 - val_fraction - test_fraction)
        need = int(np.ceil((MIN_TRAIN + 2 * (horizon - 1)) / share)) + lookback + horizon
        # Blame what costs the most days: the horizon (its targets, purged at each cut) or the lookback.
        horizon_days = need - (int(np.ceil(MIN_TRAIN / share)) + lookback + 1)
        counts = (f"{n_days} days give {max(len(origins), 0)} windows of --lookback {lookback} and --horizon "
                  f"{horizon} ({len(train)} train, {len(val)} validation, {len(test)} test)")
        if horizon_days > lookback:
            raise ForecastError(f"--horizon {horizon} is too long for this data: {counts}; use a shorter --horizon "
                                f"(or about {need} days of history)")
        raise ForecastError(f"history too short: {counts}; need about {need} days, or use a shorter --lookback")
    return Split(train, val, test)


def shared_layout(series: list[FeatureSeries]) -> list[FeatureSeries]:
    """The series with one column layout, for a network that reads them all (a global network): every input
    column of any series, in the order first met; a series without a column holds zero there. Under
    ``--covariates panel`` that is each series' own slot (the others' returns are covariates of it, its own are
    its features): the zero slot also tells the network which series a window is of. Series whose columns
    already agree come back as they are."""
    names = list(dict.fromkeys(n for s in series for n in s.feature_names))
    out = []
    for s in series:
        if list(s.feature_names) == names:
            out.append(s)
            continue
        features = np.zeros((len(s), len(names)))
        features[:, [names.index(n) for n in s.feature_names]] = s.features
        out.append(replace(s, features=features, feature_names=tuple(names)))
    return out
