"""Ticker symbols: names, never paths; one spelling per index (Yahoo ignores case)."""

from __future__ import annotations

import re

from ..errors import ForecastError, shorten

TICKER_PATTERN = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9.^=_-]{0,24}$")


def check_ticker(ticker: str) -> str:
    """The ticker in its one spelling (upper case: ``^gspc`` and ``^GSPC`` are one index), or a one-line error."""
    if not TICKER_PATTERN.match(ticker or ""):
        raise ForecastError(f"--ticker must be a ticker symbol (letters, digits, ^ . = _ -; no slashes or spaces); "
                            f"use --csv for a file, got {shorten(ticker)}")
    return ticker.upper()
