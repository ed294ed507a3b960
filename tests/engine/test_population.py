"""Many networks as one: a member of a population trains exactly as the same network alone.

Tiny series and networks; "alone" is ``--population 1`` (each network by Lightning), the reference
every population is held to.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from forecast.config.settings import BacktestSettings, DataSettings, NetworkSettings, TrainSettings
from forecast.data.load import load_data
from forecast.data.windows import make_inputs
from forecast.engine.convergence import Diverged
from forecast.engine.forecasters import FitContext, NetworkForecaster
from forecast.engine.population import Member, PopulationTraining, fit_networks, population_size
from forecast.engine.walkforward import make_folds
from forecast.models import REGISTRY, get_entry
from forecast.models import batched_cells
from forecast.models.population import PopulationNet
from forecast.models.recurrent import NetShape, RecurrentNet

LOOKBACK = 8
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def series_and_folds():
    data = DataSettings(synthetic="longmem", synthetic_lag=3, synthetic_length=900, lookback=LOOKBACK)
    _, series = load_data(data, lambda *_: None)
    folds = make_folds(series, LOOKBACK, 1, BacktestSettings(refit_every=120))   # training parts of different lengths
    return series, folds


def forecasters(cell, folds, seeds, epochs, network=None, horizon=1, **train):
    settings = TrainSettings(max_epochs=epochs, patience=100, restarts=0, accelerator="cpu", **train)
    network = network or NetworkSettings(hidden_size=8)
    return [NetworkForecaster(get_entry(cell), network, replace(settings, seed=seed),
                              FitContext(("returns",), "return", LOOKBACK, horizon, fold.number), progress=False)
            for fold, seed in zip(folds, seeds)]


def scaled_forecasts(model, series, fold) -> np.ndarray:
    x = torch.from_numpy(model.scaler_.transform_x(make_inputs(series.features, fold.split.test, LOOKBACK)))
    with torch.no_grad():
        return model.module_.net(x).numpy()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm-vanilla"])
@pytest.mark.parametrize("epochs", [1, 5])
def test_a_member_forecasts_what_it_forecasts_alone(series_and_folds, cell, epochs):
    """After 1 and 5 fixed epochs, members on folds of different lengths (so one idles at the end of every
    epoch) forecast within 1e-4 of the same networks trained one at a time, epoch by epoch the same losses."""
    series, folds = series_and_folds
    chosen, seeds = [folds[0], folds[-1], folds[1]], [1, 2, 3]
    alone = forecasters(cell, chosen, seeds, epochs)
    together = forecasters(cell, chosen, seeds, epochs)
    for model, fold in zip(alone, chosen):
        model.fit(series, fold.split)
    fit_networks([Member(m, series, f.split) for m, f in zip(together, chosen)], 12, CPU)
    for a, b, fold in zip(alone, together, chosen):
        assert np.abs(scaled_forecasts(a, series, fold) - scaled_forecasts(b, series, fold)).max() <= 1e-4
        assert [r["epoch"] for r in a.history_] == [r["epoch"] for r in b.history_] == list(range(epochs))
        np.testing.assert_allclose([r["val_loss"] for r in b.history_], [r["val_loss"] for r in a.history_], rtol=1e-4)


def test_distribution_heads_and_longer_horizons_train_as_alone(series_and_folds):
    series, folds = series_and_folds
    chosen = folds[:2]
    network = NetworkSettings(hidden_size=6, distribution="student-t")
    alone = forecasters("gru", chosen, [0, 1], 3, network, horizon=2)
    together = forecasters("gru", chosen, [0, 1], 3, network, horizon=2)
    for model, fold in zip(alone, chosen):
        model.fit(series, fold.split)
    fit_networks([Member(m, series, f.split) for m, f in zip(together, chosen)], 12, CPU)
    for a, b, fold in zip(alone, together, chosen):
        assert np.abs(scaled_forecasts(a, series, fold) - scaled_forecasts(b, series, fold)).max() <= 1e-4


def test_a_member_that_stops_early_leaves_the_batch_and_keeps_its_best_weights(series_and_folds):
    """Early stopping per member: different learning rates stop at different epochs; each member stops where it
    stops alone, keeps its best epoch, and the others train on without it."""
    series, folds = series_and_folds
    chosen = folds[:3]
    def make():
        models = forecasters("lstm", chosen, [0, 1, 2], 40)
        for model, lr in zip(models, (3e-3, 3e-2, 1e-3)):
            model.train = replace(model.train, learning_rate=lr, patience=2)
        return models

    alone, together = make(), make()
    for model, fold in zip(alone, chosen):
        model.fit(series, fold.split)
    fit_networks([Member(m, series, f.split) for m, f in zip(together, chosen)], 12, CPU)
    lengths = [len(m.history_) for m in together]
    assert lengths == [len(m.history_) for m in alone] and len(set(lengths)) > 1
    for a, b, fold in zip(alone, together, chosen):
        assert a.best_epoch_ == b.best_epoch_
        assert np.abs(scaled_forecasts(a, series, fold) - scaled_forecasts(b, series, fold)).max() <= 1e-4


def test_a_member_with_fewer_batches_idles_without_an_update(series_and_folds):
    """Adam counts a step only where a member had a batch: the shorter fold's member steps fewer times."""
    series, folds = series_and_folds
    chosen = [folds[-1], folds[0]]
    models = forecasters("gru", chosen, [0, 1], 2)
    training = PopulationTraining([Member(m, series, f.split) for m, f in zip(models, chosen)], CPU)
    before = training.net.flat.detach().clone()
    training.run()
    batches = sorted(training.data.batches, reverse=True)
    assert batches[0] > batches[1]
    assert training.adam.steps.tolist() == [2.0 * b for b in batches]
    assert not torch.equal(before, training.net.flat.detach())


