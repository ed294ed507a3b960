"""Walk-forward backtests: honest by construction, deterministic, reported and tracked."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from forecast.cli import main
from forecast.commands.backtest import backtest as run_backtest
from forecast.data.load import load_history
from forecast.commands.compare import compare as run_compare
from forecast.config.settings import (BacktestConfig, BacktestSettings, CompareConfig, DataSettings, NetworkSettings,
    TrainSettings)
from forecast.data.datamodule import WindowDataModule, training_rows
from forecast.data.windows import build_series
from forecast.engine.walkforward import make_folds
from forecast.errors import ForecastError

QUIET = dict(echo=lambda line: None)
TINY_NET = NetworkSettings(hidden_size=4)
TINY_TRAIN = TrainSettings(max_epochs=2, patience=1, batch_size=64, accelerator="cpu", seed=3)


def write_prices(path, n=700, seed=0, perturb_after=None):
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, n)
    dates = pd.bdate_range("2010-01-04", periods=n)
    if perturb_after is not None:
        later = dates > pd.Timestamp(perturb_after)
        r[later] = np.random.default_rng(99).normal(0, 0.03, later.sum())
    close = 1000 * np.exp(np.cumsum(r))
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close, "High": close * 1.004,
                  "Low": close * 0.996, "Adj Close": close}).to_csv(path, index=False)
    return path


def backtest(csv, models="lstm,ridge,mean,naive", jobs=1, out="bt", track=False, horizon=1, **settings):
    cfg = BacktestConfig(data=DataSettings(csv=str(csv), lookback=10, horizon=horizon), network=TINY_NET,
                         train=TINY_TRAIN, backtest=BacktestSettings(models=models.split(","), refit_every=100,
                                                                     test_start="2011-06-01", jobs=jobs, **settings),
                         out=out, track=track)
    return run_backtest(cfg, **QUIET)


def test_changing_the_future_leaves_past_forecasts_unchanged(tmp_path):
    cut = "2011-11-15"  # inside the third fold
    base = backtest(write_prices(tmp_path / "a.csv"), out="a").predictions
    moved = backtest(write_prices(tmp_path / "b.csv", perturb_after=cut), out="b").predictions
    past = base["date"] <= pd.Timestamp(cut)
    assert past.sum() > 200 and (~past).sum() > 100
    pd.testing.assert_frame_equal(base[past], moved[past])           # bit for bit
    assert not np.allclose(base.loc[~past, "y_pred"], moved.loc[~past, "y_pred"])


def test_fold_training_data_and_scaler_come_strictly_before_the_fold(tmp_path):
    series = build_series(load_history(DataSettings(csv=str(write_prices(tmp_path / "p.csv")))), "return", ["returns"])
    folds = make_folds(series, 10, 3, BacktestSettings(refit_every=100, test_start="2011-06-01"))
    assert len(folds) >= 3
    for fold in folds:
        first_target_day = fold.split.test[0] + 1
        assert fold.split.train.max() + 3 < first_target_day and fold.split.val.max() + 3 < first_target_day
        dm = WindowDataModule(series, 10, 3, split=fold.split)
        dm.setup("fit")
        rows = series.features[training_rows(fold.split.train, 10)]
        np.testing.assert_allclose(dm.scaler.feature_mean_, StandardScaler().fit(rows).mean_)
        np.testing.assert_allclose(dm.scaler.feature_scale_, StandardScaler().fit(rows).scale_)
    rolling = make_folds(series, 10, 1, BacktestSettings(refit_every=100, test_start="2011-06-01",
                                                         window="rolling", train_length=200))
    assert all(len(f.split.train) + len(f.split.val) <= 200 for f in rolling)


def test_same_seed_same_predictions_whatever_the_jobs(tmp_path):
    csv = write_prices(tmp_path / "p.csv")
    one = backtest(csv, models="rnn,gru,naive", out="one")
    two = backtest(csv, models="rnn,gru,naive", jobs=2, out="two")
    assert (tmp_path / "one" / "predictions.csv").read_bytes() == (tmp_path / "two" / "predictions.csv").read_bytes()
    assert len(one.predictions) == len(two.predictions) > 0


def test_warm_start_chains_the_folds(tmp_path):
    csv = write_prices(tmp_path / "p.csv")
    cold = backtest(csv, models="gru,naive", out="c").predictions
    warm = backtest(csv, models="gru,naive", warm_start=True, out="w").predictions
    assert sorted(warm["fold"].unique()) == [1, 2, 3, 4]
    first = warm["fold"] == 1
    pd.testing.assert_frame_equal(cold[first], warm[first])          # fold 1 starts from scratch either way
    gru = warm["model"] == "gru"
    assert not np.allclose(cold.loc[gru & ~first, "y_pred"], warm.loc[gru & ~first, "y_pred"])


def synthetic_backtest(kind, n, models, hidden, epochs, lookback=10):
    cfg = BacktestConfig(
        data=DataSettings(synthetic=kind, synthetic_length=n, synthetic_noise=0.01, synthetic_seed=5, lookback=lookback),
        network=NetworkSettings(hidden_size=hidden),
        train=TrainSettings(max_epochs=epochs, patience=4, batch_size=32, learning_rate=3e-3, accelerator="cpu", seed=1),
        backtest=BacktestSettings(models=models.split(","), refit_every=n // 4, test_start=None), track=False,
        out=f"{kind}")
    return run_backtest(cfg, **QUIET)


def test_no_model_finds_skill_in_a_random_walk():
    result = synthetic_backtest("rw", 1600, "lstm,ridge,mean,naive", hidden=8, epochs=4)
    for model, metrics in result.metrics.items():
        assert metrics["r2_oos"] < 0.01, model
    saved = json.loads((result.out_dir / "metrics.json").read_text())
    assert saved["spa"]["benchmark"] == "naive" and saved["spa"]["pvalue"] > 0.05
    for model, values in saved["overall"].items():
        assert {"pt_stat", "pt_pvalue", "always_up_hit_rate", "in_mcs", "mcs_pvalue"} <= set(values), model
        assert "dir_acc_pvalue" not in values
    assert saved["overall"]["naive"]["in_mcs"] is True
    assert "better than naive (SPA, MCS)" not in saved["verdicts"].values()


def test_networks_reach_the_best_possible_error_on_ar2():
    from forecast.data.synthetic import AR2, simulate_returns

    result = synthetic_backtest("ar2", 2400, "gru,lstm,ridge,naive", hidden=16, epochs=15)
    # The best possible forecast is the true AR(2) mean; its error on the test days is the noise there.
    r = simulate_returns("ar2", 2400, 0.01, 5)
    noise = r[2:] - AR2[0] * r[1:-1] - AR2[1] * r[:-2]
    y = result.predictions.loc[result.predictions["model"] == "naive", "y_true"].to_numpy()
    np.testing.assert_allclose(y, r[-len(y):])
    optimum = np.sqrt(np.mean(noise[-len(y):] ** 2))
    for model in ("gru", "lstm", "ridge"):
        assert result.metrics[model]["rmse"] / optimum < 1.05, (model, result.metrics[model]["rmse"])
        assert result.leaderboard.set_index("model").loc[model, "verdict"] == "better than naive (SPA, MCS)"
    assert result.metrics["naive"]["rmse"] / optimum > 1.1


def test_report_figures_and_mlflow_runs(tmp_path, capsys):
    import mlflow

    result = backtest(write_prices(tmp_path / "p.csv"), models="lstm,ridge", out="rep", track=True)
    out = tmp_path / "rep"
    for name in ("predictions.csv", "metrics.csv", "metrics.json", "config.yaml", "report.html", "equity.png",
                 "cumulative_gain.png", "forecasts.png", "fold_r2.png"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert html.count("src='data:image/png;base64,") == 4 and "Leaderboard" in html and "buy_and_hold" in html
    frame = pd.read_csv(out / "predictions.csv")
    assert list(frame.columns) == ["date", "model", "fold", "y_true", "y_pred"]
    assert set(frame["model"]) == {"lstm", "ridge", "naive"}
    assert frame.groupby("model").size().nunique() == 1
    assert set(result.trading) == {"lstm", "ridge", "buy_and_hold"}
    assert {"sharpe_long_flat", "cagr_long_short", "max_drawdown_long_flat", "turnover_long_short"} <= set(result.trading["lstm"])

    parent = mlflow.get_run(result.run_id)
    assert parent.data.tags["forecast.kind"] == "backtest" and parent.data.tags["data_digest"]
    children = mlflow.search_runs(experiment_names=["forecast/p"], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(children["tags.model"]) == ["lstm", "naive", "ridge"]
    names = {c for c in children.columns if c.startswith("metrics.")}
    assert {"metrics.r2_oos", "metrics.dm_pvalue", "metrics.rmse", "metrics.fold_r2_oos"} <= names
    history = mlflow.MlflowClient().get_metric_history(children.iloc[0]["run_id"], "fold_rmse")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert "report.html" in {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}

    table = run_compare(CompareConfig(ticker="p"), **QUIET)
    assert list(table["model"])[-1] == result.leaderboard["model"].iloc[-1]
    assert table["r2_oos"].is_monotonic_decreasing
    assert main(["compare", "--ticker", "p", "--metric", "rmse"]) == 0
    assert "best first by rmse" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--test-start", "2030-01-01"], "--test-start 2030-01-01 is outside the forecastable days"),
    (["--test-start", "2010-02-01"], "fold 1 (from 2010-02-01) has only"),
    (["--models", "lstm,prophet"], "unknown model 'prophet'; valid models: rnn, lstm, gru"),
    (["--models", "garch"], "model 'garch' does not forecast the return target"),
    (["--target", "volatility", "--models", "ewma", "--csv", "bad_range.csv"], "High is below Low on 2010-01-05"),
    (["--test-start", "June"], "--test-start must be a date YYYY-MM-DD, got 'June'"),
    (["--model", "lstm"], "unrecognized arguments: --model lstm"),
])
def test_bad_backtest_input_is_one_clear_line(tmp_path, capsys, args, message):
    write_prices(tmp_path / "p.csv")
    bad = pd.read_csv(tmp_path / "p.csv")
    bad.loc[1, "High"] = bad.loc[1, "Low"] * 0.9
    bad.to_csv(tmp_path / "bad_range.csv", index=False)
    argv = ["backtest", "--csv", "p.csv", "--lookback", "10", "--no-track", *args]
    with pytest.raises(SystemExit) if "unrecognized" in message else contextlib.nullcontext():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_volatility_target_backtest_scores_against_the_last_value(tmp_path):
    prices = pd.read_csv(write_prices(tmp_path / "p.csv"))
    spread = np.exp(np.abs(np.random.default_rng(1).normal(0, 0.006, len(prices))))   # a day's high/low range
    prices["High"], prices["Low"] = prices["Close"] * spread, prices["Close"] / spread
    prices.to_csv(tmp_path / "p.csv", index=False)
    cfg = BacktestConfig(data=DataSettings(csv=str(tmp_path / "p.csv"), lookback=10, target="volatility",
                                         features=["returns", "range"]),
                         network=TINY_NET, train=TINY_TRAIN,
                         backtest=BacktestSettings(models=["gru", "ewma", "garch", "ridge"], refit_every=200,
                                                   test_start="2011-06-01"), out="vol", track=False)
    result = run_backtest(cfg, **QUIET)
    assert set(result.metrics) == {"gru", "ewma", "garch", "ridge", "naive"}
    for model, values in result.metrics.items():
        assert np.isfinite(values["rmse"]) and np.isfinite(values["qlike"]), model
    frame = result.predictions
    naive = frame[frame["model"] == "naive"]
    # naive volatility = the last observed proxy: y_pred of day t is y_true of day t-1
    np.testing.assert_allclose(naive["y_pred"].to_numpy()[1:], naive["y_true"].to_numpy()[:-1])
    assert (frame.loc[frame["model"] == "garch", "y_pred"] > 0).all()
    assert "trading" not in result.leaderboard.columns and not result.trading


def test_multi_step_forecasts_are_scored_per_step(tmp_path):
    result = backtest(write_prices(tmp_path / "p.csv"), models="ridge,naive", horizon=3)
    frame = result.predictions
    assert list(frame.columns) == ["date", "model", "fold", "y_true", "y_pred", "step"]
    assert set(frame["step"]) == {1, 2, 3}
    prices = pd.read_csv(tmp_path / "p.csv", parse_dates=["Date"]).set_index("Date")["Adj Close"]
    returns = np.log(prices).diff()
    for step, rows in frame[frame["model"] == "ridge"].groupby("step"):
        np.testing.assert_allclose(rows["y_true"].to_numpy(), returns.loc[rows["date"]].to_numpy())
        assert result.metrics["ridge"][f"rmse_step{step}"] == pytest.approx(
            float(np.sqrt(np.mean((rows["y_true"] - rows["y_pred"]) ** 2))))
    step1 = frame[(frame["model"] == "ridge") & (frame["step"] == 1)]
    step3 = frame[(frame["model"] == "ridge") & (frame["step"] == 3)]
    # the same origins: step 3's day is two trading days after step 1's
    days = pd.DatetimeIndex(prices.index)
    assert (days.get_indexer(step3["date"]) - days.get_indexer(step1["date"]) == 2).all()
    assert result.metrics["ridge"]["rmse"] == result.metrics["ridge"]["rmse_step1"]
