"""Panels: several series on one walk-forward calendar, verdicts per series and across, no look-ahead."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.stats.cross_section import holm, newey_west_t, rank_ic

SMALL = ["--lookback", "5", "--hidden-size", "4", "--max-epochs", "2", "--accelerator", "cpu", "--refit-every", "60"]


def write_series(path, days, seed, perturb_after=None, lead=None) -> str:
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, len(days))
    if lead is not None:                          # follows another series' return of the day before
        r = 0.5 * np.r_[0.0, lead[:-1]] + rng.normal(0, 0.005, len(days))
    if perturb_after is not None:
        late = days > pd.Timestamp(perturb_after)
        r[late] += rng.normal(0, 0.05, late.sum())
    pd.DataFrame({"Date": [f"{d:%Y-%m-%d}" for d in days], "Close": 100 * np.exp(np.cumsum(r))}).to_csv(path, index=False)
    return str(path)


def three_calendars(folder, perturb_after=None) -> str:
    """Three series: every weekday; missing every 9th weekday (another exchange's holidays); starting later."""
    days = pd.bdate_range("2012-01-02", periods=600)
    a = write_series(folder / "alpha.csv", days, 1, perturb_after)
    b = write_series(folder / "beta.csv", days[np.arange(600) % 9 != 4], 2, perturb_after)
    c = write_series(folder / "gamma.csv", days[150:], 3, perturb_after)
    return ",".join([a, b, c])


def test_a_panel_backtest_judges_each_series_and_across_them(tmp_path, capsys):
    csv = three_calendars(tmp_path)
    assert main(["backtest", "--csv", csv, "--models", "gru,ridge,naive", *SMALL, "--out", "p"]) == 0, \
        capsys.readouterr().err
    out = capsys.readouterr().out
    assert "panel of 3 series (alpha, beta, gamma)" in out and "Holm across series" in out
    frame = pd.read_csv(tmp_path / "p" / "predictions.csv", parse_dates=["date"])
    assert list(frame.columns[:3]) == ["date", "series", "model"]
    for name, file in zip(("alpha", "beta", "gamma"), csv.split(",")):
        own = pd.to_datetime(pd.read_csv(file)["Date"])
        days = frame.loc[(frame["series"] == name) & (frame["model"] == "naive"), "date"]
        assert days.isin(own).all() and days.is_unique           # only its own trading days, each once
    # one calendar: a fold covers the same dates on every series
    spans = frame.groupby(["fold", "series"])["date"].agg(["min", "max"]).reset_index()
    for fold, part in spans.groupby("fold"):
        assert (part["max"].max() - part["min"].min()).days < 120, part
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert set(metrics["series"]) == {"alpha", "beta", "gamma"} and len(metrics["holm"]) == 3
    assert {"gru", "ridge", "naive"} <= set(metrics["pooled"])
    assert (tmp_path / "p" / "r2_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    # the equal-weight portfolio: each day the mean over the series trading that day of sign-rule returns after costs
    ridge = frame[frame["model"] == "ridge"].sort_values(["series", "date"])
    pos = (ridge["y_pred"] > 0).astype(float)
    assert 0.2 < pos.mean() < 0.8                                     # the rule trades, so costs count
    cost = pos.groupby(ridge["series"]).diff().fillna(pos).abs() * 1.0 / 1e4     # --cost-bps 1, the default
    daily = (pos * np.expm1(ridge["y_true"]) - cost).groupby(ridge["date"]).mean()
    assert metrics["portfolio"]["ridge"]["total_return_long_flat"] == pytest.approx(np.prod(1 + daily) - 1, rel=1e-9)
    assert (tmp_path / "p" / "portfolio_equity.png").read_bytes()[:4] == b"\x89PNG"
    assert "Holm across series" in (tmp_path / "p" / "report.html").read_text()
    import mlflow

    runs = {r.data.tags.get("model"): r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert {"gamma.r2_oos", "alpha.rmse", "pooled.r2_oos", "r2_oos"} <= set(runs["gru"].data.metrics)
    capsys.readouterr()
    assert main(["compare"]) == 0                              # panel runs in the cross-backtest leaderboard
    out = capsys.readouterr().out
    assert "alpha+2" in out and "of 3 series (SPA, MCS, Holm)" in out


def test_changing_every_series_after_a_date_leaves_earlier_forecasts_unchanged(tmp_path):
    args = ["backtest", "--models", "gru,ridge,naive", "--covariates", "panel", *SMALL, "--no-track"]
    assert main([*args, "--csv", three_calendars(tmp_path), "--out", "a"]) == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    cut = "2014-01-20"
    assert main([*args, "--csv", three_calendars(moved, perturb_after=cut), "--out", "b"]) == 0
    a, b = (pd.read_csv(tmp_path / n / "predictions.csv", parse_dates=["date"]) for n in ("a", "b"))
    early = a["date"] <= pd.Timestamp(cut)
    assert early.sum() > 100 and (~early).sum() > 100
    pd.testing.assert_frame_equal(a[early].reset_index(drop=True), b[early].reset_index(drop=True))


def test_a_one_series_panel_is_the_single_series_backtest_byte_for_byte(tmp_path):
    args = ["backtest", "--offline", "--models", "gru,ridge,naive", "--test-start", "2018-06-01", *SMALL, "--no-track"]
    assert main([*args, "--tickers", "^GSPC", "--out", "panel"]) == 0
    assert main([*args, "--ticker", "^GSPC", "--out", "single"]) == 0
    assert (tmp_path / "panel" / "predictions.csv").read_bytes() == (tmp_path / "single" / "predictions.csv").read_bytes()


def test_a_long_csv_with_a_ticker_column_is_a_panel(tmp_path, capsys):
    days = pd.bdate_range("2015-01-02", periods=400)
    rows = [pd.read_csv(write_series(tmp_path / f"{n}.csv", days, s)).assign(Ticker=n) for s, n in ((1, "X"), (2, "Y"))]
    pd.concat(rows).to_csv(tmp_path / "long.csv", index=False)
    assert main(["backtest", "--csv", str(tmp_path / "long.csv"), "--models", "ridge,naive", *SMALL, "--no-track",
                 "--out", "l"]) == 0
    assert set(pd.read_csv(tmp_path / "l" / "predictions.csv")["series"]) == {"X", "Y"}
    assert main(["fit", "--csv", str(tmp_path / "long.csv"), "--model", "ridge", *SMALL[:-2], "--no-track",
                 "--out", "f"]) == 0
    assert set(pd.read_csv(tmp_path / "f" / "predictions.csv")["series"]) == {"X", "Y"}


@pytest.mark.parametrize("args, message", [
    (["--tickers", "^GSPC,^NOPE"], "no data for ticker '^NOPE'"),
    (["--tickers", "^GSPC,^gspc"], "--tickers names ^GSPC twice"),
    (["--tickers", "^GSPC,^IXIC", "--ticker", "^DJI"], "--ticker and --tickers were both given"),
    (["--ticker", "^GSPC", "--covariates", "panel"], "--covariates panel means every other series of a panel"),
])
def test_bad_panels_are_one_line_before_anything_trains(args, message, capsys):
    assert main(["backtest", "--offline", *args, *SMALL, "--no-track"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_two_series_with_one_name_are_refused(tmp_path, capsys):
    days = pd.bdate_range("2015-01-02", periods=300)
    (tmp_path / "b").mkdir()
    files = [write_series(tmp_path / "x.csv", days, 1), write_series(tmp_path / "b" / "x.csv", days, 2)]
    assert main(["backtest", "--csv", ",".join(files), *SMALL, "--no-track"]) == 2
    assert "two series of the panel are named 'x'" in capsys.readouterr().err


def test_holm_rank_ic_and_newey_west():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    rng = np.random.default_rng(0)
    outcomes = rng.normal(size=(200, 6))
    perfect = rank_ic(outcomes * 2 + 1, outcomes)
    assert perfect["rank_ic"] == pytest.approx(1.0) and perfect["ic_days"] == 200
    none = rank_ic(rng.normal(size=(200, 6)), outcomes)
    assert abs(none["rank_ic"]) < 0.1 and none["rank_ic_pvalue"] > 0.01
    assert rank_ic(outcomes[:, :4], outcomes[:, :4])["ic_days"] == 0            # fewer than five series
    assert newey_west_t(np.ones(10)) != newey_west_t(np.ones(10))                 # no variance: NaN


def follower_panel(folder, n=900) -> str:
    """Three series on one calendar: lead (a random walk), follow (0.6 times lead's return of the day before, plus
    noise: its best forecast needs lead) and other (a random walk)."""
    days = pd.bdate_range("2012-01-02", periods=n)
    lead = np.random.default_rng(7).normal(0, 0.01, n)
    files = [write_series(folder / "lead.csv", days, 7), write_series(folder / "follow.csv", days, 8, lead=lead),
             write_series(folder / "other.csv", days, 9)]
    return ",".join(files)


def test_a_series_that_follows_another_is_found_with_the_panel_as_covariates_and_not_without(tmp_path):
    """Local and global networks find what another series of the panel holds (--covariates panel), and neither
    invents it without: the simulated panel's known optimum at test size."""
    csv = follower_panel(tmp_path)
    args = ["backtest", "--csv", csv, "--models", "gru,gru-global,ridge,naive", "--lookback", "5", "--hidden-size",
            "8", "--max-epochs", "30", "--accelerator", "cpu", "--refit-every", "120", "--no-track"]
    assert main([*args, "--covariates", "panel", "--series-embedding", "--out", "with"]) == 0
    assert main([*args, "--out", "without"]) == 0
    r2 = {name: json.loads((tmp_path / name / "metrics.json").read_text())["series"]["follow"]["overall"]
          for name in ("with", "without")}
    for model in ("gru", "gru-global", "ridge"):
        assert r2["with"][model]["r2_oos"] > 0.4, (model, r2["with"][model]["r2_oos"])   # best possible ~0.59
        assert r2["without"][model]["r2_oos"] < 0.05, (model, r2["without"][model]["r2_oos"])


def test_a_global_network_on_one_series_is_its_local_cell(tmp_path):
    days = pd.bdate_range("2015-01-02", periods=500)
    csv = write_series(tmp_path / "one.csv", days, 3)
    assert main(["backtest", "--csv", csv, "--models", "gru,gru-global,naive", *SMALL, "--no-track", "--out", "o"]) == 0
    frame = pd.read_csv(tmp_path / "o" / "predictions.csv")
    local, shared = (frame[frame["model"] == m]["y_pred"].to_numpy() for m in ("gru", "gru-global"))
    np.testing.assert_array_equal(local, shared)


def test_a_volatility_panel_scores_direction_against_the_last_value(tmp_path):
    assert main(["backtest", "--csv", three_calendars(tmp_path), "--target", "volatility", "--models", "har,naive",
                 *SMALL, "--no-track", "--out", "v"]) == 0
    pooled = json.loads((tmp_path / "v" / "metrics.json").read_text())["pooled"]
    assert 0.3 < pooled["har"]["dir_acc"] < 0.95 and pooled["har"]["days"] > 300


def test_the_simulated_panel_bench_finds_the_covariates_when_given_and_invents_nothing_without(tmp_path, capsys):
    """`forecast bench --series panel` at test size: with the covariates, local and global networks clearly beat
    the univariate optimum on the two series that follow another; on their own past, nothing beats it."""
    from forecast.commands.panel_bench import bench_panel
    from forecast.config.settings import BenchConfig, BenchSettings, NetworkSettings, TrainSettings

    cfg = BenchConfig(network=NetworkSettings(hidden_size=16), train=TrainSettings(max_epochs=30, accelerator="cpu"),
                      bench=BenchSettings(models=["gru", "gru-global", "ridge"], series=["panel"],
                                          synthetic_length=1500), out=str(tmp_path / "b"), track=False)
    frame = bench_panel(cfg).set_index(["series", "inputs", "model"])
    for model in ("gru", "gru-global", "ridge"):
        for series in ("sim-follow", "sim-led"):         # best possible: 1 / sqrt(1 + 0.6^2) = 0.86 of the zero forecast
            assert frame.loc[(series, "covariates", model), "rmse_over_univariate"] < 0.93, (series, model)
            assert frame.loc[(series, "covariates", model), "rmse_over_full"] < 1.08, (series, model)
        for series in ("sim-lead", "sim-follow", "sim-led"):
            assert frame.loc[(series, "own", model), "rmse_over_univariate"] > 0.99, (series, model)
    assert "RMSE / the full optimum" in capsys.readouterr().out


def test_the_simulated_panel_knows_each_series_conditional_mean():
    from forecast.data.synthetic import simulate_panel

    sim = simulate_panel(4000, 0.01, 3)
    assert [h.name for h in sim.histories] == ["sim-lead", "sim-follow", "sim-led"]
    returns = {h.name: np.log(h.frame["adj_close"]).diff().iloc[1:] for h in (*sim.histories, sim.covariate)}
    lead, follow, signal = returns["sim-lead"], returns["sim-follow"], returns["sim-signal"]
    np.testing.assert_allclose(sim.means["sim-follow"].iloc[2:], 0.6 * lead.shift(2).iloc[2:], atol=1e-12)
    np.testing.assert_allclose(sim.means["sim-led"].iloc[1:], 0.6 * signal.shift(1).iloc[1:], atol=1e-12)
    assert abs((follow - sim.means["sim-follow"]).std() / 0.01 - 1) < 0.05          # what is left is the noise
    assert abs(np.corrcoef(follow.iloc[1:], follow.shift(1).iloc[1:])[0, 1]) < 0.05  # white noise on its own


def test_a_global_network_reads_one_column_layout_for_every_series():
    """Under --covariates panel each series has the others as covariates: a global network's inputs put each in
    one column for every series (a series' own slot zero), not 'the first other series' in column 1."""
    from forecast.data.covariate_spec import PANEL
    from forecast.config.settings import DataSettings
    from forecast.data.panels import load_panel
    from forecast.data.windows import shared_layout

    panel = load_panel(DataSettings(synthetic="panel", synthetic_length=300, covariates=[PANEL], lookback=5),
                       echo=lambda _: None)
    assert panel.series[0].feature_names != panel.series[1].feature_names
    laid = shared_layout(list(panel.series))
    names = laid[0].feature_names
    assert all(s.feature_names == names for s in laid) and len(names) == 1 + 2 * 4
    follow = laid[1]
    np.testing.assert_array_equal(follow.features[:, names.index("sim-follow:return")], 0.0)
    own = panel.series[0]
    np.testing.assert_array_equal(laid[0].features[:, [names.index(n) for n in own.feature_names]], own.features)
    assert shared_layout([own, own])[0] is own


def test_a_distribution_panel_tests_var_per_series_and_scores_quintile_ranks(tmp_path, capsys):
    """--distribution on a panel of five: each series' distribution verdicts (VaR tests) and figures of its own,
    and the ranked probability score of the quintile ranks over the horizon next to the uninformed 0.16."""
    days = pd.bdate_range("2012-01-02", periods=500)
    rows = [pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Ticker": f"s{k}", "Close": 100 * np.exp(np.cumsum(
        np.random.default_rng(k).normal(0, 0.004 * (k + 1), len(days))))}) for k in range(5)]
    pd.concat(rows).to_csv(tmp_path / "five.csv", index=False)
    assert main(["backtest", "--csv", str(tmp_path / "five.csv"), "--distribution", "normal", "--horizon", "3",
                 "--models", "gru,hist", *SMALL, "--refit-every", "100", "--no-track", "--out", "d"]) == 0, \
        capsys.readouterr().err
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    for name in ("s0", "s4"):
        assert "kupiec_pvalue" in metrics["series"][name]["overall"]["gru"]
        assert set(metrics["series"][name]["distribution"]["coverage_verdicts"]) == {"gru", "hist", "riskmetrics"}
        assert (tmp_path / "d" / f"{name}_var_hits.png").read_bytes()[:4] == b"\x89PNG"
    rps = metrics["ranked_probability"]
    assert set(rps) == {"gru", "hist", "riskmetrics"}
    for values in rps.values():
        assert 0.05 < values["rps"] < 0.25 and values["rps_days"] > 100
    assert "ranked probability score" in capsys.readouterr().out


def test_fit_on_a_panel_logs_a_network_per_series_and_predict_forecasts_each(tmp_path, capsys):
    """`fit --csv a,b,c` trains the model on every series (one split in time), scores each next to naive and logs
    each series' network; `predict` with the same panel forecasts the next day of every series, each from its
    own network and last days; another panel is refused in one line."""
    csv = three_calendars(tmp_path)
    assert main(["fit", "--csv", csv, "--model", "gru", "--covariates", "panel", *SMALL[:-2], "--out", "f"]) == 0, \
        capsys.readouterr().err
    out = capsys.readouterr().out
    assert "split: panel of 3 series" in out and "gamma: test metrics" in out
    frame = pd.read_csv(tmp_path / "f" / "predictions.csv", parse_dates=["date"])
    starts = frame.groupby("series")["date"].min()
    assert (starts.max() - starts.min()).days < 10                      # one split in time for every series
    assert set(json.loads((tmp_path / "f" / "metrics.json").read_text())["beta"]) == {"gru", "naive"}
    from forecast.commands.predict import predict
    from forecast.config.settings import PredictConfig

    predictions = predict(PredictConfig(csv=csv))
    assert [p.origin for p in predictions] == [pd.Timestamp(pd.read_csv(f)["Date"].iloc[-1]) for f in csv.split(",")]
    assert len({round(float(p.forecasts[0]), 12) for p in predictions}) == 3      # each series its own forecast
    assert "next trading day, every series" in capsys.readouterr().out
    two = ",".join(csv.split(",")[:2])
    assert main(["predict", "--csv", two]) == 2                                  # another panel: no fit of it
    assert "no finished fit of 'alpha+1'" in capsys.readouterr().err
    assert main(["predict", "--csv", two, "--run-id", predictions[0].run_id]) == 2
    assert "is a fit of alpha,beta,gamma, not of the panel alpha,beta" in capsys.readouterr().err


def test_a_global_network_is_not_what_a_panel_fit_logs(tmp_path, capsys):
    assert main(["fit", "--csv", three_calendars(tmp_path), "--model", "gru-global", "--no-track"]) == 2
    assert "compare global networks in `forecast backtest`, or fit gru" in capsys.readouterr().err