def test_a_diverging_member_fails_the_command_naming_its_model_fold_and_seed(series_and_folds):
    series, folds = series_and_folds
    chosen = folds[:2]
    models = forecasters("lstm", chosen, [4, 7], 3, gradient_clip=0.0)
    models[1].train = replace(models[1].train, learning_rate=1e6)
    with pytest.raises(Diverged, match=rf"lstm diverged on fold {chosen[1].number}, seed 7"):
        fit_networks([Member(m, series, f.split) for m, f in zip(models, chosen)], 12, CPU)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_the_batched_cells_gradients_against_the_one_network_cell(kind, device):
    """gradcheck in float64, and every member's outputs and gradients equal torch.nn's cell run alone."""
    torch.manual_seed(0)
    cls, fn = {"rnn": (nn.RNN, batched_cells.batched_rnn), "gru": (nn.GRU, batched_cells.batched_gru)}[kind]
    nets = [cls(2, 4, batch_first=True).double().to(device) for _ in range(3)]
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    x = torch.randn(3, 2, 5, 2, dtype=torch.float64, device=device, requires_grad=True)
    h0 = torch.randn(3, 2, 4, dtype=torch.float64, device=device, requires_grad=True)
    params = [torch.stack([getattr(n, k) for n in nets]).detach().requires_grad_() for k in names]
    assert torch.autograd.gradcheck(fn, [x, h0, *params])
    out = fn(x, h0, *params)
    grads = torch.autograd.grad(out.pow(2).sum(), [x, h0, *params])
    for m, net in enumerate(nets):
        xm, hm = x[m].detach().requires_grad_(), h0[m].detach().requires_grad_()
        alone, _ = net(xm, hm[None])
        torch.testing.assert_close(out[m], alone)
        theirs = torch.autograd.grad(alone.pow(2).sum(), [xm, hm, *(getattr(net, k) for k in names)])
        for mine, own in zip(grads, theirs):
            torch.testing.assert_close(mine[m], own)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", [e.cell for e in REGISTRY.values() if e.kind == "network"])
def test_every_registry_cell_runs_as_a_population_of_its_networks(cell, device):
    """Each network of the registry, alone and as a member (two layers, a Student t head, position inputs):
    the same outputs and the same gradient of every parameter (float64)."""
    torch.manual_seed(0)
    shape = NetShape(cell, 2, 2, 4, 2, 0.0, "student-t", 8)
    nets = [RecurrentNet(shape, chrono=10).double().to(device) for _ in range(3)]
    population = PopulationNet(nets).double()
    x = torch.randn(3, 2, 6, 2, dtype=torch.float64, device=device)
    out = population(x)
    out.pow(2).sum().backward()
    for m, net in enumerate(nets):
        alone = net(x[m])
        torch.testing.assert_close(out[m], alone)
        grads = torch.autograd.grad(alone.pow(2).sum(), list(net.parameters()))
        torch.testing.assert_close(population.flat.grad[m], torch.cat([g.reshape(-1) for g in grads]))


