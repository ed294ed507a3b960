"""The laboratory commands end to end on tiny settings: gradient flow and the known-optimum bench."""

from __future__ import annotations

import mlflow
import pandas as pd

from forecast.cli import main

TINY = ["--synthetic-length", "400", "--lookback", "12", "--hidden-size", "6", "--max-epochs", "2",
        "--accelerator", "cpu"]


def test_gradient_flow_shows_the_vanishing_gradient_of_the_plain_rnn(isolated, capsys):
    assert main(["diagnose", "gradients", "--models", "rnn,lstm", "--synthetic", "longmem", "--synthetic-lag", "8",
                 *TINY, "--out", "g"]) == 0
    frame = pd.read_csv(isolated / "g" / "gradients.csv")
    assert set(frame["stage"]) == {"init", "trained"} and frame["k"].max() == 11
    ratio = {m: rows.set_index("k")["grad_norm"] for m, rows in frame[frame["stage"] == "init"].groupby("model")}
    # 11 steps back the RNN's gradient has shrunk far more than the (chrono-initialised) LSTM's.
    assert ratio["rnn"][11] / ratio["rnn"][0] < 0.1 * ratio["lstm"][11] / ratio["lstm"][0]
    assert (isolated / "g" / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    run = mlflow.search_runs(experiment_names=["forecast/synthetic-longmem"]).iloc[0]
    assert "metrics.rnn.init.grad_ratio_k11" in run.index
    assert "relative to k = 0" in capsys.readouterr().out


def test_bench_reports_rmse_over_the_optimum_per_lag_and_seed(isolated, capsys):
    assert main(["bench", "--models", "lstm,ridge", "--series", "rw,ar2,longmem", "--synthetic-lag", "3,6",
                 "--seeds", "0,1", *TINY, "--out", "b"]) == 0
    frame = pd.read_csv(isolated / "b" / "bench.csv")
    assert list(frame.columns) == ["series", "lag", "model", "seed", "rmse_over_opt"]
    assert set(frame["series"]) == {"rw", "ar2", "longmem"} and set(frame["model"]) == {"zero", "lstm", "ridge"}
    assert frame["lag"].isna().sum() == 2 * 2 * 3                   # rw and ar2 have no lag: 2 series x 2 seeds x 3 rows
    assert sorted(frame.loc[frame["series"] == "longmem", "lag"].unique()) == [3, 6]
    assert len(frame) == (2 + 2) * 2 * 3 and set(frame["seed"]) == {0, 1}
    ratios = frame.groupby(["series", "model"])["rmse_over_opt"].median()
    assert 0.85 < ratios["rw", "zero"] < 1.15                       # nothing to learn in a random walk
    assert ratios["ar2", "ridge"] < 0.95 * ratios["ar2", "zero"]
    # A seed is a repetition: it changes the simulated series too.
    zero = frame[(frame["model"] == "zero") & (frame["series"] == "rw")].set_index("seed")["rmse_over_opt"]
    assert zero[0] != zero[1]
    assert (isolated / "b" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "RMSE / best possible RMSE" in out and "longmem lag 6" in out
    assert mlflow.search_runs(experiment_names=["forecast/bench"]).shape[0] == 1


def test_bench_and_diagnose_reject_bad_input(capsys):
    assert main(["bench", "--series", "sine", *TINY]) == 2
    assert "--series must be one of rw, ar2, longmem, tar, garch, panel, got 'sine'" in capsys.readouterr().err
    assert main(["bench", "--series", "panel,ar2", *TINY]) == 2
    assert "--series panel is a panel of three series, benched on its own" in capsys.readouterr().err
    assert main(["diagnose", "gradients", "--models", "ridge", "--synthetic", "ar2", *TINY]) == 2
    assert "needs recurrent models" in capsys.readouterr().err
