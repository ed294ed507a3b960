"""The logged model's MLflow face, as MLflow's "models from code": no pickle anywhere.

``forecast fit`` logs this file as the model's code, with ``weights.pt`` and
``network.json`` as its artifacts. ``mlflow.pyfunc.load_model(uri)`` and ``mlflow models
predict`` run this file, which rebuilds the network from the toolkit's own classes and
loads the weights as tensors only. Input: raw windows ``[N, L, F]`` (float32, unscaled,
the features of ``network.json`` in order); output: forecasts ``[N, H]`` in target units, or for a
distribution network (``--distribution``) ``[N, H, P]``: mean, standard deviation (and Student-t
degrees of freedom) per step.

``forecast predict`` does not go through here: it reads the two files directly.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class ForecastNetwork(PythonModel):
    def load_context(self, context) -> None:
        from forecast.models.saved import load_network

        folder = Path(context.artifacts["weights"]).parent
        self.network = load_network(folder)

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.asarray(model_input, dtype=np.float32))   # [N, L, F]
        with torch.no_grad():
            return self.network(x).numpy()                                 # [N, H]


mlflow.models.set_model(ForecastNetwork())
