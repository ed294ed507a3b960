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
import re
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ForecastError
from .dates import parse_dates
from .history import PriceHistory
from .tickers import TICKER_PATTERN

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
TICKER_COLUMNS = ("ticker", "symbol")        # a long CSV's column naming each row's series
# Tickers with a history shipped inside the package (see bundled/PROVENANCE.md).
BUNDLED = {"^GSPC": "GSPC.csv.gz", "^IXIC": "IXIC.csv.gz", "^VIX": "VIX.csv.gz"}
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
        why = "no download: offline, or an unknown ticker"
    else:
        why = "--offline"
    if path.is_file():
        try:
            frame = _validate(pd.read_parquet(path), f"cache {path}", notes)
        except Exception as err:  # a corrupt cache, or one with the wrong columns, is reported, then skipped
            notes.append(f"ignored unusable cache {path} ({type(err).__name__}); delete it to silence this note")
        else:
            return PriceHistory(frame, ticker, f"cache {path} ({why})", notes)
    frame = _bundled(ticker)
    if frame is not None:
        return PriceHistory(_validate(frame, f"bundled {ticker}", notes), ticker, f"bundled copy ({why}; no cache)", notes)
    raise ForecastError(
        f"no data for ticker {ticker!r}: {why}, and nothing cached or bundled; "
        f"check the symbol, or pass --csv PATH with its daily prices")


def load_csv(path: str | Path, date_format: str | None = None) -> PriceHistory:
    """A user's CSV in the layout yfinance and most vendors export.

    Errors name the row and the offending cell only: never more of the file's content
    (a mistyped path can point at a file that is nobody's business).
    """
    raw, label, path = _read_csv(path)
    column = _ticker_column(raw)
    if column is not None and raw[column].nunique() > 1:
        raise ForecastError(f"{label} has a {column} column with {raw[column].nunique()} series: a panel, which "
                            f"`forecast backtest` runs; give one series' file here")
    notes: list[str] = []
    frame = _validate(_normalise_columns(raw.drop(columns=[column] if column else []), label, date_format), label,
                      notes)
    return PriceHistory(frame, path.stem, f"CSV {path}", notes)


def load_csv_panel(path: str | Path, date_format: str | None = None) -> list[PriceHistory]:
    """The series of a CSV: one per value of its Ticker (or Symbol) column in a long file (one row per series and
    day), else the file's one series."""
    raw, label, path = _read_csv(path)
    column = _ticker_column(raw)
    if column is None:
        return [load_csv(path, date_format)]
    histories = []
    for name, rows in raw.groupby(column, sort=False):
        where, notes = f"{label} ({column} {str(name)[:40]!r})", []
        frame = _validate(_normalise_columns(rows.drop(columns=[column]), where, date_format), where, notes)
        histories.append(PriceHistory(frame, str(name).strip(), f"CSV {path}", notes))
    return histories


def series_count(path: str | Path) -> int:
    """How many series a CSV holds: its Ticker (Symbol) column's values, else 1 (only the header is read then);
    1 for a file that cannot be read (reading it properly gives the error)."""
    try:
        column = _ticker_column(pd.read_csv(path, nrows=0))
        return 1 if column is None else int(pd.read_csv(path, usecols=[column])[column].nunique())
    except Exception:  # noqa: BLE001 - not a readable CSV: the loader says what is wrong, in one line
        return 1


def _ticker_column(raw: pd.DataFrame) -> str | None:
    """The column naming each row's series in a long CSV (Ticker, Symbol), or None."""
    return next((c for c in raw.columns if str(c).strip().lower() in TICKER_COLUMNS), None)