def test_population_sizes_follow_the_settings_and_the_device():
    train, small, large = TrainSettings(accelerator="cpu"), NetworkSettings(hidden_size=16), NetworkSettings()
    assert population_size(get_entry("gru"), small, train) == 12          # measured to pay on a CPU
    assert population_size(get_entry("lstm"), large, train) == 1          # torch.nn.LSTM's CPU kernel is faster
    assert population_size(get_entry("rnn"), large, train) == 12
    assert population_size(get_entry("lstm"), large, replace(train, population="5")) == 5
    assert population_size(get_entry("gru"), small, replace(train, population="1")) == 1
    assert population_size(get_entry("gru"), small, replace(train, tbptt_k1=5)) == 1   # truncated BPTT: alone
    assert population_size(get_entry("ridge"), small, train) == 1


def cli_backtest(out: str, *extra: str) -> int:
    from forecast.cli import main

    return main(["backtest", "--synthetic", "longmem", "--synthetic-lag", "3", "--synthetic-length", "700",
                 "--lookback", "6", "--models", "gru,lstm,naive", "--hidden-size", "6", "--max-epochs", "3",
                 "--refit-every", "100", "--seeds", "0,1", "--accelerator", "cpu", "--out", out, *extra])


def test_backtest_populations_do_not_depend_on_jobs_and_match_one_at_a_time(tmp_path, capsys):
    """Members are grouped by the work, never by --jobs: the same bytes for any --jobs; within float32 rounding of
    --population 1. --population is a setting of the run."""
    import mlflow
    import pandas as pd

    assert cli_backtest("one", "--population", "4") == 0, capsys.readouterr().err
    assert cli_backtest("two", "--population", "4", "--jobs", "2") == 0
    assert cli_backtest("alone", "--population", "1", "--no-track") == 0
    assert (tmp_path / "one" / "predictions.csv").read_bytes() == (tmp_path / "two" / "predictions.csv").read_bytes()
    together, alone = (pd.read_csv(tmp_path / name / "predictions.csv") for name in ("one", "alone"))
    assert np.abs(together["y_pred"] - alone["y_pred"]).max() < 1e-6
    assert "population: '4'" in (tmp_path / "one" / "config.yaml").read_text()
    parent = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
              if "train.population" in r.data.params]
    assert parent and parent[0].data.params["train.population"] == "4"
    # each epoch's losses, from this process (--jobs 1) or the workers (--jobs 2), logged to the run as they came
    curves = [{k for k in r.data.metrics if k.startswith("epochs.")} for r in parent]
    assert len(curves) == 2 and curves[0] == curves[1] and "epochs.gru.fold1.seed1.val_loss" in curves[0]
    history = mlflow.MlflowClient().get_metric_history(parent[0].info.run_id, "epochs.lstm.fold2.seed0.train_loss")
    assert [m.step for m in history] == [0, 1, 2]


def test_a_bad_population_is_one_line(capsys):
    from forecast.cli import main

    assert main(["fit", "--synthetic", "rw", "--population", "0"]) == 2
    assert "--population must be auto or a whole number of networks, at least 1, got '0'" in capsys.readouterr().err


def test_fit_seeds_as_a_population_logs_each_seed_curve_and_saves_the_ensemble_predict_reads(capsys):
    """Per-member loss curves in MLflow, and the saved seed ensemble in the format `predict` reads."""
    import mlflow

    from forecast.cli import main

    assert main(["fit", "--ticker", "^GSPC", "--offline", "--lookback", "6", "--model", "gru", "--hidden-size", "4",
                 "--max-epochs", "2", "--seeds", "0,1", "--population", "2", "--accelerator", "cpu",
                 "--out", "run"]) == 0, capsys.readouterr().err
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    client = mlflow.MlflowClient()
    for seed in (0, 1):
        assert [m.step for m in client.get_metric_history(run.info.run_id, f"val_loss_seed{seed}")] == [0, 1]
    capsys.readouterr()
    assert main(["predict", "--ticker", "^GSPC", "--offline"]) == 0
    printed = capsys.readouterr().out
    assert "forecast for 2019-01-02" in printed and "implied price" in printed


def test_warm_started_folds_train_their_seeds_together(capsys):
    """With --warm-start the folds are chained; a fold's seeds are the members, and the forecasts match
    one network at a time."""
    import pandas as pd

    assert cli_backtest("warm", "--warm-start", "--population", "4", "--no-track") == 0, capsys.readouterr().err
    assert cli_backtest("alone", "--warm-start", "--population", "1", "--no-track") == 0
    together, alone = (pd.read_csv(name + "/predictions.csv") for name in ("warm", "alone"))
    assert np.abs(together["y_pred"] - alone["y_pred"]).max() < 1e-6
