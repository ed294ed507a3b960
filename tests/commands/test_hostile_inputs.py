"""The second round of hostile input (issue 17): alias bombs, secrets in URLs, odd tracking addresses,
misleading messages and data accepted without a note. Each answers in one line (exit 2) or says what
it saw; nothing prints a password."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from forecast.cli import main
from forecast.config.yaml_io import to_flat_dict
from forecast.data.ingest import load_csv, load_ticker
from forecast.errors import redact

TINY = ["--lookback", "5", "--hidden-size", "4", "--max-epochs", "1", "--accelerator", "cpu"]
SHORT_SYNTHETIC = ["--synthetic", "rw", "--synthetic-length", "300"]


def prices(n=300, start="2013-01-01", freq="B", seed=0):
    dates = pd.date_range(start, periods=n, freq=freq)
    close = 1500 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))
    return pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close})


def one_line_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def alias_bomb(levels: int, width: int, where: str) -> str:
    """A "billion laughs" as the value of ``where`` (``model``, ``data.ticker``): each level a list of the
    level before and ``width - 1`` aliases of it, anchored inline; ``width ** levels`` leaves."""
    value = "&l0 lol"
    for i in range(1, levels + 1):
        value = f"&l{i} [{value}{f', *l{i - 1}' * (width - 1)}]"
    key, _, sub = where.partition(".")
    return f"{key}: {value}\n" if not sub else f"{key}:\n  {sub}: {value}\n"


# ---------------------------------------------------------------- YAML

@pytest.mark.parametrize("where", ["model", "data.ticker"])
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys, where):
    # 5 levels of 25: 120 aliases, 9.8 million leaves (the old message held their repr: 70 MB; 9 levels: 9 GB).
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(5, 25, where))
    err = one_line_error(capsys, ["fit", "--config", str(path)], "more than 100 YAML aliases")
    assert "bomb.yaml" in err


@pytest.mark.parametrize("command, where", [("fit", "model"), ("backtest", "backtest.models")])
def test_messages_quote_only_a_short_prefix_of_a_value(tmp_path, capsys, command, where):
    # 4 levels of 25: 96 aliases, under the limit, 390,625 leaves: the message shows a prefix of them only.
    (tmp_path / "wide.yaml").write_text(alias_bomb(4, 25, where))
    err = one_line_error(capsys, [command, "--config", str(tmp_path / "wide.yaml")], "takes one value")
    assert len(err) < 300, err[:300]
    long_value = "volatility" * 40
    err = one_line_error(capsys, [command, "--target", long_value], "--target must be one of")
    assert long_value not in err and len(err) < 200, err


# ---------------------------------------------------------------- secrets

def test_a_tracking_uri_password_is_masked_and_its_host_read_right(capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:s3cret@127.0.0.1:9/")
    err = one_line_error(capsys, ["fit", *SHORT_SYNTHETIC, *TINY], "tracking server http://user:***@127.0.0.1:9/")
    assert "s3cret" not in err
    # The host is 127.0.0.1 (refused), not "user:s3cret@127.0.0.1" (a name that does not resolve).
    assert "Name or service not known" not in err and "does not answer" in err


def test_a_storage_password_never_reaches_printed_settings_or_params(capsys):
    url = "postgresql://user:s3cret@db.example:5432/sweeps"
    assert main(["sweep", *SHORT_SYNTHETIC, "--storage", url, "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "storage: postgresql://user:***@db.example:5432/sweeps" in out
    from forecast.config.yaml_io import resolve
    from forecast.config.sweep_settings import SweepConfig

    params = to_flat_dict(resolve(SweepConfig, None, {"storage": url}))
    assert params["sweep.storage"] == "postgresql://user:***@db.example:5432/sweeps"
    assert redact(f"no answer from {url} (host db.example)") == \
        "no answer from postgresql://user:***@db.example:5432/sweeps (host db.example)"
    assert redact("postgresql://db/x?user=u&password=s3cret") == "postgresql://db/x?user=u&password=***"


# ---------------------------------------------------------------- tracking addresses

@pytest.mark.parametrize("uri, message", [
    ("sqlite:////proc/forecast-x.db", "sqlite:////proc/forecast-x.db"),
    ("{tmp}/runs-folder", "is a folder"),
    ("foo://bar", "scheme MLflow does not know"),
    ("sqlite:///{tmp}/notes.db", "is not a SQLite database"),
])
def test_an_unusable_tracking_address_is_one_line(isolated, capsys, monkeypatch, uri, message):
    (isolated / "runs-folder").mkdir()
    (isolated / "notes.db").write_text("not a database\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(tmp=isolated))
    err = one_line_error(capsys, ["fit", *SHORT_SYNTHETIC, *TINY, "--out", "fit"], message)
    assert "MLFLOW_TRACKING_URI" in err or "--no-track" in err
    assert (isolated / "notes.db").read_text() == "not a database\n"


# ---------------------------------------------------------------- messages

@pytest.mark.parametrize("options", [{"sep": ";"}, {"sep": ";", "decimal": ","}])
def test_a_semicolon_csv_is_named_as_such(tmp_path, capsys, options):
    prices(60).to_csv(tmp_path / "semi.csv", index=False, **options)
    err = one_line_error(capsys, ["fit", "--csv", str(tmp_path / "semi.csv"), *TINY, "--no-track"],
                         "looks semicolon-separated; save it with commas")
    assert "no date column" not in err


@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_a_horizon_longer_than_the_data_is_blamed(capsys, command):
    err = one_line_error(capsys, [command, *SHORT_SYNTHETIC, "--horizon", "5000", "--no-track"],
                         "--horizon 5000 is too long for this data")
    assert "use a shorter --horizon" in err and "shorter --lookback" not in err


def test_predict_from_a_csv_without_a_fit_names_the_fit_of_that_csv(tmp_path, capsys):
    from forecast.tracking.runs import open_store

    prices(60).to_csv(tmp_path / "data.csv", index=False)
    open_store()                                # a store without a fit of this CSV
    err = one_line_error(capsys, ["predict", "--csv", str(tmp_path / "data.csv")], "no finished fit of 'data'")
    assert f"run `forecast fit --csv {tmp_path / 'data.csv'}` first" in err and "--ticker data" not in err


def test_figures_of_a_non_latin_name_print_no_glyph_warnings(tmp_path, capsys):
    prices(120).to_csv(tmp_path / "数据.csv", index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", "--csv", str(tmp_path / "数据.csv"), *TINY, "--no-track", "--out", str(tmp_path / "输出")]) == 0
    assert (tmp_path / "输出" / "forecasts.png").is_file()
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    assert "Glyph" not in capsys.readouterr().err


# ---------------------------------------------------------------- data notes

def _notes(frame, tmp_path) -> list[str]:
    frame.to_csv(tmp_path / "p.csv", index=False)
    return [n for n in load_csv(tmp_path / "p.csv").notes if "Adj Close" not in n]


def test_rows_on_weekends_are_counted_in_a_note(tmp_path, capsys):
    frame = prices(120, freq="D")          # calendar days: 34 Saturdays and Sundays
    assert _notes(frame, tmp_path) == [
        f"CSV {str(tmp_path / 'p.csv')!r}: 34 row(s) fall on a Saturday or Sunday, when exchanges do not trade "
        f"(first 2013-01-05); each counts as a trading day: check the dates"]
    assert main(["fit", "--csv", str(tmp_path / "p.csv"), *TINY, "--no-track", "--out", str(tmp_path / "f")]) == 0
    assert "note: " in capsys.readouterr().out


def test_a_gap_of_more_than_ten_trading_days_is_named(tmp_path):
    frame = prices(200)
    notes = _notes(pd.concat([frame.iloc[:100], frame.iloc[115:]]), tmp_path)
    assert len(notes) == 1 and f"no rows between {frame['Date'][99]} and {frame['Date'][115]} (15 trading days)" in notes[0]
    assert _notes(pd.concat([frame.iloc[:100], frame.iloc[110:]]), tmp_path) == []      # 10 days: a long holiday


def test_a_daily_move_beyond_forty_percent_is_named(tmp_path):
    frame = prices(200)
    frame.loc[150, "Close"] = 1e300             # one price off by orders of magnitude: two wild days
    notes = _notes(frame, tmp_path)
    assert len(notes) == 1 and f"the log return on {frame['Date'][150]} is +" in notes[0]
    assert "(1 more such day(s))" in notes[0]


def test_the_bundled_history_has_no_notes():
    assert load_ticker("^GSPC", offline=True).notes == []


def test_high_below_low_with_range_features_is_the_volatility_error(tmp_path, capsys):
    frame = prices(120)
    frame.assign(High=frame["Close"] * 0.99, Low=frame["Close"] * 1.01).to_csv(tmp_path / "hl.csv", index=False)
    argv = ["fit", "--csv", str(tmp_path / "hl.csv"), *TINY, "--no-track"]
    one_line_error(capsys, [*argv, "--target", "volatility"], "High is below Low on 2013-01-01 in hl; fix the data")
    one_line_error(capsys, [*argv, "--features", "returns,range"],
                   "--features range: High is below Low on 2013-01-01 in hl; fix the data")
