"""What comes from a store is checked before it is used; numbers that cannot be right are said to be wrong.

A run's ``network.json`` edited by hand (an unknown key, a size no setting allows, a path for a cell name,
a huge seed ensemble) gets one line naming the run and the field, before anything is allocated, and
``predict`` leaves no temporary folder behind. A training that diverged fails its command and its run;
a forecast outside anything the history has seen gets a note. Models whose daily losses are equal get
the same verdict, and the JSON written is strict.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from forecast.cli import main

TINY = ["--synthetic", "ar2", "--synthetic-length", "400", "--lookback", "5", "--max-epochs", "1",
        "--hidden-size", "4", "--accelerator", "cpu"]


def one_line(capsys, argv, *needles) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def strict(text: str):
    """Parse as strict JSON: NaN, Infinity and -Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def fitted_run(tmp_path) -> tuple[str, Path]:
    """The run id and the artifact folder of the one fit in this test's store."""
    (spec,) = tmp_path.glob("mlruns/*/*/artifacts/network/network.json")
    return spec.parents[2].name, spec.parent


def test_a_tampered_network_json_is_refused_in_one_line_and_predict_leaves_no_folder(tmp_path, capsys, monkeypatch):
    import torch

    assert main(["fit", *TINY, "--out", str(tmp_path / "fit")]) == 0
    run_id, folder = fitted_run(tmp_path)
    original = json.loads((folder / "network.json").read_text())
    scratch = tmp_path / "scratch"             # every temporary folder of this process goes here
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    predict = ["predict", "--run-id", run_id, "--offline"]
    assert main(predict) == 0
    out = capsys.readouterr().out
    assert "forecast for" in out and "note:" not in out
    assert list(scratch.iterdir()) == []       # the downloaded network/ folder is gone

    def tampered(change, *needles):
        spec = json.loads(json.dumps(original))
        change(spec)
        (folder / "network.json").write_text(json.dumps(spec))
        err = one_line(capsys, predict, f"run {run_id}", *needles)
        assert list(scratch.iterdir()) == [], err      # removed on an error too
        return err

    tampered(lambda s: s.update(extra=1), "'extra'")
    tampered(lambda s: s["shape"].update(hidden_size=200_000), "shape.hidden_size", "200000")
    err = tampered(lambda s: s["shape"].update(cell="../../etc/passwd"), "shape.cell")
    assert "not a cell of this toolkit" in err
    tampered(lambda s: s.update(members=100_000), "members", "100000")
    tampered(lambda s: s["shape"].update(num_layers=16, hidden_size=4096), "weights.pt")  # allowed, but not these weights
    tampered(lambda s: s.update(features=["returns", "range"]), "features")

    # Weights that forecast what no day of the history has seen: a note says so.
    (folder / "network.json").write_text(json.dumps(original))
    state = torch.load(folder / "weights.pt", weights_only=True)
    state["target_mean"] = torch.tensor(5.0)
    torch.save(state, folder / "weights.pt")
    assert main(predict) == 0
    out = capsys.readouterr().out
    assert re.search(r"note: this forecast \(daily log return \+5.*lies outside anything the history has seen", out), out


def test_a_diverged_training_fails_naming_model_fold_and_seed(capsys):
    one_line(capsys, ["fit", *TINY, "--learning-rate", "1e6", "--seed", "3"],
             "lstm diverged on fold 0, seed 3", "naive forecast", "--learning-rate")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    err = one_line(capsys, ["backtest", *TINY, "--models", "lstm", "--refit-every", "50", "--learning-rate", "1e6",
                            "--seed", "0"], "naive forecast")
    assert re.search(r"lstm diverged on fold [1-9]\d*, seed 0: validation MSE \S+ is \S+x the naive", err), err
    statuses = {r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                if "mlflow.parentRunId" not in r.data.tags}
    assert statuses == {"FAILED"}


def test_perfect_forecasts_get_one_verdict_and_strict_json(tmp_path, capsys):
    # Exactly the same log return every day: ridge forecasts it exactly, garch-t and hist to rounding.
    days = pd.bdate_range("2015-01-01", periods=600)
    pd.DataFrame({"Date": days, "Close": 100 * np.exp(0.001 * np.arange(600))}).to_csv(tmp_path / "steady.csv",
                                                                                      index=False)
    assert main(["backtest", "--csv", str(tmp_path / "steady.csv"), "--models", "ridge,garch-t,hist",
                 "--lookback", "5", "--out", str(tmp_path / "bt")]) == 0
    capsys.readouterr()
    metrics = strict((tmp_path / "bt" / "metrics.json").read_text())
    strict((tmp_path / "bt" / "manifest.json").read_text())
    perfect = ("ridge", "garch-t", "hist")
    assert {metrics["verdicts"][m] for m in perfect} == {"better than naive (SPA, MCS)"}, metrics["verdicts"]
    assert all(metrics["overall"][m]["dm_pvalue"] == 0.0 for m in perfect)
    assert all(metrics["overall"][m]["in_mcs"] for m in perfect)
    assert metrics["distribution"]["crps_verdicts"]["garch-t"] == metrics["distribution"]["crps_verdicts"]["hist"]
    assert metrics["overall"]["garch-t"]["crps_in_mcs"] == metrics["overall"]["hist"]["crps_in_mcs"] is True


def test_equal_losses_equal_results_and_json_is_strict(tmp_path):
    from forecast.stats.metrics import diebold_mariano_losses, model_confidence_set, spa_test
    from forecast.tracking.record import RunRecord
    from forecast.tracking.runs import clean

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 100) ** 2
    losses = pd.DataFrame({"naive": base, "a": np.zeros(100), "b": np.full(100, 1e-21), "c": base + 1e-6})
    mcs = model_confidence_set(losses)
    assert mcs["a"] == mcs["b"] and mcs["a"]["in_mcs"] and not mcs["naive"]["in_mcs"] and not mcs["c"]["in_mcs"]
    stat, p = diebold_mariano_losses(np.full(50, 1e-6), np.full(50, 1e-6) + 1e-22)     # equal up to rounding
    assert np.isnan(stat) and p == 1.0
    assert diebold_mariano_losses(np.zeros(50), np.full(50, 2.0))[1] == 0.0
    assert spa_test(losses[["naive", "c"]], "naive")["pvalue"] == 1.0      # worse every day: never better
    assert clean({"x": [np.float64("inf"), np.nan, 1.5], "y": (np.int64(2), -np.inf)}) == {"x": [None, None, 1.5],
                                                                                          "y": [2, None]}
    record = RunRecord.__new__(RunRecord)
    record.out, record.work, record.files = tmp_path, tmp_path, []
    strict(record.json("metrics.json", {"r2": float("-inf"), "p": np.float64("nan")}).read_text())
