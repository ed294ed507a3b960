"""A family of simulated processes whose best possible forecast error is known: the bench a training
recipe is judged on, drawn at random once and split, in this file, into a part to tune on and a
part that is only reported.

A recipe chosen on one series can be fitted to it (its lag, its length, its lookback). The family
draws many: memory at one lag ``r_t = c r_(t-L) + e_t`` (lags 2-50 inside lookbacks of 20-60,
coefficients 0.4-0.9), AR(2), threshold AR and the random walk, at several noise levels and
lengths of 2,000-8,000 days. Every process's best RMSE is its noise's standard deviation. Each
has a series seed of its own; training seeds are the bench's (``--seeds``), so the two never
coincide by construction.

The split is fixed here, before any tuning: every third process (ids 0, 3, 6, ...) is for tuning,
the others are reported. Do not change ``FAMILY_SEED``, ``FAMILY_SIZE`` or ``tune_part`` to make a
recipe look better: report the part you did not tune on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .history import PriceHistory

FAMILY_SEED = 20261201
FAMILY_SIZE = 36
KINDS = ("longmem",) * 6 + ("ar2", "tar", "rw")     # two in three of every nine draws are memory processes


@dataclass(frozen=True)
class Process:
    """One simulated process of the family."""

    id: int
    kind: str              # longmem, ar2, tar or rw
    lag: int | None        # longmem: the lag L; ar2: 2; tar: 1; rw: None
    coef: float            # longmem, tar: c; ar2: the first coefficient
    coef2: float           # ar2: the second coefficient; 0 otherwise
    noise: float           # the standard deviation of e_t: the best possible RMSE
    length: int            # days
    lookback: int          # the window the networks read
    series_seed: int

    @property
    def part(self) -> str:
        return "tune" if tune_part(self.id) else "report"

    @property
    def name(self) -> str:
        lag = f" lag {self.lag}" if self.kind == "longmem" else ""
        return f"p{self.id:02d} {self.kind}{lag}"

    def to_dict(self) -> dict:
        return asdict(self) | {"part": self.part, "process": self.name}


def tune_part(process_id: int) -> bool:
    """The fixed split: every third process is for tuning."""
    return process_id % 3 == 0


def draw_family(size: int = FAMILY_SIZE, seed: int = FAMILY_SEED) -> list[Process]:
    """The family, the same on every machine: one random draw from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(size):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        lookback = int(rng.integers(20, 61))
        noise = float(rng.choice([0.005, 0.01, 0.02]))
        length = int(rng.integers(2000, 8001))
        series_seed = int(rng.integers(1_000_000))
        lag, coef, coef2 = None, 0.0, 0.0
        if kind == "longmem":
            lag, coef = int(rng.integers(2, min(50, lookback) + 1)), round(float(rng.uniform(0.4, 0.9)), 2)
        elif kind == "ar2":
            lag, coef, coef2 = 2, round(float(rng.uniform(0.3, 0.7)), 2), round(float(rng.uniform(-0.4, -0.1)), 2)
        elif kind == "tar":
            lag, coef = 1, round(float(rng.uniform(0.4, 0.9)), 2)
        out.append(Process(i, kind, lag, coef, coef2, noise, length, lookback, series_seed))
    return out


def select(part: str, size: int = FAMILY_SIZE) -> list[Process]:
    """``tune``, ``report`` or ``all`` of the family."""
    family = draw_family(size)
    return family if part == "all" else [p for p in family if p.part == part]


def process_returns(p: Process) -> np.ndarray:
    """``[length]`` daily returns of ``p``, from its own series seed."""
    return simulate(p)[0]


def process_innovations(p: Process) -> np.ndarray:
    """``[length]`` the innovations ``e_t`` of ``p``'s returns, aligned with them: the errors of the best
    possible forecast. Their RMSE on the test days is the optimum a forecast is judged against (the noise's
    standard deviation only on average: a few hundred test days draw their own)."""
    return simulate(p)[1]


def simulate(p: Process) -> tuple[np.ndarray, np.ndarray]:
    """``(returns, innovations)``, each ``[length]``, from ``p``'s own series seed."""
    rng = np.random.default_rng(p.series_seed)
    burn = 300
    e = rng.normal(0.0, p.noise, p.length + burn)
    r = np.zeros_like(e)
    # The recursions are sequential by nature (each value needs the previous ones).
    if p.kind == "longmem":
        r[p.lag:] = e[p.lag:]
        r[:p.lag] = e[:p.lag]
        for t in range(p.lag, len(e)):
            r[t] = p.coef * r[t - p.lag] + e[t]
    elif p.kind == "ar2":
        r[:2] = e[:2]
        for t in range(2, len(e)):
            r[t] = p.coef * r[t - 1] + p.coef2 * r[t - 2] + e[t]
    elif p.kind == "tar":      # c r if r > 0 else -c r: mean c |r_(t-1)|, nonlinear
        for t in range(1, len(e)):
            r[t] = p.coef * abs(r[t - 1]) + e[t]
    else:
        r = e.copy()
    return r[burn:], e[burn:]


def process_history(p: Process) -> PriceHistory:
    r = process_returns(p)
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, r]))
    dates = pd.bdate_range("2000-01-03", periods=len(prices), name="date")
    frame = pd.DataFrame({"close": prices, "adj_close": prices}, index=dates)
    return PriceHistory(frame, f"family-{p.id:02d}", f"simulation ({p.name}, noise {p.noise}, seed {p.series_seed})")
