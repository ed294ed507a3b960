"""Bad input gets one clear line and loses nothing; wrong results never finish with exit 0."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.ingest import cache_path, load_csv, load_ticker
from forecast.errors import ForecastError

TINY = ["--lookback", "5", "--hidden-size", "4", "--max-epochs", "1", "--accelerator", "cpu"]


def prices(n=300, start="2013-01-01", seed=0):
    dates = pd.bdate_range(start, periods=n)
    close = 1500 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))
    return pd.DataFrame({"Date": dates, "Close": close})


def one_line_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


# ---------------------------------------------------------------- dates

def test_day_first_dates_are_never_guessed(tmp_path, capsys):
    frame = prices(80, start="2013-01-02")
    frame.assign(Date=frame["Date"].dt.strftime("%d/%m/%Y")).to_csv(tmp_path / "dmy.csv", index=False)
    # 16/01/2013 somewhere: the file itself says day-first, so every row is read that way.
    history = load_csv(tmp_path / "dmy.csv")
    assert list(history.frame.index) == list(frame["Date"])
    # Only the first 8 rows (all days <= 12): either reading fits, so it must be stated.
    early = frame.head(8).assign(Date=frame["Date"].head(8).dt.strftime("%d/%m/%Y"))
    early.to_csv(tmp_path / "ambiguous.csv", index=False)
    with pytest.raises(ForecastError, match=r"say which with --date-format %d/%m/%Y or --date-format %m/%d/%Y"):
        load_csv(tmp_path / "ambiguous.csv")
    assert list(load_csv(tmp_path / "ambiguous.csv", "%d/%m/%Y").frame.index) == list(frame["Date"].head(8))
    one_line_error(capsys, ["fit", "--csv", str(tmp_path / "ambiguous.csv"), *TINY, "--no-track"], "--date-format")
    frame.assign(Date=frame["Date"].dt.strftime("%d/%m/%Y")).to_csv(tmp_path / "later.csv", index=False)
    assert main(["fit", "--csv", str(tmp_path / "later.csv"), "--date-format", "%d/%m/%Y", *TINY,
                 "--out", str(tmp_path / "fit")]) == 0
    capsys.readouterr()
    early.to_csv(tmp_path / "later.csv", index=False)   # predict reads the same file, now ambiguous
    one_line_error(capsys, ["predict", "--csv", str(tmp_path / "later.csv")], "--date-format")


def test_time_zone_offsets_keep_each_timestamps_own_date(tmp_path):
    text = "Date,Close\n2010-01-04T16:00-05:00,100\n2010-01-05 00:30:00+09:00,101\n2010-01-06T23:59:00-08:00,102\n"
    (tmp_path / "tz.csv").write_text(text)
    dates = load_csv(tmp_path / "tz.csv").frame.index
    assert list(dates.strftime("%Y-%m-%d")) == ["2010-01-04", "2010-01-05", "2010-01-06"]


@pytest.mark.parametrize("text, message", [
    ("Date,Close\n", "has no data rows"),
    ("Date,Close,close\n2010-01-04,1,1\n", "has two columns for close ('Close' and 'close')"),
    ("root:$6$secretsalt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n", "has no date column"),
])
def test_csv_problems_are_one_line_that_does_not_echo_the_file(tmp_path, text, message):
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(ForecastError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")) as err:
        load_csv(tmp_path / "x.csv")
    assert "secret" not in str(err.value) and "daemon" not in str(err.value)


def test_a_constant_price_is_flagged(tmp_path):
    frame = prices(50).assign(Close=100.0)
    frame.to_csv(tmp_path / "flat.csv", index=False)
    assert any("never changes" in note for note in load_csv(tmp_path / "flat.csv").notes)


def test_a_cache_with_the_wrong_columns_falls_back(isolated):
    path = cache_path(isolated / "cache", "^GSPC")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"foo": [1.0, 2.0]}, index=pd.DatetimeIndex(["2020-01-02", "2020-01-03"], name="date")).to_parquet(path)
    history = load_ticker("^GSPC", offline=True)
    assert history.source.startswith("bundled") and any("ignored unusable cache" in n for n in history.notes)


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("argv, message", [
    (["fit", "--learning-rate", "inf"], "--learning-rate must be a finite number"),
    (["fit", "--weight-decay", "nan"], "--weight-decay must be a finite number"),
    (["fit", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["backtest", "--cost-bps", "inf"], "--cost-bps must be a finite number"),
    (["fit", "--experiment", "x" * 600], "--experiment is 600 characters long"),
    (["fit", "--target", "price"], "--target must be one of return, volatility, got 'price'"),
])
def test_non_finite_and_out_of_range_settings(capsys, argv, message):
    one_line_error(capsys, [*argv, "--offline"], message)


def test_a_non_utf8_config_file_is_one_line(tmp_path, capsys):
    (tmp_path / "latin.yaml").write_bytes("data:\n  ticker: caf\xe9\n".encode("latin-1"))
    one_line_error(capsys, ["fit", "--config", str(tmp_path / "latin.yaml")], "is not UTF-8 text")


def test_lower_case_ticker_is_the_same_index(isolated, capsys):
    assert main(["fit", "--ticker", "^gspc", "--offline", *TINY, "--out", "fit"]) == 0
    assert len(mlflow.search_runs(experiment_names=["forecast/^GSPC"])) == 1
    assert main(["predict", "--ticker", "^gspc", "--offline"]) == 0
    assert "forecast for 2019-01-02" in capsys.readouterr().out


def test_a_repeated_model_runs_once(tmp_path, capsys):
    prices(400).to_csv(tmp_path / "p.csv", index=False)
    assert main(["backtest", "--csv", str(tmp_path / "p.csv"), "--models", "ridge,ridge,mean", "--test-start",
                 "2014-01-01", "--lookback", "5", "--no-track", "--jobs", "64", "--out", str(tmp_path / "bt")]) == 0
    out = capsys.readouterr().out
    assert "ridge more than once" in out and "--jobs 64 capped at" in out
    frame = pd.read_csv(tmp_path / "bt" / "predictions.csv")
    assert frame.groupby("model").size().nunique() == 1 and set(frame["model"]) == {"ridge", "mean", "naive"}


# ---------------------------------------------------------------- output folders

def test_out_must_be_new_empty_or_an_earlier_output(isolated, capsys):
    argv = ["fit", "--offline", *TINY]
    one_line_error(capsys, [*argv, "--out", "."], "would hold the tracking store")
    (isolated / "notes").mkdir()
    (isolated / "notes" / "private.txt").write_text("mine")
    one_line_error(capsys, [*argv, "--out", "notes"], "is not empty and has no manifest.json")
    (isolated / "afile").write_text("x")
    one_line_error(capsys, [*argv, "--out", "afile"], "is a file")

    assert main([*argv, "--out", "run"]) == 0
    capsys.readouterr()
    manifest = json.loads((isolated / "run" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"predictions.csv", "metrics.json", "config.yaml", "forecasts.png"}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(manifest["run_id"])}
    assert artifacts == set(manifest["files"]) | {"manifest.json", "network"}   # what the run wrote, and the model
    one_line_error(capsys, [*argv, "--out", "run"], "add --overwrite")
    assert main([*argv, "--out", "run", "--overwrite"]) == 0
    capsys.readouterr()
    (isolated / "run" / "stray.txt").write_text("x")
    one_line_error(capsys, [*argv, "--out", "run", "--overwrite"], "does not list (e.g. 'stray.txt')")


def test_compare_quotes_what_the_user_types(isolated, capsys):
    one_line_error(capsys, ["compare", "--ticker", "x' or '1'='1"], "no finished backtests")
    assert not (isolated / "mlflow.db").exists()


def test_predict_without_runs_leaves_no_store_behind(isolated, capsys):
    one_line_error(capsys, ["predict", "--offline"], "run `forecast fit` first")
    assert not (isolated / "mlflow.db").exists() and not (isolated / "mlruns").exists()


def test_a_diverging_loss_stops_with_a_failed_run(isolated, capsys):
    err = one_line_error(capsys, ["fit", "--offline", *TINY, "--max-epochs", "3", "--learning-rate", "1e30",
                                  "--gradient-clip", "0", "--out", "fit"], "training diverged")
    assert "lower --learning-rate" in err
    runs = mlflow.search_runs(experiment_names=["forecast/^GSPC"])
    assert list(runs["status"]) == ["FAILED"]
    assert not (isolated / "fit" / "manifest.json").exists()
