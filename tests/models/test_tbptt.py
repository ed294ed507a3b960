"""Truncated backpropagation through time: gradients stop K2 steps back; K1 = K2 = L trains like windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forecast.data.load import load_history
from forecast.config.settings import DataSettings, NetworkSettings, TrainSettings
from forecast.data.windows import build_series, time_split
from forecast.models import get_entry
from forecast.models.recurrent import NetShape
from forecast.models.training import TrainingModule
from forecast.engine.forecasters import FitContext, make_forecaster


@pytest.mark.parametrize("cell, k1, k2", [("lstm", 5, 12), ("gru", 10, 4), ("lstm-cifg", 6, 6)])
def test_no_gradient_reaches_inputs_older_than_k2(cell, k1, k2):
    torch.manual_seed(0)
    module = TrainingModule(NetShape(cell, input_size=2, hidden_size=6), TrainSettings(tbptt_k1=k1, tbptt_k2=k2))
    x = torch.randn(1, 60, 2, requires_grad=True)
    y = torch.randn(1, 60, 1)
    for update, loss in enumerate(module.tbptt_losses(x, y)):
        x.grad = None
        loss.backward()
        end = min((update + 1) * k1, 60)
        start = max(0, end - k2)
        assert torch.all(x.grad[:, :start] == 0), (update, start)
        assert torch.all(x.grad[:, end:] == 0)
        assert torch.any(x.grad[:, start:end] != 0)
    assert update + 1 == int(np.ceil(60 / k1))


def test_k1_equal_k2_equal_lookback_learns_like_windowed_training():
    series = build_series(load_history(DataSettings(synthetic="ar2", synthetic_length=1500, synthetic_seed=2)),
                          "return", ["returns"])
    split = time_split(len(series), 10, 1, 0.15, 0.15)
    ctx = FitContext(series.feature_names, "return", 10, 1)
    losses = {}
    for name, extra in (("windows", {}), ("tbptt", {"tbptt_k1": 10, "tbptt_k2": 10})):
        train = TrainSettings(max_epochs=12, patience=12, batch_size=32, learning_rate=3e-3, accelerator="cpu", seed=0,
                            **extra)
        model = make_forecaster(get_entry("lstm"), NetworkSettings(hidden_size=16), train, ctx, progress=False)
        model.fit(series, split)
        losses[name] = min(row["val_loss"] for row in model.history_)
    # AR(2) with these coefficients: the best possible scaled loss is about 0.78 (naive: 1.0).
    assert losses["windows"] < 0.85 and losses["tbptt"] < 0.85
    assert abs(losses["tbptt"] - losses["windows"]) < 0.05
