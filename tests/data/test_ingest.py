"""Ingest: download -> cache -> bundled fallback, ticker safety, CSV validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.config.settings import DataSettings
from forecast.data.load import load_history
from forecast.data.ingest import cache_path, load_csv, load_ticker
from forecast.errors import ForecastError
from yahoo_fake import sample_frame


def test_download_is_validated_and_cached(yahoo, isolated):
    frame = sample_frame(120)
    yahoo("^GSPC", frame)
    history = load_ticker("^GSPC")
    assert history.source.startswith("yahoo")
    assert list(history.frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert len(history.frame) == 120
    assert history.frame.index[0] == pd.Timestamp("2020-01-02") and history.frame.index.tz is None
    np.testing.assert_allclose(history.frame["adj_close"].to_numpy(), frame["Adj Close"].to_numpy())
    assert cache_path(isolated / "cache", "^GSPC").is_file()


def test_offline_falls_back_to_cache_then_bundled(yahoo, isolated):
    # No cache yet and the network call fails: the bundled 1999-2018 history.
    bundled = load_ticker("^GSPC")
    assert bundled.source.startswith("bundled") and len(bundled.frame) == 5031
    assert (bundled.start, bundled.end) == (pd.Timestamp("1999-01-04"), pd.Timestamp("2018-12-31"))
    assert "1999-01-04" in bundled.describe() and "bundled" in bundled.describe()
    # A successful download fills the cache ...
    yahoo("^GSPC", sample_frame(80))
    load_ticker("^GSPC")
    # ... and an empty answer (what yfinance returns offline) falls back to it.
    yahoo("^GSPC", None)
    cached = load_ticker("^GSPC")
    assert cached.source.startswith("cache") and len(cached.frame) == 80


def test_offline_flag_skips_download(yahoo):
    yahoo("^GSPC", sample_frame(80))
    assert load_history(DataSettings(offline=True)).source.startswith("bundled")


def test_unknown_ticker_suggests_csv(yahoo):
    yahoo("NOSUCH", None)
    with pytest.raises(ForecastError, match=r"no data for ticker 'NOSUCH'.*--csv"):
        load_ticker("NOSUCH")


@pytest.mark.parametrize("ticker", ["../../x", "a/b", "..", "x y", "/etc/passwd", ""])
def test_path_like_ticker_is_rejected(ticker, isolated):
    with pytest.raises(ForecastError, match="ticker"):
        load_ticker(ticker)
    with pytest.raises(ForecastError, match="--ticker"):
        DataSettings(ticker=ticker)
    assert not list(isolated.parent.glob("*.parquet"))


def write(path, text):
    path.write_text(text)
    return path


GOOD = "Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(
    f"2020-01-{d:02d},{100 + d},{101 + d},{99 + d},{100 + d},{100 + d},{1000 + d}" for d in range(1, 29))


def test_csv_in_vendor_layout(tmp_path):
    history = load_csv(write(tmp_path / "idx.csv", GOOD))
    assert history.name == "idx" and len(history.frame) == 28
    assert history.frame["adj_close"].iloc[-1] == 128.0


def test_csv_with_close_only_uses_it_with_a_note(tmp_path):
    text = "date,close\n" + "\n".join(f"2020-02-{d:02d},{50 + d}" for d in range(1, 20))
    history = load_csv(write(tmp_path / "c.csv", text))
    assert history.frame["adj_close"].equals(history.frame["close"])
    assert any("Adj Close" in n for n in history.notes)


def test_unsorted_dates_are_sorted_with_a_notice(tmp_path):
    lines = GOOD.splitlines()
    history = load_csv(write(tmp_path / "u.csv", "\n".join([lines[0]] + lines[1:][::-1])))
    assert history.frame.index.is_monotonic_increasing
    assert any("sorted" in n for n in history.notes)


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("2020-01-05", "2020-01-04"), "2020-01-04 appears more than once"),
    (lambda t: t.replace(",105,105,1005", ",,105,1005"), "missing value.*close.*2020-01-05"),
    (lambda t: t.replace(",105,105,1005", ",-105,105,1005"), "close is -105.0 on 2020-01-05.*positive"),
    (lambda t: t.replace(",105,105,1005", ",inf,105,1005"), "close is inf on 2020-01-05.*finite"),
    (lambda t: t.replace(",105,105,1005", ",abc,105,1005"), "close holds 'abc' on 2020-01-05"),
    (lambda t: t.replace("2020-01-07", "not-a-date"), "'not-a-date'.*not a date"),
    (lambda t: t.replace("Date,", "When,"), "no date column"),
    (lambda t: t.replace("Close,Adj Close", "C,AC"), "no Close or Adj Close column"),
])
def test_csv_errors_are_one_clear_line(tmp_path, mutate, message):
    with pytest.raises(ForecastError, match=message) as err:
        load_csv(write(tmp_path / "bad.csv", mutate(GOOD)))
    assert "\n" not in str(err.value)


def test_csv_missing_or_unreadable(tmp_path):
    with pytest.raises(ForecastError, match="not found"):
        load_csv(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00")
    with pytest.raises(ForecastError, match="(not a readable CSV|no date column|not UTF-8)"):
        load_csv(tmp_path / "bin.csv")
    with pytest.raises(ForecastError, match="has no data rows"):
        load_csv(write(tmp_path / "empty.csv", ""))
