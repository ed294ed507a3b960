"""The one training recipe: its defaults learn a learnable dependency, and seeds make an ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.data.family import Process, process_history, process_innovations
from forecast.data.load import load_history
from forecast.commands.fit_common import epochs_trained
from forecast.config.settings import DataSettings, NetworkSettings, TrainSettings
from forecast.data.windows import build_series, make_targets, time_split
from forecast.engine.forecasters import FitContext, SeedEnsemble, make_forecaster
from forecast.models import get_entry


def longmem(lag: int, n: int, seed: int = 0):
    cfg = DataSettings(synthetic="longmem", synthetic_lag=lag, synthetic_length=n, synthetic_seed=seed)
    return build_series(load_history(cfg), "return", ["returns"])


def _ratio(process, model: str, seed: int, **train) -> tuple[float, float, object]:
    """RMSE / optimum and R2 vs the zero forecast on the test part, with the default recipe."""
    series = build_series(process_history(process), "return", ["returns"])
    split = time_split(len(series), process.lookback, 1, 0.15, 0.15)
    forecaster = make_forecaster(get_entry(model), NetworkSettings(), TrainSettings(accelerator="cpu", seed=seed, **train),
                                 FitContext(series.feature_names, "return", process.lookback, 1),
                                 progress=False).fit(series, split)
    y = make_targets(series.target, split.test, 1)[:, 0]
    p = forecaster.predict(series, split.test)[:, 0]
    best = np.sqrt(np.mean(make_targets(process_innovations(process), split.test, 1)[:, 0] ** 2))
    return float(np.sqrt(np.mean((p - y) ** 2)) / best), float(1 - np.sum((y - p) ** 2) / np.sum(y ** 2)), forecaster


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_a_dependency_far_from_the_window_start_is_found_on_every_seed(model):
    """r_t = 0.8 r_(t-6) + e_t read through a 24-day window: the day that matters is 18 steps from the window's
    start. Every seed tested gets within 1.05 of the best possible error on the test days."""
    process = Process(0, "longmem", 6, 0.8, 0.0, 0.01, 4000, 24, 5)
    for seed in (0, 1):
        ratio, _, _ = _ratio(process, model, seed)
        assert ratio <= 1.05, (model, seed, ratio)


def test_restarts_find_no_skill_in_a_random_walk():
    """Nothing to learn: ridge finds no signal on the windows, so nothing restarts, and the network has no skill
    on the test days."""
    process = Process(1, "rw", None, 0.0, 0.0, 0.01, 1500, 20, 11)
    _, r2, forecaster = _ratio(process, "gru", 0, restarts=2, max_epochs=15)
    assert r2 <= 0.005, r2
    assert forecaster.restarts_ == 0          # ridge finds nothing either: no plateau to escape, no restart


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_the_default_recipe_learns_a_short_lag_dependency(model):
    """r_t = 0.8 r_(t-3) + e_t: with the defaults (no training setting changed) a network gets within 10% of
    the best possible error, where the zero forecast is over 40% above it."""
    series = longmem(3, 3000)
    split = time_split(len(series), 8, 1, 0.15, 0.15)
    forecaster = make_forecaster(get_entry(model), NetworkSettings(hidden_size=16), TrainSettings(accelerator="cpu"),
                                 FitContext(series.feature_names, "return", 8, 1), progress=False).fit(series, split)
    y = make_targets(series.target, split.test, 1)[:, 0]
    ratio = np.sqrt(np.mean((forecaster.predict(series, split.test)[:, 0] - y) ** 2)) / 0.01
    assert ratio < 1.1, ratio
    assert np.sqrt(np.mean(y ** 2)) / 0.01 > 1.4
    assert len(forecaster.history_) < TrainSettings().max_epochs      # early stopping ended it


def test_seeds_train_an_ensemble_that_forecasts_the_mean_of_its_members():
    series = longmem(3, 600)
    split = time_split(len(series), 6, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 6, 1)

    def fit(**seeds):
        train = TrainSettings(max_epochs=2, accelerator="cpu", **seeds)
        return make_forecaster(get_entry("gru"), NetworkSettings(hidden_size=4), train, ctx, progress=False).fit(series, split)

    ensemble = fit(seeds=[0, 1])
    assert isinstance(ensemble, SeedEnsemble) and ensemble.seeds == [0, 1]
    single = [fit(seed=s).predict(series, split.test) for s in (0, 1)]
    np.testing.assert_allclose(ensemble.predict(series, split.test), (single[0] + single[1]) / 2, rtol=1e-6)
    assert not np.allclose(single[0], single[1])
    # what `fit` prints: each seed's best epoch out of its own epochs, not one count over all of them
    best = ", ".join(str(m.best_epoch_ + 1) for m in ensemble.members)
    assert epochs_trained(ensemble) == f", best epochs {best} of 2, 2 by seed"


def test_restarts_are_recorded_in_the_run(capsys):
    """`--restarts` is a setting of the run (config.yaml, the MLflow params), what it used is a metric, and a
    restart's losses are a curve of their own. One epoch of a tiny GRU on a strong lag-3 dependency stops
    short of what ridge finds, so the restart is taken."""
    import mlflow

    from forecast.cli import main

    code = main(["fit", "--synthetic", "longmem", "--synthetic-lag", "3", "--synthetic-length", "600", "--lookback",
                 "5", "--model", "gru", "--hidden-size", "2", "--max-epochs", "1", "--restarts", "1", "--out", "run"])
    assert code == 0, capsys.readouterr().err
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.data.params["train.restarts"] == "1"
    assert run.data.metrics["restarts_used"] == 1.0
    assert "val_loss" in run.data.metrics and "val_loss_restart1" in run.data.metrics
    assert "restarts: 1" in open("run/config.yaml").read()
