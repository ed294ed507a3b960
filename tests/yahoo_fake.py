"""A stand-in for Yahoo's chart endpoint: only the network call is replaced, yfinance's own parsing runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


class FakeResponse:
    def __init__(self, payload: dict, status_code: int = 200):
        self.payload, self.status_code = payload, status_code
        self.text = json.dumps(payload)
        self.url = "https://query2.finance.yahoo.com/v8/finance/chart/"

    def json(self):
        return self.payload

    def raise_for_status(self):
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


def chart_payload(ticker: str, frame: pd.DataFrame) -> dict:
    """Yahoo's v8 chart JSON for a daily OHLCV frame (index: dates)."""
    stamps = [int(pd.Timestamp(d).tz_localize("America/New_York").replace(hour=9, minute=30).timestamp())
              for d in frame.index]
    quote = {k.lower(): [float(v) for v in frame[k]] for k in ("Open", "High", "Low", "Close")}
    quote["volume"] = [int(v) for v in frame["Volume"]]
    return {"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": ticker, "exchangeName": "SNP", "instrumentType": "INDEX",
                 "firstTradeDate": stamps[0], "regularMarketTime": stamps[-1], "gmtoffset": -18000,
                 "timezone": "EST", "exchangeTimezoneName": "America/New_York", "priceHint": 2,
                 "dataGranularity": "1d", "range": "", "validRanges": ["1d", "max"]},
        "timestamp": stamps,
        "indicators": {"quote": [quote], "adjclose": [{"adjclose": [float(v) for v in frame["Adj Close"]]}]},
    }], "error": None}}


def not_found_payload(ticker: str) -> dict:
    return {"chart": {"result": None, "error": {"code": "Not Found", "description": f"No data found, symbol may be delisted"}}}


def sample_frame(n: int = 300, seed: int = 0, start: str = "2020-01-02") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    dates = pd.bdate_range(start, periods=n)
    return pd.DataFrame({"Open": close * 0.999, "High": close * 1.005, "Low": close * 0.995, "Close": close,
                         "Adj Close": close, "Volume": rng.integers(1e9, 5e9, n)}, index=dates)
