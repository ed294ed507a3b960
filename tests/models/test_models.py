"""The registry and every model in it: one shared check, plus what each kind must do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from forecast.data.load import load_history
from forecast.config.settings import DataSettings, NetworkSettings, TrainSettings
from forecast.data.windows import build_series, make_targets, time_split
from forecast.errors import ForecastError
from forecast.models import REGISTRY, get_entry, parse_models
from forecast.models.baselines import MeanBaseline, NaiveBaseline, RidgeBaseline
from forecast.engine.forecasters import FitContext, make_forecaster


def synthetic(kind="ar2", n=700, noise=0.01, target="return", features=("returns",)):
    cfg = DataSettings(synthetic=kind, synthetic_length=n, synthetic_noise=noise, synthetic_seed=1)
    return build_series(load_history(cfg), target, list(features))


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ForecastError, match=r"unknown model 'lstmm'; valid models: rnn, lstm, gru, lstm-vanilla, .*, naive"):
        get_entry("lstmm")
    with pytest.raises(ForecastError, match="does not forecast the return target; for it use: rnn"):
        get_entry("garch", "return")
    assert [e.name for e in parse_models("rnn, lstm,naive")] == ["rnn", "lstm", "naive"]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_entry_fits_and_forecasts(name, tiny_train, tmp_path):
    """Shared check: fit on a small series, forecast the test part (shapes, finiteness); a distribution where
    the entry forecasts one (its mean is the point forecast); a network's saved form gives the same forecasts."""
    entry = REGISTRY[name]
    target = "volatility" if "return" not in entry.targets else "return"
    series = synthetic(target=target)
    split = time_split(len(series), 10, 2, 0.15, 0.15)
    ctx = FitContext(series.feature_names, target, 10, 2)
    distribution = "normal" if entry.kind == "network" and target == "return" else None
    network = NetworkSettings(hidden_size=8, distribution=distribution)
    model = make_forecaster(entry, network, tiny_train, ctx, progress=False).fit(series, split)
    pred = model.predict(series, split.test)
    assert pred.shape == (len(split.test), 2) and np.isfinite(pred).all()
    dist = model.predict_distribution(series, split.test)
    if entry.kind == "network" or (entry.dist_baseline and target == "return"):
        assert dist is not None
        np.testing.assert_allclose(dist.mean, pred, rtol=1e-6, atol=1e-9)
        assert np.all(dist.sd > 0)
        q = dist.quantiles([0.05, 0.5, 0.95], step=1)
        assert np.all(np.diff(q, axis=1) >= 0)
    else:
        assert dist is None
    if entry.kind == "network":
        assert 1 <= len(model.history_) <= tiny_train.max_epochs
        assert {"train_loss", "val_loss"} <= set(model.history_[0])
        from forecast.data.windows import make_inputs
        from forecast.models.saved import load_network, save_network

        save_network(model.network_, tmp_path / "net", 10, list(series.feature_names), target)
        x = torch.from_numpy(make_inputs(series.features, split.test, 10))
        with torch.no_grad():
            np.testing.assert_array_equal(load_network(tmp_path / "net")(x).numpy(), model.network_(x).numpy())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_cell_learns_a_learnable_series(cell):
    """AR(2) returns: the training loss falls, and the test RMSE beats the zero forecast."""
    series = synthetic("ar2", n=1500)
    split = time_split(len(series), 10, 1, 0.15, 0.15)
    train = TrainSettings(max_epochs=8, batch_size=32, patience=8, learning_rate=3e-3, accelerator="cpu", seed=0)
    model = make_forecaster(get_entry(cell), NetworkSettings(hidden_size=16), train,
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
    runs = [make_forecaster(get_entry("gru"), NetworkSettings(hidden_size=8), tiny_train, ctx, progress=False)
            .fit(series, split).predict(series, split.test) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_baselines_forecast_what_they_say():
    X = np.random.default_rng(0).normal(size=(50, 5, 1))
    y = X[:, -1, :1] * 0.5
    assert np.all(NaiveBaseline().fit(X, y).predict(X) == 0)
    np.testing.assert_allclose(MeanBaseline().fit(X, y).predict(X[:3]), np.full((3, 1), y.mean()))
    np.testing.assert_allclose(RidgeBaseline().fit(X, y).predict(X), y, atol=0.05)


ESTIMATORS = sorted({e.baseline for e in REGISTRY.values() if e.baseline}
                    | {e.dist_baseline for e in REGISTRY.values() if e.dist_baseline})


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_baseline_follows_scikit_learn(name):
    """clone and get_params, parameters stored as given, no fitted attribute before fit, NotFittedError."""
    import inspect

    from sklearn.base import clone

    from forecast.models import baselines, distribution_baselines

    cls = getattr(baselines, name, None) or getattr(distribution_baselines, name)
    estimator = cls()
    params = estimator.get_params()
    assert set(params) == set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert all(getattr(estimator, k) is v for k, v in params.items())      # __init__ only stores them
    assert clone(estimator).get_params() == params
    assert not [k for k in vars(estimator) if k.endswith("_")]            # fitted state appears only in fit
    with pytest.raises(NotFittedError):
        if hasattr(estimator, "predict_distribution"):
            estimator.predict_distribution(np.zeros(300), np.ones(300), np.array([299]))
        else:
            estimator.predict(np.zeros((2, 5, 1)))


def test_garch_baseline_agrees_with_arch_own_fit_and_forecast():
    """Parameters are arch's own on the training returns; each window's forecast is arch's forecast
    with those parameters, filtered over the window (long enough that the start value has died out)."""
    from arch import arch_model

    from forecast.models.baselines import GarchBaseline

    rng = np.random.default_rng(4)
    n, lookback, horizon = 1400, 400, 3
    r, s2 = np.zeros(n), np.full(n, 1e-4)
    for t in range(1, n):
        s2[t] = 2e-6 + 0.08 * r[t - 1] ** 2 + 0.9 * s2[t - 1]
        r[t] = np.sqrt(s2[t]) * rng.standard_normal()
    X = np.lib.stride_tricks.sliding_window_view(r[:-1], lookback)[:, :, None]      # [N, L, 1]
    y = np.abs(r[lookback:])[:, None] * np.ones((1, horizon))                      # a volatility proxy, [N, H]
    train = slice(0, 800)
    model = GarchBaseline(("returns",), "volatility", horizon).fit(X[train], y[train])
    returns = np.concatenate([X[0, :, 0], X[1:800, -1, 0]]) * 100
    fitted = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    assert (model.omega_, model.alpha_, model.beta_) == pytest.approx(
        tuple(fitted.params[k] for k in ("omega", "alpha[1]", "beta[1]")), rel=1e-9)
    for k in (850, 950):
        window = arch_model(X[k, :, 0] * 100, mean="Zero", vol="GARCH", p=1, q=1, rescale=False)
        expected = np.sqrt(window.fix(fitted.params).forecast(horizon=horizon, reindex=False).variance.values[-1]) / 100
        np.testing.assert_allclose(model.predict(X[k:k + 1])[0] / model.level_, expected, rtol=1e-3)
