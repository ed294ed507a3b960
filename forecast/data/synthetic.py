"""Simulated return series whose best possible one-step RMSE is known: the noise's std.

- ``rw``: ``r_t = e_t`` (a random walk in log price: nothing to learn; best forecast 0)
- ``ar2``: ``r_t = 0.5 r_(t-1) - 0.3 r_(t-2) + e_t``
- ``longmem``: ``r_t = 0.8 r_(t-L) + e_t`` (one dependency ``L`` days back)

with ``e_t ~ N(0, noise^2)``. Prices are ``100 * exp(cumsum r)`` on business days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import DataConfig
from .ingest import PriceHistory

AR2 = (0.5, -0.3)
LONGMEM_COEF = 0.8


def simulate_returns(kind: str, length: int, noise: float, seed: int, lag: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    burn = 200 + lag
    e = rng.normal(0.0, noise, length + burn)
    if kind == "rw":
        r = e
    else:
        # The recursions are sequential by nature (each value needs the previous ones).
        r = np.zeros_like(e)
        if kind == "ar2":
            for t in range(2, len(e)):
                r[t] = AR2[0] * r[t - 1] + AR2[1] * r[t - 2] + e[t]
        else:
            for t in range(len(e)):
                r[t] = (LONGMEM_COEF * r[t - lag] if t >= lag else 0.0) + e[t]
    return r[burn:]


def simulate(cfg: DataConfig) -> PriceHistory:
    r = simulate_returns(cfg.synthetic, cfg.synthetic_length, cfg.synthetic_noise, cfg.synthetic_seed, cfg.synthetic_lag)
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, r]))
    dates = pd.bdate_range("2000-01-03", periods=len(prices), name="date")
    frame = pd.DataFrame({"close": prices, "adj_close": prices}, index=dates)
    detail = f"noise {cfg.synthetic_noise}, seed {cfg.synthetic_seed}" + (f", lag {cfg.synthetic_lag}" if cfg.synthetic == "longmem" else "")
    return PriceHistory(frame, f"synthetic-{cfg.synthetic}", f"simulation ({detail})")
