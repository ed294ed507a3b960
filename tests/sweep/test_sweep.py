"""`forecast sweep` in one process: studies, outputs, MLflow runs, resuming, bad input, and
`backtest --from-sweep`. Real Optuna storage (SQLite) and a real MLflow store; tiny networks on a
short simulated series so that everything here takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest

from forecast.cli import main
from forecast.config.settings import BacktestConfig, FitConfig
from forecast.config.sweep_settings import SweepConfig
from forecast.config.yaml_io import resolve

CONFIGS = Path(__file__).parents[2] / "configs"
DATA = ["--synthetic", "ar2", "--synthetic-length", "700"]
TINY = [*DATA, "--hidden-sizes", "4", "--layer-counts", "1,2", "--lookbacks", "5,8", "--batch-sizes", "64",
        "--max-epochs", "2", "--val-folds", "2", "--fold-days", "60", "--accelerator", "cpu"]
STUDY = "synthetic-ar2-{}-return"


def load(study: str, out: Path | str = "sw") -> optuna.Study:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{Path(out).resolve() / 'study.db'}")


def sweep_runs():
    runs = mlflow.search_runs(search_all_experiments=True)
    parents = runs[runs["tags.forecast.kind"] == "sweep"]
    return parents, runs[runs["tags.forecast.kind"] == "sweep-trial"]


def test_sweep_writes_best_settings_importances_and_nested_runs_then_resumes(isolated, capsys):
    assert main(["sweep", *TINY, "--models", "lstm,gru", "--trials", "3", "--out", "sw"]) == 0
    printed = capsys.readouterr().out
    assert "trials/hour" in printed and "best per model" in printed
    out = isolated / "sw"
    for name in ("best/lstm.yaml", "best/gru.yaml", "best_trials.csv", "importance_lstm.csv", "importance_lstm.png",
                 "history_gru.png", "trials_gru.csv", "sweep.json", "config.yaml"):
        assert (out / name).is_file(), name
    assert "best/lstm.yaml" in json.loads((out / "manifest.json").read_text())["files"]
    assert (out / "importance_lstm.png").read_bytes()[:4] == b"\x89PNG"
    importance = pd.read_csv(out / "importance_lstm.csv")
    assert set(importance["param"]) <= {"learning_rate", "weight_decay", "dropout", "num_layers", "lookback",
                                        "gradient_clip"} and importance["importance"].sum() == pytest.approx(1)

    # The best settings are what fit and backtest read with --config; a backtest of them scores the test period.
    best = pd.read_csv(out / "best_trials.csv").set_index("model")
    lstm = load(STUDY.format("lstm")).best_trial
    assert best.loc["lstm", "val_loss"] == pytest.approx(lstm.value)
    fit_cfg = resolve(FitConfig, out / "best" / "lstm.yaml", {"model": "lstm"})
    assert fit_cfg.data.lookback == lstm.params["lookback"] and fit_cfg.train.learning_rate == lstm.params["learning_rate"]
    assert fit_cfg.network.dropout == (lstm.params["dropout"] if lstm.params["num_layers"] > 1 else 0.0)
    assert resolve(BacktestConfig, out / "best" / "gru.yaml", {}).data.synthetic == "ar2"

    # One parent run, its id kept by the studies; every trial a nested run under it.
    parents, trials = sweep_runs()
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    parent = parents.iloc[0]["run_id"]
    assert load(STUDY.format("gru")).user_attrs["forecast.mlflow_parent_run"] == parent
    assert len(trials) == 6 and set(trials["tags.mlflow.parentRunId"]) == {parent}
    assert set(trials["status"]) == {"FINISHED"} and trials["metrics.val_loss"].notna().all()

    # Running it again with more trials resumes: the same studies, parent run and test start.
    assert main(["sweep", *TINY, "--models", "lstm,gru", "--trials", "4", "--out", "sw"]) == 0
    assert [t.state.name for t in load(STUDY.format("lstm")).trials] == ["COMPLETE"] * 4
    parents, trials = sweep_runs()
    assert len(parents) == 1 and len(trials) == 8 and set(trials["tags.mlflow.parentRunId"]) == {parent}

    # The backtest compares the networks each at its best on the held-out days, the same days for every
    # model whatever its lookback, with the same forecasts whatever the number of jobs.
    args = ["backtest", *DATA, "--from-sweep", "sw", "--models", "naive,ridge,rnn", "--refit-every", "100"]
    assert main([*args, "--out", "bt1", "--no-track"]) == 0
    assert main([*args, "--out", "bt2", "--no-track", "--jobs", "2"]) == 0
    assert (isolated / "bt1" / "predictions.csv").read_bytes() == (isolated / "bt2" / "predictions.csv").read_bytes()
    frame = pd.read_csv(isolated / "bt1" / "predictions.csv")
    assert set(frame["model"]) == {"lstm", "gru", "naive", "ridge"}
    days = frame.groupby("model")["date"].apply(tuple)
    assert days.nunique() == 1 and days.iloc[0][0] >= json.loads((out / "sweep.json").read_text())["test_start"]
    assert "best settings from sweep sw" in (isolated / "bt1" / "report.html").read_text()


def test_a_failing_trial_is_recorded_and_the_study_goes_on(isolated, monkeypatch, capsys):
    import forecast.sweep.objective as validation

    real, calls = validation.run_unit, []

    def out_of_memory_once(unit, *args, **kwargs):
        calls.append(unit.entry.kind)
        if calls.count("network") == 1 and unit.entry.kind == "network":
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(unit, *args, **kwargs)

    monkeypatch.setattr(validation, "run_unit", out_of_memory_once)
    assert main(["sweep", *TINY, "--models", "rnn", "--trials", "2", "--out", "sw"]) == 0
    trials = load(STUDY.format("rnn")).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["error"].startswith("RuntimeError: CUDA out of memory")
    assert "rnn trial   0 fail" in capsys.readouterr().out
    _, runs = sweep_runs()
    assert sorted(runs["status"]) == ["FAILED", "FINISHED", "FINISHED"]


def test_tpe_prunes_on_the_folds_and_a_random_search_does_not(isolated):
    args = [*TINY, "--models", "gru", "--trials", "7", "--val-folds", "3", "--fold-days", "40", "--no-track"]
    assert main(["sweep", *args, "--sampler", "tpe", "--out", "tpe"]) == 0
    from forecast.sweep.studies import make_pruner

    trials = load(STUDY.format("gru"), "tpe").trials
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"} and len(trials) == 7
    # Each fold's validation loss is an intermediate value (step = fold number), what the pruner compares.
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials if t.state.name == "COMPLETE")
    assert isinstance(make_pruner("tpe"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("random"), optuna.pruners.NopPruner)


def test_a_distribution_sweep_scores_by_log_likelihood(isolated, capsys):
    assert main(["sweep", *TINY, "--models", "gru", "--trials", "2", "--distribution", "normal", "--no-track",
                 "--out", "sw"]) == 0
    values = [t.value for t in load(STUDY.format("gru")).trials]
    assert len(values) == 2 and all(v < -2 for v in values)       # NLL of daily returns, not a ratio near 1
    assert "mean negative log-likelihood" in (isolated / "sw" / "best" / "gru.yaml").read_text()
    assert main(["backtest", *DATA, "--from-sweep", "sw", "--no-track", "--out", "bt"]) == 2
    assert "tuned networks with --distribution normal; add it" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "--trials must be at least 1, got 0"),
    (["--lr-range", "0.1,0.001"], "--lr-range must be LOW,HIGH with LOW <= HIGH"),
    (["--hidden-sizes", "0,8"], "--hidden-sizes must list values of at least 1"),
    (["--lookback", "12"], "--lookback is what the sweep searches; set its range with --lookbacks"),
    (["--models", "lstm,ridge"], "a sweep tunes networks; ridge has nothing to tune"),
    (["--storage", "postgresql://sweeper@127.0.0.1:9/sweeps"],
     "the study storage postgresql://sweeper@127.0.0.1:9/sweeps cannot be opened (connection to server"),
    (["--storage", "postgresql://sweeper:secret@127.0.0.1:9/sweeps"], "postgresql://sweeper:***@127.0.0.1:9/sweeps"),
    (["--storage", "sweeps.db"], "--storage must be a database URL"),
    (["--val-folds", "9", "--fold-days", "60"], "validation folds of 60 days before --test-start"),
])
def test_bad_input_is_one_line(isolated, capsys, args, message):
    assert main(["sweep", *TINY, "--models", "lstm", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "secret" not in err


def test_a_study_made_for_another_model_target_or_test_start_is_refused(isolated, capsys):
    folder = isolated / "sw"
    folder.mkdir()
    storage = f"sqlite:///{folder / 'study.db'}"
    optuna.create_study(study_name="mine-lstm-return", storage=storage).optimize(lambda t: 1.0, n_trials=1)
    other = optuna.create_study(study_name="mine-gru-return", storage=storage)
    for key, value in {"model": "gru", "source": "synthetic-ar2", "target": "volatility"}.items():
        other.set_user_attr(f"forecast.{key}", value)
    base = ["sweep", *TINY, "--study", "mine", "--out", "sw", "--trials", "1", "--no-track"]
    assert main([*base, "--models", "lstm"]) == 2
    assert "study 'mine-lstm-return' in sqlite:///" in (err := capsys.readouterr().err)
    assert "is not a forecast sweep's study" in err
    assert main([*base, "--models", "gru"]) == 2
    assert "'mine-gru-return' in sqlite:///" in (err := capsys.readouterr().err)
    assert "was made with target 'volatility', not 'return'" in err
    assert main([*base, "--models", "rnn", "--test-start", "2001-06-01"]) == 0
    assert main([*base, "--models", "rnn", "--test-start", "2001-07-02"]) == 2
    err = capsys.readouterr().err
    assert "was made with test-start '2001-06-01', not '2001-07-02'" in err
    # The folder of one sweep is not another's.
    assert main(["sweep", *TINY, "--study", "theirs", "--out", "sw", "--models", "rnn", "--no-track"]) == 2
    assert "is the folder of sweep 'mine', not 'theirs'" in capsys.readouterr().err


def test_from_sweep_needs_a_sweep_and_its_data(isolated, capsys):
    assert main(["backtest", *DATA, "--from-sweep", "nowhere", "--no-track"]) == 2
    assert "--from-sweep nowhere: no sweep.json" in capsys.readouterr().err


def test_sweep_config_round_trips_and_the_shipped_one_loads(tmp_path):
    cfg = resolve(SweepConfig, CONFIGS / "sweep.yaml", {"jobs": 2, "hidden_sizes": "8,16"})
    assert (cfg.sweep.test_start, cfg.sweep.jobs, cfg.space.hidden_sizes) == ("2015-01-01", 2, [8, 16])
    (tmp_path / "rnn.yaml").write_text("space_rnn:\n  lookbacks: [5, 10]\nspace:\n  lookbacks: [20]\n")
    cfg = resolve(SweepConfig, tmp_path / "rnn.yaml", {})
    assert cfg.space_for("rnn").lookbacks == [5, 10] and cfg.space_for("gru").lookbacks == [20]
    (tmp_path / "bad.yaml").write_text("space_gru:\n  lr_range: [0.1]\n")
    with pytest.raises(ValueError, match="space_gru: --lr-range must be LOW,HIGH"):
        resolve(SweepConfig, tmp_path / "bad.yaml", {})


def test_print_config_round_trips(tmp_path):
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "forecast", "sweep", *a], capture_output=True, text=True,
                                    cwd=tmp_path)
    first = run("--models", "lstm,gru", "--lookbacks", "5,10", "--sampler", "tpe", "--print-config")
    assert first.returncode == 0, first.stderr
    (tmp_path / "printed.yaml").write_text(first.stdout)
    assert run("--config", "printed.yaml", "--print-config").stdout == first.stdout
    helped = run("--help").stdout
    for flag in ("--trials", "--storage", "--jobs", "--grace-period", "--lr-range", "--devices", "--strategy"):
        assert flag in helped


def test_a_trial_run_its_worker_never_named_is_closed_by_its_tags(isolated):
    """A worker killed between creating a trial's MLflow run and recording it on the trial: the retry
    still finds the run (parent run, study, trial number) and marks it FAILED; a run of another sweep
    with the same study name and trial number is left alone."""
    from forecast.sweep.trial_runs import PARENT_ATTR, TrialRuns, end_trial_run

    client = mlflow.MlflowClient()
    experiment = client.create_experiment("forecast/x")
    parents = [client.create_run(experiment).info.run_id for _ in range(2)]
    study = optuna.create_study(study_name="x-lstm-return", storage=f"sqlite:///{isolated / 's.db'}")
    study.set_user_attr(PARENT_ATTR, parents[0])
    trial = study.ask()
    mine, other = (TrialRuns(experiment, p, "x").start("lstm", study.study_name, trial, {}) for p in parents)
    end_trial_run(study, study.trials[0], "FAILED", "no heartbeat")
    assert client.get_run(mine).info.status == "FAILED"
    assert client.get_run(mine).data.tags["forecast.ended_by"] == "no heartbeat"
    assert client.get_run(other).info.status == "RUNNING"


def test_the_series_the_sweep_sees_ends_before_the_test_period():
    """Every per-day field is cut at --test-start: none keeps test-period days (the volatility proxy
    once kept all of them)."""
    from dataclasses import fields

    import numpy as np

    from forecast.data.synthetic import simulate
    from forecast.data.windows import build_series
    from forecast.sweep.objective import before

    series = build_series(simulate("garch", 3000), "volatility")
    seen = before(series, f"{series.dates[500]:%Y-%m-%d}")
    assert len(seen) == 500 and seen.proxy is not None and len(seen.proxy) == 500
    for f in fields(seen):
        value = getattr(seen, f.name)
        if isinstance(value, (np.ndarray, pd.Index)):
            assert len(value) <= len(seen.dates), f.name


def test_a_panel_sweep_scores_the_mean_over_series_and_a_panel_backtest_reads_it(isolated, capsys):
    """`sweep` on a panel (a global network too): each series' folds before --test-start, the trial's value the
    mean over the series; `backtest --from-sweep` then runs the tuned networks on the same panel, and a backtest
    with other covariates is refused in one line."""
    panel = ["--synthetic", "panel", "--synthetic-length", "700", "--covariates", "panel"]
    tiny = [a for a in TINY if a not in DATA]
    assert main(["sweep", *panel, *tiny, "--models", "gru,gru-global", "--trials", "2", "--out", "sw"]) == 0
    out = capsys.readouterr().out
    assert "2 folds of 3 series (the value: the mean over the series)" in out
    study = load("synthetic-panel-gru-global-return")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    test_start = study.user_attrs["forecast.test_start"]
    assert main(["backtest", *panel, "--models", "gru,gru-global,ridge", "--from-sweep", "sw", "--refit-every", "80",
                 "--max-epochs", "2", "--accelerator", "cpu", "--out", "bt"]) == 0
    frame = pd.read_csv("bt/predictions.csv", parse_dates=["date"])
    assert set(frame["series"]) == {"sim-lead", "sim-follow", "sim-led"} and {"gru", "gru-global"} <= set(frame["model"])
    assert frame["date"].min() >= pd.Timestamp(test_start)           # the tuned networks never score a tuned day
    assert "from sweep sw, tuned on days before" in Path("bt/report.html").read_text()
    capsys.readouterr()
    assert main(["backtest", "--synthetic", "panel", "--synthetic-length", "700", "--from-sweep", "sw",
                 "--no-track"]) == 2
    assert "tuned on covariates 'panel', this backtest has 'none'" in capsys.readouterr().err


def test_a_panel_trial_value_is_the_mean_over_series_of_each_pooled_loss():
    from forecast.sweep.objective import trial_value

    losses = [(1.0, 2.0), (3.0, 2.0), (10.0, 10.0)]
    assert trial_value(losses) == pytest.approx(14 / 14)
    assert trial_value(losses, (0, 0, 1)) == pytest.approx((4 / 4 + 10 / 10) / 2)
    assert trial_value(losses, (0, 1, 1)) == pytest.approx((0.5 + 13 / 12) / 2)
