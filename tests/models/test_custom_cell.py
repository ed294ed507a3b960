"""Your own cell by dotted path: the example in docs/models.md trains in fit and backtest, and reloads only when named."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from forecast.cli import main

MODELS_PAGE = Path(__file__).parents[2] / "docs" / "models.md"
TINY = ["--offline", "--lookback", "6", "--hidden-size", "4", "--max-epochs", "1", "--accelerator", "cpu"]


@pytest.fixture
def cells(isolated):
    """The example of docs/models.md ("Your own cell"), written to cells.py in the working folder, as a user would."""
    text = MODELS_PAGE.read_text()
    block = re.search(r"<!-- cell-example.*?-->\s*```python\n(.*?)```", text, re.S).group(1)
    (isolated / "cells.py").write_text(block)
    return isolated


def test_the_readme_cell_trains_tracks_and_predicts(cells, capsys):
    assert main(["fit", "--model", "cells:LeakyRNN", *TINY, "--out", "fit"]) == 0
    frame = pd.read_csv(cells / "fit" / "predictions.csv")
    assert set(frame["model"]) == {"cells:LeakyRNN", "naive"}
    run = mlflow.search_runs(experiment_names=["forecast/^GSPC"]).iloc[0]
    assert run["tags.mlflow.runName"] == "fit-cells:LeakyRNN"
    capsys.readouterr()
    assert main(["predict", "--offline"]) == 2                       # not named: not imported
    assert "--model cells:LeakyRNN" in capsys.readouterr().err
    assert main(["predict", "--offline", "--model", "cells:LeakyRNN"]) == 0
    assert "forecast for 2019-01-02" in capsys.readouterr().out


def test_the_readme_cell_in_a_backtest(cells):
    assert main(["backtest", "--models", "cells:LeakyRNN,ridge", "--test-start", "2018-07-02", "--refit-every", "126",
                 *TINY, "--no-track", "--out", "bt"]) == 0
    frame = pd.read_csv(cells / "bt" / "predictions.csv")
    assert set(frame["model"]) == {"cells:LeakyRNN", "ridge", "naive"}


@pytest.mark.parametrize("code, model, message", [
    ("", "nowhere:Cell", "cannot import 'nowhere'"),
    ("x = 1\n", "broken1:Cell", "module 'broken1' has no 'Cell'"),
    ("class Cell:\n    pass\n", "broken2:Cell", "'Cell' is not a torch.nn.Module class"),
    ("import torch\nclass Cell(torch.nn.Module):\n    def __init__(self, *a):\n        super().__init__()\n"
     "    def forward(self, x):\n        return x\n", "broken3:Cell", "forward must return (out [B, L, hidden_size], state)"),
    ("raise RuntimeError('oops')\n", "broken4:Cell", "importing 'broken4' failed: RuntimeError: oops"),
])
def test_an_unknown_or_broken_cell_is_one_line(isolated, capsys, code, model, message):
    if code:   # a module name per case: a process imports a module once
        (isolated / f"{model.split(':')[0]}.py").write_text(code)
    assert main(["fit", "--model", model, *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
