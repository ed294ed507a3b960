"""Daily price histories: Yahoo download -> local Parquet cache -> bundled copy; or a user's CSV.

Every history leaves here as one validated frame: a sorted, unique ``DatetimeIndex``
named ``date`` and lower-case columns ``open, high, low, close, adj_close, volume``
(``open/high/low/volume`` may be missing). Which source was used, and why, is
recorded so the CLI can say it in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ForecastError
from .history import PriceHistory
from .tickers import TICKER_PATTERN

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
# Tickers with a history shipped inside the package (see bundled/PROVENANCE.md).
BUNDLED = {"^GSPC": "GSPC.csv.gz"}
_ALIASES = {
    "date": "date", "datetime": "date", "timestamp": "date", "time": "date", "day": "date",
    "open": "open", "high": "high", "low": "low", "close": "close",
    "adj close": "adj_close", "adj_close": "adj_close", "adjclose": "adj_close",
    "adjusted close": "adj_close", "adjusted_close": "adj_close",
    "volume": "volume", "vol": "volume",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("FORECAST_CACHE_DIR") or Path.home() / ".cache" / "forecast")


def cache_path(cache_dir: str | Path, ticker: str) -> Path:
    """Cache file of a ticker; a ticker is a name, never a path."""
    if not TICKER_PATTERN.match(ticker or ""):
        raise ForecastError(f"--ticker {ticker!r} is not a ticker symbol (letters, digits, ^ . = _ -); use --csv for a file")
    folder = Path(cache_dir).resolve()
    path = (folder / f"{ticker.replace('^', '_')}.parquet").resolve()
    if path.parent != folder:  # belt and braces: the pattern already forbids separators
        raise ForecastError(f"--ticker {ticker!r} would leave the cache folder; use --csv for a file")
    return path


# ---------------------------------------------------------------- sources

def download_yahoo(ticker: str, cache_dir: Path) -> pd.DataFrame | None:
    """Full daily history from Yahoo via yfinance, or None when it is unreachable or empty.

    yfinance returns an empty frame (it does not raise) when offline or for an unknown
    ticker; both mean "no download" here. ``auto_adjust=False`` keeps the raw OHLC
    and the dividend/split-adjusted close side by side.
    """
    import yfinance as yf

    with contextlib.suppress(Exception):  # yfinance's own timezone cache lives beside ours
        yf.set_tz_cache_location(str(Path(cache_dir) / "yfinance"))
    yf_log = logging.getLogger("yfinance")
    level = yf_log.level
    yf_log.setLevel(logging.CRITICAL)  # offline it logs several tracebacks per call
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            raw = yf.Ticker(ticker).history(period="max", interval="1d", auto_adjust=False,
                                            actions=False, raise_errors=False)
    except Exception:  # network, rate limit or parse errors all mean: fall back
        return None
    finally:
        yf_log.setLevel(level)
    if raw is None or raw.empty:
        return None
    frame = _normalise_columns(raw.reset_index(), "Yahoo download")
    frame = frame.dropna(subset=[c for c in ("close", "adj_close") if c in frame])
    return frame if len(frame) else None


def _bundled(ticker: str) -> pd.DataFrame | None:
    name = BUNDLED.get(ticker.upper())
    if name is None:
        return None
    with resources.as_file(resources.files("forecast.data") / "bundled" / name) as path:
        return _normalise_columns(pd.read_csv(path), f"bundled {name}")


def load_ticker(ticker: str, cache_dir: str | Path | None = None, offline: bool = False) -> PriceHistory:
    """Download, else the cached copy, else the bundled history; say which was used."""
    cache_dir = Path(cache_dir or default_cache_dir())
    path = cache_path(cache_dir, ticker)
    notes: list[str] = []
    if not offline:
        frame = download_yahoo(ticker, cache_dir)
        if frame is not None:
            history = PriceHistory(_validate(frame, f"Yahoo data for {ticker}", notes), ticker, "yahoo (downloaded)", notes)
            with contextlib.suppress(OSError):  # a read-only cache must not stop the run
                path.parent.mkdir(parents=True, exist_ok=True)
                history.frame.to_parquet(path)
            return history
        why = "download failed or came back empty (offline, or unknown ticker)"
    else:
        why = "--offline"
    if path.is_file():
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # a corrupt cache is reported, then skipped
            notes.append(f"ignored unreadable cache {path}: {err}")
        else:
            return PriceHistory(_validate(frame, f"cache {path}", notes), ticker, f"cache {path} ({why})", notes)
    frame = _bundled(ticker)
    if frame is not None:
        return PriceHistory(_validate(frame, f"bundled {ticker}", notes), ticker, f"bundled copy ({why}, no cache)", notes)
    raise ForecastError(
        f"no data for ticker {ticker!r}: {why}, and nothing cached or bundled; "
        f"check the symbol, or pass --csv PATH with its daily prices")


def load_csv(path: str | Path) -> PriceHistory:
    """A user's CSV in the layout yfinance and most vendors export."""
    path = Path(path)
    label = f"CSV {str(path)!r}"
    if not path.is_file():
        raise ForecastError(f"{label} not found; check the path")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ForecastError(f"{label} is not a readable CSV ({first}); export it as comma-separated text with a header row") from None
    notes: list[str] = []
    frame = _validate(_normalise_columns(raw, label), label, notes)
    return PriceHistory(frame, path.stem, f"CSV {path}", notes)


