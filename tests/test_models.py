"""The registry and every model in it: one shared check, plus what each kind must do."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from forecast.commands.common import load_history
from forecast.config import DataConfig, NetworkConfig, TrainConfig
from forecast.data.windows import build_series, make_targets, time_split
from forecast.errors import ForecastError
from forecast.models import REGISTRY, get_entry, parse_models
from forecast.models.baselines import MeanForecaster, NaiveForecaster, RidgeForecaster
from forecast.forecasters import FitContext, make_forecaster


def synthetic(kind="ar2", n=700, noise=0.01, target="return", features=("returns",)):
    cfg = DataConfig(synthetic=kind, synthetic_length=n, synthetic_noise=noise, synthetic_seed=1)
    return build_series(load_history(cfg), target, list(features))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ForecastError, match=r"unknown model 'lstmm'; valid models: rnn, lstm, gru, lstm-vanilla, .*, naive"):
        get_entry("lstmm")
    with pytest.raises(ForecastError, match="does not forecast the return target; for it use: rnn"):
        get_entry("garch", "return")
    assert [e.name for e in parse_models("rnn, lstm,naive")] == ["rnn", "lstm", "naive"]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_entry_fits_and_forecasts(name, tiny_train):
    """Shared check: fit on a small series, forecast the test part, shapes and finiteness."""
    entry = REGISTRY[name]
    target = "volatility" if "return" not in entry.targets else "return"
    series = synthetic(target=target)
    split = time_split(len(series), 10, 2, 0.15, 0.15)
    ctx = FitContext(series.feature_names, target, 10, 2)
    model = make_forecaster(entry, NetworkConfig(hidden_size=8), tiny_train, ctx, progress=False).fit(series, split)
    pred = model.predict(series, split.test)
    assert pred.shape == (len(split.test), 2) and np.isfinite(pred).all()
    if entry.kind == "network":
        assert 1 <= len(model.history_) <= tiny_train.max_epochs
        assert {"train_loss", "val_loss"} <= set(model.history_[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_cell_learns_a_learnable_series(cell):
    """AR(2) returns: the training loss falls, and the test RMSE beats the zero forecast."""
    series = synthetic("ar2", n=1500)
    split = time_split(len(series), 10, 1, 0.15, 0.15)
    train = TrainConfig(max_epochs=8, batch_size=32, patience=8, learning_rate=3e-3, accelerator="cpu", seed=0)
    model = make_forecaster(get_entry(cell), NetworkConfig(hidden_size=16), train,
                            FitContext(series.feature_names, "return", 10, 1), progress=False).fit(series, split)
    losses = [row["train_loss"] for row in model.history_]
    assert losses[-1] < 0.9 * losses[0]
    y = make_targets(series.target, split.test, 1)[:, 0]
    rmse = np.sqrt(np.mean((model.predict(series, split.test)[:, 0] - y) ** 2))
    assert rmse < 0.95 * np.sqrt(np.mean(y ** 2))


def test_same_seed_same_forecasts(tiny_train):
    series = synthetic()
    split = time_split(len(series), 10, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 10, 1)
    runs = [make_forecaster(get_entry("gru"), NetworkConfig(hidden_size=8), tiny_train, ctx, progress=False)
            .fit(series, split).predict(series, split.test) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_baselines_speak_scikit_learn():
    X = np.random.default_rng(0).normal(size=(50, 5, 1))
    y = X[:, -1, :1] * 0.5
    for cls in (NaiveForecaster, MeanForecaster, RidgeForecaster):
        with pytest.raises(NotFittedError):
            cls().predict(X)
    assert np.all(NaiveForecaster().fit(X, y).predict(X) == 0)
    np.testing.assert_allclose(MeanForecaster().fit(X, y).predict(X[:3]), np.full((3, 1), y.mean()))
    np.testing.assert_allclose(RidgeForecaster().fit(X, y).predict(X), y, atol=0.05)