def _read_csv(path: str | Path) -> tuple[pd.DataFrame, str, Path]:
    """``(raw frame, label for messages, path)``; a one-line error for a file that is not a readable CSV."""
    path = Path(path)
    label = f"CSV {str(path)!r}"
    if path.is_dir():
        raise ForecastError(f"{label} is a folder, not a file; give the path of the CSV")
    if not path.is_file():
        raise ForecastError(f"{label} not found; check the path")
    try:
        raw = pd.read_csv(path) if _has_header(path) else None
    except PermissionError:
        raise ForecastError(f"{label} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise ForecastError(f"{label} is not UTF-8 text; export it as a UTF-8 CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        detail = re.sub(r"'[^']*'", "...", str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise ForecastError(f"{label} is not a readable CSV ({detail}); export it as comma-separated text with a "
                            f"header row") from None
    if raw is None or raw.empty:
        raise ForecastError(f"{label} has no data rows; it needs a header row and one row per trading day")
    return raw, label, path


def _has_header(path: Path) -> bool:
    """Whether the file has any text at all (``read_csv`` of an empty file says only 'no columns').
    ``read_csv`` opens the file again by its path: from the path it knows a compressed CSV (.gz, .zip)."""
    with path.open("rb") as handle:
        return bool(handle.read(1))


# ---------------------------------------------------------------- validation

def _normalise_columns(raw: pd.DataFrame, label: str, date_format: str | None = None) -> pd.DataFrame:
    """Vendor column names -> ours; a DatetimeIndex named ``date`` (naive, day precision)."""
    renamed: dict = {}
    for col in raw.columns:
        key = _ALIASES.get(str(col).strip().lower())
        if key is None:
            continue
        if key in renamed.values():
            first = next(c for c, k in renamed.items() if k == key)
            raise ForecastError(f"{label} has two columns for {key} ({str(first)!r} and {str(col)!r}); keep one")
        renamed[col] = key
    frame = raw[list(renamed)].set_axis(list(renamed.values()), axis=1)
    if "date" not in frame:
        separator = _other_separator(raw.columns)
        if separator:
            raise ForecastError(f"{label} looks {separator}-separated; save it with commas between the columns "
                                f"(and decimal points, not commas, in the numbers)")
        raise ForecastError(f"{label} has no date column; name the column of dates Date")
    if "close" not in frame and "adj_close" not in frame:
        raise ForecastError(f"{label} has no Close or Adj Close column; name the column of closing prices Close")
    dates = parse_dates(frame["date"], label, date_format)
    return frame.drop(columns="date").set_index(pd.DatetimeIndex(dates, name="date"))


def _other_separator(columns) -> str | None:
    """The name of the separator a header read with commas was written with, when split by it one of its
    names is a date column (``Date;Close``: semicolon); else None. Says nothing of the header's text."""
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        names = [part.strip().lower() for col in map(str, columns) if sep in col for part in col.split(sep)]
        if any(_ALIASES.get(part) == "date" for part in names):
            return name
    return None


def _validate(frame: pd.DataFrame, label: str, notes: list[str]) -> pd.DataFrame:
    """Checks every history goes through; a problem is one line naming the row and the fix."""
    frame = frame.copy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() & frame[col].notna()
            if bad.any():
                at = frame.index[np.flatnonzero(bad)[0]]
                cell = str(frame[col][bad].iloc[0])[:40]
                comma = " (a decimal comma? write numbers with a decimal point)" if re.fullmatch(
                    r"\s*-?\d{1,3}(?:[.\s]?\d{3})*,\d+\s*", cell) else ""
                raise ForecastError(f"{label}: {col} holds {cell!r} on {at:%Y-%m-%d}, not a number{comma}")
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
    if len(frame) > 1 and np.ptp(frame["adj_close"].to_numpy()) == 0:
        notes.append(f"{label}: the price never changes, so there is nothing to learn; check the data")
    notes.extend(_calendar_notes(frame, label))
    ordered = [c for c in (*PRICE_COLUMNS, "volume") if c in frame]
    return frame[ordered]


MAX_GAP = 10            # trading (business) days between two rows beyond which data is missing, not a holiday
MAX_DAILY_MOVE = 0.4    # |log return| in one day: no index has moved that much (a typo, or a split not adjusted)


def _calendar_notes(frame: pd.DataFrame, label: str) -> list[str]:
    """What the dates and prices say that a model would otherwise take at face value: rows on weekends (the
    exchange of a CSV is unknown, so Saturdays and Sundays), holes of more than ``MAX_GAP`` trading days (the
    return across one counts as a single day's), and daily moves beyond ``MAX_DAILY_MOVE``."""
    notes = []
    days = frame.index.to_numpy().astype("datetime64[D]")
    weekend = frame.index.day_of_week >= 5
    if weekend.any():
        notes.append(f"{label}: {int(weekend.sum())} row(s) fall on a Saturday or Sunday, when exchanges do not "
                     f"trade (first {frame.index[weekend][0]:%Y-%m-%d}); each counts as a trading day: check the dates")
    if len(days) > 1:
        gaps = np.busday_count(days[:-1], days[1:]) - 1      # trading days with no row between two rows
        holes = np.flatnonzero(gaps > MAX_GAP)
        if len(holes):
            i = holes[0]
            more = f" ({len(holes) - 1} more such gap(s))" if len(holes) > 1 else ""
            notes.append(f"{label}: no rows between {frame.index[i]:%Y-%m-%d} and {frame.index[i + 1]:%Y-%m-%d} "
                         f"({gaps[i]} trading days){more}; the return across the gap counts as one day's")
        moves = np.diff(np.log(frame["adj_close"].to_numpy()))
        wild = np.flatnonzero(np.abs(moves) > MAX_DAILY_MOVE)
        if len(wild):
            i = wild[0]
            more = f" ({len(wild) - 1} more such day(s))" if len(wild) > 1 else ""
            notes.append(f"{label}: the log return on {frame.index[i + 1]:%Y-%m-%d} is {moves[i]:+.2f}, beyond any "
                         f"day of a stock index{more}; check the price on that row (a volatility index such as "
                         f"the VIX does move that much)")
    return notes