# ---------------------------------------------------------------- validation

def _normalise_columns(raw: pd.DataFrame, label: str) -> pd.DataFrame:
    """Vendor column names -> ours; a DatetimeIndex named ``date`` (naive, day precision)."""
    renamed = {}
    for col in raw.columns:
        key = _ALIASES.get(str(col).strip().lower())
        if key and key not in renamed.values():
            renamed[col] = key
    frame = raw.rename(columns=renamed)[list(renamed.values())]
    if "date" not in frame:
        raise ForecastError(f"{label} has no date column (found: {', '.join(map(str, raw.columns))}); name it Date")
    if "close" not in frame and "adj_close" not in frame:
        raise ForecastError(f"{label} has no Close or Adj Close column (found: {', '.join(map(str, raw.columns))})")
    dates = frame["date"]
    if not pd.api.types.is_datetime64_any_dtype(dates):
        parsed = pd.to_datetime(dates, errors="coerce", format="mixed")
        bad = parsed.isna() & dates.notna()
        if bad.any() or dates.isna().any():
            row = int(np.flatnonzero(bad | dates.isna())[0])
            raise ForecastError(f"{label}: date {dates.iloc[row]!r} on data row {row + 1} is not a date; use YYYY-MM-DD")
        dates = parsed
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    frame = frame.drop(columns="date").set_index(pd.DatetimeIndex(dates.dt.normalize(), name="date"))
    return frame


def _validate(frame: pd.DataFrame, label: str, notes: list[str]) -> pd.DataFrame:
    """Checks every history goes through; a problem is one line naming the row and the fix."""
    frame = frame.copy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() & frame[col].notna()
            if bad.any():
                at = frame.index[np.flatnonzero(bad)[0]]
                raise ForecastError(f"{label}: {col} holds {frame[col][bad].iloc[0]!r} on {at:%Y-%m-%d}, not a number")
            frame[col] = values
    frame = frame.astype("float64")
    if "adj_close" not in frame:
        frame["adj_close"] = frame["close"]
        notes.append(f"{label} has no Adj Close: using Close (fine for an index, not for a stock with dividends)")
    if "close" not in frame:
        frame["close"] = frame["adj_close"]
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
        notes.append(f"{label}: dates were not in order; sorted them")
    dup = frame.index.duplicated()
    if dup.any():
        raise ForecastError(f"{label}: date {frame.index[dup][0]:%Y-%m-%d} appears more than once; keep one row per day")
    prices = [c for c in PRICE_COLUMNS if c in frame]
    for col in prices + (["volume"] if "volume" in frame else []):
        values = frame[col].to_numpy()
        missing = np.isnan(values)
        if missing.any():
            raise ForecastError(f"{label}: {missing.sum()} missing value(s) in {col}, first on "
                                f"{frame.index[missing][0]:%Y-%m-%d}; fill or drop those rows")
        bad = ~np.isfinite(values) | ((values <= 0) if col != "volume" else (values < 0))
        if bad.any():
            kind = "positive" if col != "volume" else "non-negative"
            raise ForecastError(f"{label}: {col} is {values[bad][0]} on {frame.index[bad][0]:%Y-%m-%d}; "
                                f"prices must be finite and {kind}")
    ordered = [c for c in (*PRICE_COLUMNS, "volume") if c in frame]
    return frame[ordered]
