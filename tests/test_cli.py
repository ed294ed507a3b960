"""The command line end to end: help, one-line errors, fit -> MLflow -> predict."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import forecast
from forecast.cli import main

TINY = ["--offline", "--lookback", "10", "--hidden-size", "8", "--max-epochs", "2", "--accelerator", "cpu"]


def run_cli(*args):
    """The installed entry point in a fresh interpreter: what a user sees, and how fast."""
    return subprocess.run([sys.executable, "-m", "forecast", *args], capture_output=True, text=True, timeout=120)


def test_help_explains_commands_and_flags():
    top = run_cli("--help")
    assert top.returncode == 0
    for word in ("fit", "predict", "models", "mlflow ui"):
        assert word in top.stdout
    fit = run_cli("fit", "--help")
    for flag in ("--ticker", "--csv", "--model", "--config", "--lookback", "--horizon", "--max-epochs", "--seed",
                 "--out", "--accelerator"):
        assert flag in fit.stdout
    assert "days of history in each input window (default: 30)" in " ".join(fit.stdout.split())


def test_help_does_not_import_torch():
    code = "import sys; from forecast.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("args, message", [
    (["fit", "--lookbak", "3"], "unrecognized arguments: --lookbak 3 (did you mean --lookback?)"),
    (["fit", "--ticker", "../../etc"], "--ticker must be a ticker symbol"),
    (["fit", "--model", "transformer", "--offline"], "unknown model 'transformer'; valid models: rnn, lstm, gru"),
    (["fit", "--csv", "missing.csv"], "CSV 'missing.csv' not found"),
    (["fit", "--config", "nope.yaml"], "config file 'nope.yaml' not found"),
    (["fit", "--lookback", "x"], "invalid int value: 'x'"),
])
def test_bad_input_is_one_line_without_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_each_warning_is_printed_once_however_often_main_runs(capsys):
    assert main(["models"]) == 0 and main(["models"]) == 0
    capsys.readouterr()
    logging.getLogger("forecast.test").warning("a library warning")
    assert capsys.readouterr().err.count("a library warning") == 1


def test_fit_end_to_end_tracks_and_predicts(isolated, capsys):
    import mlflow

    assert main(["fit", "--ticker", "^GSPC", *TINY, "--out", "out"]) == 0
    printed = capsys.readouterr().out
    assert "source: bundled copy" in printed and "1999-01-04 to 2018-12-31" in printed
    assert "R2 vs naive" in printed and "\nnaive " in printed and "\nlstm " in printed

    predictions = pd.read_csv(isolated / "out" / "predictions.csv", parse_dates=["date"])
    assert list(predictions.columns) == ["date", "model", "fold", "y_true", "y_pred"]
    assert set(predictions["model"]) == {"lstm", "naive"}
    # y_true is the log return of the adjusted close on `date`.
    bundled = Path(forecast.__file__).parent / "data" / "bundled" / "GSPC.csv.gz"
    prices = pd.read_csv(bundled, parse_dates=["Date"], date_format="%m/%d/%Y").set_index("Date")["Adj Close"]
    row = predictions.iloc[-1]
    assert row["date"] == pd.Timestamp("2018-12-31")
    assert row["y_true"] == pytest.approx(np.log(prices.iloc[-1] / prices.iloc[-2]))
    metrics = json.loads((isolated / "out" / "metrics.json").read_text())
    assert metrics["naive"]["r2_oos"] == 0 and "rmse" in metrics["lstm"]
    assert (isolated / "out" / "forecasts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = mlflow.search_runs(experiment_names=["forecast/^GSPC"])
    assert len(runs) == 1
    run = mlflow.get_run(runs.iloc[0]["run_id"])
    assert run.data.params["data.lookback"] == "10" and run.data.params["model"] == "lstm"
    assert run.data.tags["data_start"] == "1999-01-05" and run.data.tags["data_source"].startswith("bundled")
    assert {"test_rmse", "naive_test_rmse", "test_r2_oos", "train_loss", "val_loss"} <= set(run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"predictions.csv", "metrics.json", "forecasts.png", "config.yaml"} <= artifacts
    assert (isolated / "mlflow.db").is_file()

    assert main(["predict", "--ticker", "^GSPC", "--offline"]) == 0
    printed = capsys.readouterr().out
    assert "forecast for 2019-01-02" in printed and "implied price" in printed


def test_logged_model_reloads_to_the_same_forecast(isolated):
    import mlflow
    from forecast.data.load import load_data
    from forecast.commands.fit import fit as run_fit
    from forecast.config.settings import DataSettings, FitConfig, NetworkSettings, TrainSettings
    from forecast.data.windows import make_inputs
    from forecast.tracking.runs import load_network

    cfg = FitConfig(data=DataSettings(offline=True, lookback=10), model="gru", network=NetworkSettings(hidden_size=8),
                    train=TrainSettings(max_epochs=1, seeds=[1, 2], accelerator="cpu"), out="o")
    result = run_fit(cfg, echo=lambda line: None, progress=False)
    loaded = load_network(result.run_id)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.01, size=(5, 10, 1)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), result.forecaster.network_(x).numpy())
    # Weights are plain tensors (nothing to unpickle), and MLflow's own loader works too, from code.
    folder = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="network"))
    assert torch.load(folder / "weights.pt", weights_only=True) and json.loads((folder / "network.json").read_text())
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    np.testing.assert_allclose(pyfunc.predict(x.numpy()), loaded(x).detach().numpy(), rtol=1e-6)
    # The reloaded model reproduces the logged forecast of the last test day from raw data.
    _, series = load_data(cfg.data, echo=lambda line: None)
    last = make_inputs(series.features, np.array([len(series) - 2]), 10)
    with torch.no_grad():
        again = float(loaded(torch.from_numpy(last))[0, 0])
    logged = result.predictions[result.predictions["model"] == "gru"].iloc[-1]
    assert logged["date"] == series.dates[-1]
    assert again == pytest.approx(logged["y_pred"], rel=1e-6)


def test_a_pickled_model_from_an_older_version_loads_only_when_allowed(isolated, capsys):
    import mlflow
    import mlflow.pytorch

    from forecast.models.recurrent import NetShape, RecurrentNet, ScaledNetwork

    network = ScaledNetwork(RecurrentNet(NetShape("lstm", 1, 1, hidden_size=4)), [0.0], [0.01], 0.0, 0.01)
    mlflow.set_experiment("forecast/^GSPC")
    with mlflow.start_run(tags={"forecast.kind": "fit", "forecast.source": "^GSPC"}):
        mlflow.log_params({"data.lookback": 10, "data.target": "return", "data.features": "returns"})
        mlflow.pytorch.log_model(network, name="model", serialization_format="pickle", pip_requirements=["torch"])
    assert main(["predict", "--offline"]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert main(["predict", "--offline", "--allow-pickle"]) == 0
    assert "forecast for 2019-01-02" in capsys.readouterr().out
