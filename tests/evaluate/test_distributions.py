"""Distribution forecasts: the head and its loss, the baselines, the columns, the scores, the coverage on known truth."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, stats

from forecast.cli import main
from forecast.commands.backtest import backtest as run_backtest
from forecast.data.load import load_history
from forecast.commands.fit import fit as run_fit
from forecast.config.settings import (BacktestConfig, BacktestSettings, DataSettings, FitConfig, NetworkSettings,
    TrainSettings)
from forecast.data.synthetic import garch_volatility
from forecast.data.windows import build_series, time_split
from forecast.evaluate.distribution_scores import METRICS, coverage_verdict
from forecast.stats.distributions import Distribution
from forecast.engine.forecasters import FitContext, make_forecaster, validation_nll
from forecast.models import get_entry
from forecast.models.distribution_head import DistributionHead, NegativeLogLikelihood, combine_members

QUIET = dict(echo=lambda line: None)
LEVELS = ["q01", "q05", "q50", "q95", "q99"]


def garch_series(n=3000, seed=1):
    return build_series(load_history(DataSettings(synthetic="garch", synthetic_length=n, synthetic_seed=seed)),
                        "return", ["returns"])


def _crps_by_integration(cdf, y: float) -> float:
    below, _ = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-12)
    above, _ = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf, epsabs=1e-12)
    return below + above


# ---------------------------------------------------------------- the distribution object and its scores


def test_crps_of_each_family_matches_numerical_integration():
    """Through ``Distribution``: the Student t is given by its standard deviation, the CRPS integrates its CDF."""
    y = np.array([0.013, -0.031])
    normal = Distribution("normal", [[0.001], [-0.002]], [[0.011], [0.02]])
    t = Distribution("student-t", [[0.001], [-0.002]], [[0.011], [0.02]], [[4.0], [2.6]])
    sample = np.random.default_rng(0).normal(0, 0.01, size=(2, 50))
    empirical = Distribution("empirical", sample.mean(1), sample.std(1), samples=sample)
    for i in range(2):
        mean, sd = normal.mean[i, 0], normal.sd[i, 0]
        assert normal.crps(y)[i] == pytest.approx(_crps_by_integration(lambda x: stats.norm.cdf(x, mean, sd), y[i]),
                                                  rel=1e-6)
        nu = t.df[i, 0]
        scale = sd * math.sqrt((nu - 2) / nu)
        assert stats.t.std(nu, 0, scale) == pytest.approx(sd)
        assert t.crps(y)[i] == pytest.approx(_crps_by_integration(lambda x: stats.t.cdf(x, nu, mean, scale), y[i]),
                                             rel=1e-6)
        # the sample's CDF is a step function: integrate (F(x) - 1{x >= y})^2 piece by piece
        edges = np.sort(np.r_[sample[i], y[i]])
        middle = (edges[:-1] + edges[1:]) / 2
        cdf = np.searchsorted(np.sort(sample[i]), middle, side="right") / sample.shape[1]
        exact = np.sum((cdf - (middle >= y[i])) ** 2 * np.diff(edges))
        assert empirical.crps(y)[i] == pytest.approx(exact, rel=1e-10)
    assert np.isnan(empirical.nll(y)).all()
    assert t.nll(y)[0] == pytest.approx(-stats.t.logpdf(y[0], 4.0, 0.001, 0.011 * math.sqrt(0.5)))


def test_coverage_verdict_needs_both_tests():
    assert coverage_verdict(0.3, 0.6) == "accepted"
    assert coverage_verdict(0.05, 0.05) == "accepted"
    assert coverage_verdict(0.01, 0.6) == "rejected (Kupiec)"
    assert coverage_verdict(0.3, 0.001) == "rejected (Christoffersen)"
    assert coverage_verdict(0.01, 0.001) == "rejected (Kupiec, Christoffersen)"
    assert coverage_verdict(0.3, float("nan")) == "untestable (too few hits)"



def test_scores_have_the_names_of_empty_scores_and_a_lone_model_is_its_own_confidence_set():
    from forecast.evaluate.distribution_scores import empty_scores, numeric, score_distributions

    n, rng = 80, np.random.default_rng(0)
    days, y = pd.bdate_range("2020-01-01", periods=n), rng.normal(0, 0.01, n)
    frame = pd.concat([pd.DataFrame({"date": days, "model": m, "y_true": y}) for m in ("riskmetrics", "t")])
    dists = {"riskmetrics": Distribution("normal", np.zeros(n), np.full(n, 0.01)),
             "t": Distribution("student-t", np.zeros(n), np.full(n, 0.012), np.full(n, 5.0))}
    values = numeric(score_distributions(frame, dists, [0.05, 0.5, 0.95]))
    for model in dists:
        assert set(values[model]) == set(METRICS) == set(empty_scores()), model
    assert values["t"]["crps"] == pytest.approx(np.mean(dists["t"].crps(y)))
    assert values["t"]["coverage_90"] == np.mean((y >= dists["t"].quantiles([0.05])[:, 0])
                                                 & (y <= dists["t"].quantiles([0.95])[:, 0]))
    assert values["t"]["var05_hits"] == np.mean(y < dists["t"].quantiles([0.05])[:, 0])
    alone = numeric(score_distributions(frame[frame["model"] == "t"], {"t": dists["t"]}, [0.5]))["t"]
    assert alone["crps_in_mcs"] is True and alone["crps_mcs_pvalue"] == 1.0 and math.isnan(alone["crps_dm_pvalue"])

# ---------------------------------------------------------------- the network's head


def test_head_keeps_sd_positive_and_df_above_two_and_the_nll_is_the_density():
    torch.manual_seed(0)
    head = DistributionHead(8, 2, "student-t")
    out = head(torch.zeros(1, 8))                                     # [1, H, P] at the initial biases
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out[0, :, 1].detach(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[0, :, 2].detach(), 5.0, rtol=1e-5)
    extreme = head(torch.randn(64, 8) * 1e3).detach()                # [64, 2, 3]
    assert (extreme[..., 1] > 0).all() and (extreme[..., 2] > 2).all() and torch.isfinite(extreme).all()
    params = torch.tensor([[[0.1, 0.8, 4.0]], [[-0.3, 1.7, 2.5]]])   # [B, H, P]
    y = torch.tensor([[0.5], [-2.0]])
    scale = params[..., 1] * torch.sqrt((params[..., 2] - 2) / params[..., 2])
    expected = -stats.t.logpdf(y.numpy(), params[..., 2].numpy(), params[..., 0].numpy(), scale.numpy()).mean()
    assert float(NegativeLogLikelihood("student-t")(params, y)) == pytest.approx(expected, rel=1e-5)
    expected = -stats.norm.logpdf(y.numpy(), params[..., 0].numpy(), params[..., 1].numpy()).mean()
    assert float(NegativeLogLikelihood("normal")(params[..., :2], y)) == pytest.approx(expected, rel=1e-5)
    # a seed ensemble: the mixture's mean and variance
    members = torch.tensor([[[[0.0, 1.0, 4.0]]], [[[2.0, 3.0, 6.0]]]])   # [S, B, H, P]
    combined = combine_members(members)[0, 0]
    assert combined.tolist() == pytest.approx([1.0, math.sqrt((1 + 9) / 2 + 1), 5.0])


def test_seed_ensemble_forecasts_one_distribution_that_saves_and_loads(tmp_path):
    from forecast.models.saved import load_network, save_network

    series = garch_series(800)
    split = time_split(len(series), 10, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 10, 1)
    train = TrainSettings(max_epochs=2, patience=1, accelerator="cpu", seeds=[1, 2])
    model = make_forecaster(get_entry("gru"), NetworkSettings(hidden_size=4, distribution="normal"), train, ctx,
                            progress=False).fit(series, split)
    dist = model.predict_distribution(series, split.test)
    members = [m.predict_distribution(series, split.test) for m in model.members]
    np.testing.assert_allclose(dist.mean, np.mean([m.mean for m in members], axis=0), rtol=1e-5, atol=1e-9)
    variance = np.mean([m.sd ** 2 for m in members], axis=0) + np.var([m.mean for m in members], axis=0)
    np.testing.assert_allclose(dist.sd, np.sqrt(variance), rtol=1e-5)
    assert math.isfinite(validation_nll(model)) and validation_nll(model) < 0     # returns of ~1%: log density > 0
    save_network(model.network_, tmp_path, 10, ["returns"], "return")
    x = torch.randn(3, 10, 1) * 0.01
    with torch.no_grad():
        np.testing.assert_array_equal(load_network(tmp_path)(x).numpy(), model.network_(x).numpy())


# ---------------------------------------------------------------- baselines


def test_distribution_baselines_against_their_definitions_and_the_truth():
    from arch import arch_model

    n = 3000
    series = garch_series(n)
    _, sigma = garch_volatility(n, 0.01, 1)
    split = time_split(len(series), 30, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 30, 1)
    fit = lambda name, family=None: make_forecaster(get_entry(name), NetworkSettings(distribution=family),
                                                    TrainSettings(), ctx).fit(series, split)
    test, r = split.test, series.returns
    train_end = split.val[-1] + 1                                    # the last training target day
    # RiskMetrics: the EWMA recursion, by hand
    rm = fit("riskmetrics").predict_distribution(series, test)
    s2 = np.mean(r[:train_end + 1] ** 2)
    for day in range(test[-1] + 1):
        s2 = 0.94 * s2 + 0.06 * r[day] ** 2
        if day == test[10]:
            assert rm.sd[10, 0] == pytest.approx(math.sqrt(s2), rel=1e-10)
    assert rm.family == "normal" and (rm.mean == 0).all()
    # GARCH-t: arch's own fit and its one-day forecast with those parameters
    gt = fit("garch-t")
    fitted = arch_model(r[:train_end + 1] * 100, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    assert gt.estimator.nu_ == pytest.approx(fitted.params["nu"], rel=1e-6)
    dist = gt.predict_distribution(series, test)
    fixed = arch_model(r[:test[50] + 1] * 100, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fix(fitted.params)
    expected = math.sqrt(fixed.forecast(horizon=1, reindex=False).variance.values[-1, 0]) / 100
    assert dist.sd[50, 0] == pytest.approx(expected, rel=1e-3)
    assert np.corrcoef(dist.sd[:, 0], sigma[test + 1])[0, 1] > 0.95   # it finds the true volatility
    # Historical simulation: the last 250 returns up to the origin
    hist = fit("hist").predict_distribution(series, test)
    np.testing.assert_array_equal(hist.samples[7], r[test[7] - 249:test[7] + 1])
    np.testing.assert_allclose(hist.quantiles([0.01])[7], np.quantile(r[test[7] - 249:test[7] + 1], 0.01))
    # HAR on the return: Student t from --distribution, zero mean, its sd follows the true volatility
    har = fit("har", "student-t").predict_distribution(series, test)
    assert har.family == "student-t" and (har.mean == 0).all() and (har.df > 2).all()
    assert np.corrcoef(har.sd[:, 0], sigma[test + 1])[0, 1] > 0.8


def test_distributions_see_nothing_after_the_origin():
    series = garch_series(1500)
    split = time_split(len(series), 30, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 30, 1)
    cut = split.test[40]
    changed = series.returns.copy()
    changed[cut + 1:] *= 5
    moved = replace(series, returns=changed, proxy=np.abs(changed), features=changed[:, None], target=changed)
    network = NetworkSettings(hidden_size=4, distribution="student-t")
    train = TrainSettings(max_epochs=1, accelerator="cpu")
    for name in ("riskmetrics", "garch-t", "hist", "har", "gru"):
        before = make_forecaster(get_entry(name), network, train, ctx, progress=False).fit(series, split)
        after = make_forecaster(get_entry(name), network, train, ctx, progress=False).fit(moved, split)
        a, b = before.predict_distribution(series, split.test), after.predict_distribution(moved, split.test)
        np.testing.assert_array_equal(a.sd[:41], b.sd[:41])
        assert not np.allclose(a.sd[41:], b.sd[41:])


def test_har_for_the_volatility_target_is_corsi_regression_in_logs():
    from forecast.models.baselines import HarBaseline

    series = build_series(load_history(DataSettings(synthetic="garch", synthetic_length=1500, synthetic_seed=2)),
                          "volatility", ["returns"])
    v = series.target
    origins = np.arange(40, 1400)
    X = np.stack([series.features[o - 29:o + 1] for o in origins])                        # [N, 30, F]
    y = v[origins + 1][:, None]
    model = HarBaseline(series.feature_names, "volatility", 1).fit(X, y)
    floor = model.floor_
    lv = lambda days: np.log(np.array([np.maximum(v[o - days + 1:o + 1], floor).mean() for o in origins]))
    Z = np.column_stack([np.ones(len(origins)), lv(1), lv(5), lv(22)])
    coef, *_ = np.linalg.lstsq(Z, np.log(np.maximum(y, floor)), rcond=None)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-8)
    assert model.coef_[3, 0] > 0.2                   # the monthly average carries the persistent volatility


# ---------------------------------------------------------------- backtest: columns, scores, report


def write_prices(path, n=700, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, n) * 0.007
    dates = pd.bdate_range("2010-01-04", periods=n)
    close = 1000 * np.exp(np.cumsum(r))
    spread = np.exp(np.abs(rng.normal(0, 0.006, n)))
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close, "High": close * spread,
                  "Low": close / spread, "Adj Close": close}).to_csv(path, index=False)
    return str(path)


def distribution_backtest(csv, models, out, distribution="student-t", track=False, **settings):
    cfg = BacktestConfig(data=DataSettings(csv=csv, lookback=10), network=NetworkSettings(hidden_size=4, distribution=distribution),
                         train=TrainSettings(max_epochs=2, patience=1, accelerator="cpu", seed=3),
                         backtest=BacktestSettings(models=models.split(","), refit_every=100, test_start="2011-06-01"),
                         out=out, track=track, **settings)
    return run_backtest(cfg, **QUIET)


def test_backtest_writes_ordered_quantile_columns_scores_verdicts_and_the_fan_chart(tmp_path, isolated):
    import mlflow

    csv = write_prices(tmp_path / "p.csv")
    result = distribution_backtest(csv, "lstm,garch-t,hist,ridge", "bt", track=True)
    frame = pd.read_csv(isolated / "bt" / "predictions.csv")
    assert list(frame.columns) == ["date", "model", "fold", "y_true", "y_pred", *LEVELS, "scale", "df"]
    assert set(frame["model"]) == {"lstm", "garch-t", "hist", "ridge", "naive", "riskmetrics"}   # benchmark added
    dist_rows = frame[frame["model"].isin(["lstm", "garch-t", "hist", "riskmetrics"])]
    q = dist_rows[LEVELS].to_numpy()
    assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()            # q01 <= q05 <= ... on every row
    assert (dist_rows["scale"] > 0).all()
    symmetric = dist_rows[dist_rows["model"] != "hist"]
    np.testing.assert_allclose(symmetric["q50"], symmetric["y_pred"], rtol=1e-9, atol=1e-12)   # y_pred: the mean
    assert (dist_rows.loc[dist_rows["model"].isin(["lstm", "garch-t"]), "df"] > 2).all()
    assert dist_rows.loc[dist_rows["model"].isin(["hist", "riskmetrics"]), "df"].isna().all()
    assert frame.loc[frame["model"].isin(["ridge", "naive"]), [*LEVELS, "scale", "df"]].isna().all().all()

    metrics = json.loads((isolated / "bt" / "metrics.json").read_text())
    for model, values in metrics["overall"].items():
        assert set(METRICS) <= set(values), model                               # the same names for every model
    assert metrics["overall"]["ridge"]["crps"] is None and metrics["overall"]["hist"]["nll"] is None
    lstm = metrics["overall"]["lstm"]
    assert 0 < lstm["crps"] < 0.02 and 0 <= lstm["coverage_90"] <= 1 and 0 <= lstm["var01_hits"] <= 1
    assert 0 <= lstm["kupiec_pvalue"] <= 1 and isinstance(lstm["crps_in_mcs"], bool)
    assert metrics["overall"]["riskmetrics"]["crps_dm_pvalue"] == 1.0           # the benchmark against itself
    verdicts = metrics["distribution"]["coverage_verdicts"]
    assert set(verdicts) == {"lstm", "garch-t", "hist", "riskmetrics"}
    assert all(v == "accepted" or v.startswith(("rejected", "untestable")) for v in verdicts.values())
    assert verdicts == {m: v["coverage"] for m, v in result.distributions.items()}
    report = (isolated / "bt" / "report.html").read_text()
    for text in ("Fan chart", "Value-at-risk hits", "Implied volatility", "Coverage", "Kupiec p", verdicts["lstm"]):
        assert text in report
    for png in ("fan_chart.png", "var_hits.png", "implied_volatility.png"):
        assert (isolated / "bt" / png).read_bytes()[:4] == b"\x89PNG"
    runs = mlflow.search_runs(experiment_names=["forecast/p"], filter_string="tags.model = 'garch-t'")
    assert runs.iloc[0]["metrics.crps"] == pytest.approx(metrics["overall"]["garch-t"]["crps"])
    assert runs.iloc[0]["tags.coverage"] == verdicts["garch-t"]


def test_quantiles_written_are_the_ones_asked_while_scores_use_the_whole_distribution():
    from forecast.evaluate.distribution_scores import score_distributions
    from forecast.evaluate.scores import prediction_frame

    series = garch_series(1200)
    split = time_split(len(series), 30, 1, 0.15, 0.2)
    ctx = FitContext(series.feature_names, "return", 30, 1)
    models = {name: make_forecaster(get_entry(name), NetworkSettings(), TrainSettings(), ctx).fit(series, split)
              for name in ("garch-t", "hist", "riskmetrics", "naive")}
    forecasts = {name: m.predict(series, split.test) for name, m in models.items()}
    dists = {name: m.predict_distribution(series, split.test) for name, m in models.items() if name != "naive"}
    frames, results = {}, {}
    for levels in ([0.025, 0.975], [0.01, 0.05, 0.5, 0.95, 0.99]):
        frame = prediction_frame(series, split.test, forecasts, 1, 0, dists, levels)
        frames[len(levels)] = frame
        results[len(levels)] = score_distributions(frame, dists, levels)
    assert [c for c in frames[2].columns if c.startswith("q")] == ["q025", "q975"]
    assert [c for c in frames[5].columns if c.startswith("q")] == LEVELS
    for model in dists:                                                       # coverage_90 needs q05 and q95
        for name in ("coverage_90", "crps", "var01_hits", "kupiec_pvalue"):
            assert results[2][model][name] == results[5][model][name]
        assert results[2][model]["pinball"] != results[5][model]["pinball"]  # over the written levels
    hist = frames[5][frames[5]["model"] == "hist"]
    assert np.mean((hist["y_true"] >= hist["q05"]) & (hist["y_true"] <= hist["q95"])) == results[5]["hist"]["coverage_90"]


# ---------------------------------------------------------------- coverage against the known truth


def test_a_network_covers_90_percent_of_held_out_garch_days(isolated):
    n = 4000
    cfg = FitConfig(data=DataSettings(synthetic="garch", synthetic_length=n, synthetic_seed=0, lookback=20,
                                    test_fraction=0.25),
                    network=NetworkSettings(hidden_size=16, distribution="normal"), model="lstm",
                    train=TrainSettings(max_epochs=30, patience=5, accelerator="cpu", seed=0), out="g", track=False)
    result = run_fit(cfg, **QUIET, progress=False)
    rows = result.predictions[result.predictions["model"] == "lstm"]
    assert len(rows) > 900                                                    # held-out days, after training
    assert 0.85 <= result.metrics["lstm"]["coverage_90"] <= 0.95
    _, sigma = garch_volatility(n, 0.01, 0)
    series = build_series(load_history(cfg.data), "return", ["returns"])
    days = np.searchsorted(series.dates, pd.to_datetime(rows["date"]))
    truth = sigma[days]                                                       # the true sd of each forecast day
    assert np.mean(np.abs(rows["y_true"]) <= 1.645 * truth) == pytest.approx(0.9, abs=0.03)
    assert np.corrcoef(rows["scale"], truth)[0, 1] > 0.8                     # it learned the volatility, not a constant


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("argv, message", [
    (["fit", "--target", "volatility", "--distribution", "normal"],
     "--distribution normal forecasts the return's distribution; it cannot be used with --target volatility"),
    (["backtest", "--distribution", "student-tt"], "--distribution must be one of normal, student-t"),
    (["fit", "--quantiles", "0.05,1.5"], "--quantiles needs levels between 0 and 1 (exclusive)"),
    (["fit", "--model", "ridge", "--distribution", "normal", "--offline", "--no-track"],
     "--distribution: ridge forecasts a point, not a distribution"),
    (["diagnose", "gradients", "--distribution", "normal"], "--distribution is not used by diagnose gradients"),
])
def test_bad_distribution_settings_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_quantiles_are_sorted_and_printed_back(capsys):
    assert main(["backtest", "--distribution", "student-t", "--quantiles", "0.95,0.05,0.5,0.05", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "quantiles: [0.05, 0.5, 0.95]" in text and "distribution: student-t" in text


def test_predict_prints_the_interval_and_value_at_risk(isolated, capsys):
    argv = ["fit", "--offline", "--model", "gru", "--distribution", "student-t", "--lookback", "10", "--hidden-size",
            "4", "--max-epochs", "1", "--accelerator", "cpu", "--out", "f"]
    assert main(argv) == 0
    fitted = capsys.readouterr().out
    assert "distribution forecasts" in fitted and "riskmetrics" in fitted
    assert main(["predict", "--offline"]) == 0
    printed = capsys.readouterr().out
    assert "90% interval: log return" in printed
    assert "value at risk 1% (one day, long position)" in printed and "value at risk 5%" in printed
    var1 = float(printed.split("value at risk 1%")[1].split("% of the price, ")[1].split(" index points")[0].replace(",", ""))
    var5 = float(printed.split("value at risk 5%")[1].split("% of the price, ")[1].split(" index points")[0].replace(",", ""))
    assert var1 > var5 > 0
