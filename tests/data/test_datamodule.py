"""The data module: the scaler sees training rows only; batches are deterministic and complete."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

from forecast.config.settings import DataSettings
from forecast.data.datamodule import TensorBatches, WindowDataModule, training_rows
from forecast.data.load import load_history
from forecast.data.windows import build_series, make_targets


def gspc_series():
    return build_series(load_history(DataSettings(offline=True)), "return", ["returns", "range"])


def test_scaler_is_fit_on_training_rows_only():
    series = gspc_series()
    dm = WindowDataModule(series, lookback=20, horizon=1, batch_size=32)
    dm.setup("fit")
    rows = training_rows(dm.split.train, 20)
    expected = StandardScaler().fit(series.features[rows])
    np.testing.assert_allclose(dm.scaler.feature_mean_, expected.mean_)
    np.testing.assert_allclose(dm.scaler.feature_scale_, expected.scale_)
    y = make_targets(series.target, dm.split.train, 1)
    assert np.isclose(dm.scaler.target_mean_, y.mean()) and np.isclose(dm.scaler.target_scale_, y.std())
    # Changing everything after the training rows leaves the statistics unchanged.
    future = series.features.copy()
    future[rows.stop:] *= 50
    changed = WindowDataModule(type(series)(**{**series.__dict__, "features": future}), 20, 1, 32, split=dm.split)
    changed.setup("fit")
    np.testing.assert_array_equal(changed.scaler.feature_mean_, dm.scaler.feature_mean_)
    assert rows.stop - 1 == dm.split.train.max() < dm.split.val.min()


def test_tensor_batches_cover_every_window_in_a_seeded_order():
    x, y = torch.arange(10.0).reshape(10, 1, 1), torch.arange(10.0).reshape(10, 1)
    first = [b[1].flatten().tolist() for b in TensorBatches(x, y, 4, shuffle=True, seed=3)]
    again = [b[1].flatten().tolist() for b in TensorBatches(x, y, 4, shuffle=True, seed=3)]
    assert first == again and len(first) == len(TensorBatches(x, y, 4)) == 3
    assert sorted(sum(first, [])) == list(range(10))
    plain = [b[0].shape for b in TensorBatches(x, y, 4)]
    assert plain == [torch.Size([4, 1, 1]), torch.Size([4, 1, 1]), torch.Size([2, 1, 1])]


def test_lightning_datamodule_ingests_in_prepare_data():
    loads = []

    def load():
        loads.append(1)
        return build_series(load_history(DataSettings(offline=True)), "return", ["returns"])

    dm = WindowDataModule(load, lookback=10, horizon=1, batch_size=256)
    assert not loads                      # nothing is read before Lightning asks for it
    dm.prepare_data()
    dm.setup("fit")
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (256, 10, 1) and yb.shape == (256, 1)
    assert abs(float(dm.train_y.mean())) < 1e-4 and abs(float(dm.train_y.std()) - 1) < 1e-3
