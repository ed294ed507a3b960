"""Covariates: the alignment rule, no look-ahead, a lead that is found when it is there, bad input in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.covariate_spec import Covariate
from forecast.data.covariates import align
from forecast.errors import ForecastError

TINY = ["--lookback", "5", "--hidden-size", "4", "--max-epochs", "2", "--accelerator", "cpu", "--no-track"]


def write(path, dates, closes) -> str:
    pd.DataFrame({"Date": [f"{d:%Y-%m-%d}" for d in dates], "Close": closes}).to_csv(path, index=False)
    return str(path)


def leading_pair(tmp_path, n=700, coef=0.6, seed=0, perturb_after=None):
    """A target whose return is ``coef`` times the covariate's return of the day before plus noise; the
    covariate trades on weekdays too but misses every 20th of them (that day's lead reaches no forecast) and has
    some Saturday rows."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2010-01-04", periods=n)
    x = rng.normal(0, 0.01, n)
    r = np.r_[0.0, coef * x[:-1]] + rng.normal(0, 0.003, n)
    if perturb_after is not None:
        late = days > pd.Timestamp(perturb_after)
        x[late] += rng.normal(0, 0.05, late.sum())
        r[late] += rng.normal(0, 0.05, late.sum())
    target = write(tmp_path / "target.csv", days, 100 * np.exp(np.cumsum(r)))
    kept = np.arange(n) % 20 != 3
    extra = days[::50] + pd.Timedelta(days=(5 - days[::50].day_of_week).min())    # a few Saturdays
    cov_days = days[kept].append(pd.DatetimeIndex([d for d in extra if d.day_of_week == 5])).sort_values()
    level = pd.Series(100 * np.exp(np.cumsum(x)), index=days).reindex(cov_days).ffill().bfill()
    return target, write(tmp_path / "lead.csv", cov_days, level.to_numpy())


def test_the_alignment_rule_takes_the_last_value_on_or_before_each_day_and_its_age():
    days = pd.DatetimeIndex(["2020-01-06", "2020-01-07", "2020-01-08", "2020-01-09", "2020-01-10", "2020-01-13"])
    values = pd.Series([1.0, 2.0, 4.0, 5.0], index=pd.DatetimeIndex(["2020-01-07", "2020-01-09", "2020-01-11",
                                                                        "2020-01-13"]))
    value, age = align(days, values)
    np.testing.assert_array_equal(value, [np.nan, 1.0, 1.0, 2.0, 2.0, 5.0])
    np.testing.assert_allclose(age, np.log1p([np.nan, 0, 1, 0, 1, 0]))
    # Saturday's 4.0 is dated after Friday: Friday still sees Thursday's value; Monday sees Monday's own.


def test_changing_every_series_after_a_date_leaves_earlier_forecasts_unchanged(tmp_path):
    args = ["backtest", "--models", "gru,ridge,naive", "--refit-every", "100", *TINY]
    target, lead = leading_pair(tmp_path)
    assert main([*args, "--csv", target, "--covariate-csv", lead, "--out", "a"]) == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    cut = "2012-03-01"
    target2, lead2 = leading_pair(moved, perturb_after=cut)
    assert main([*args, "--csv", target2, "--covariate-csv", lead2, "--out", "b"]) == 0
    a, b = (pd.read_csv(tmp_path / name / "predictions.csv", parse_dates=["date"]) for name in ("a", "b"))
    early = a["date"] <= pd.Timestamp(cut)
    assert early.sum() > 100 and (a["date"] > pd.Timestamp(cut)).sum() > 100
    pd.testing.assert_frame_equal(a[early].reset_index(drop=True), b[early].reset_index(drop=True))
    assert not np.allclose(a.loc[~early, "y_true"], b.loc[~early, "y_true"])


def test_a_covariate_that_leads_the_target_is_found_and_none_is_invented_without_it(tmp_path, capsys):
    """r_t = 0.6 x_(t-1) + e: with the covariate, ridge and a small GRU explain much of the variance that can be
    explained; without it neither has skill."""
    target, lead = leading_pair(tmp_path, n=900)
    base = ["fit", "--csv", target, "--lookback", "5", "--hidden-size", "8", "--accelerator", "cpu", "--no-track"]
    for model in ("ridge", "gru"):
        assert main([*base, "--model", model, "--covariate-csv", lead, "--out", f"with-{model}"]) == 0
        assert main([*base, "--model", model, "--out", f"without-{model}"]) == 0
        with_cov = pd.read_json(tmp_path / f"with-{model}" / "metrics.json")[model]["r2_oos"]
        without = pd.read_json(tmp_path / f"without-{model}" / "metrics.json")[model]["r2_oos"]
        assert with_cov > 0.4, (model, with_cov)         # at best ~0.76: 0.6^2 var(x) / var(r) on 19 days in 20
        assert without < 0.05, (model, without)
    assert "lead.csv:return" in (tmp_path / "with-gru" / "config.yaml").read_text()


@pytest.mark.parametrize("text, message", [
    ("^VIX:levels", "the transform after the colon must be one of return, diff, level"),
    (":level", "name a ticker before the colon"),
    ("a/b", "must be a ticker symbol"),
])
def test_a_bad_covariate_is_one_line(text, message):
    with pytest.raises(ForecastError, match=message):
        Covariate.parse(text)


def test_covariate_problems_name_the_covariate(tmp_path, capsys):
    target, lead = leading_pair(tmp_path)
    cases = [
        (["--covariates", "^NOPE"], "no data for ticker '^NOPE'"),
        (["--covariates", "^VIX,^vix:level"], "--covariates: '^VIX' is given more than once"),
        (["--covariate-csv", write(tmp_path / "late.csv", pd.bdate_range("2030-01-01", periods=50), np.ones(50))],
         "covariate late (2030-01-02 to 2030-03-11) shares no days with target"),
        (["--covariate-csv", write(tmp_path / "short.csv", pd.bdate_range("2012-08-01", periods=50),
                                   np.linspace(1, 2, 50))], "covariate short starts on 2012-08-02, leaving"),
    ]
    for extra, message in cases:
        assert main(["fit", "--csv", target, "--offline", *TINY, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["fit", "--ticker", "^GSPC", "--covariates", "^gspc", *TINY]) == 2
    assert "is the target itself" in capsys.readouterr().err


def test_the_bundled_covariates_run_offline_and_predict_fetches_them_again(capsys):
    assert main(["fit", "--ticker", "^GSPC", "--offline", "--covariates", "^VIX:level,^IXIC", "--model", "ridge",
                 "--lookback", "5", "--out", "run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "covariate: ^VIX: 1,259 trading days from 2014-01-03" in out and "with covariates: 1,257 days" in out
    assert main(["fit", "--ticker", "^GSPC", "--offline", "--covariates", "^VIX:level", "--model", "gru",
                 "--hidden-size", "4", "--max-epochs", "1", "--lookback", "5", "--accelerator", "cpu",
                 "--out", "net"]) == 0
    capsys.readouterr()
    assert main(["predict", "--ticker", "^GSPC", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "covariate: ^VIX" in out and "forecast for 2019-01-02" in out
