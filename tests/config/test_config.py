"""Typed configs: YAML mirrors the dataclasses, flags override, unknown keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast.config.settings import FitConfig
from forecast.config.yaml_io import resolve, to_flat_dict
from forecast.errors import ForecastError

CONFIGS = Path(__file__).parents[2] / "configs"


def test_shipped_fit_configs_load_and_state_only_what_differs():
    for path in sorted(CONFIGS.glob("*.yaml")):
        text = path.read_text()
        if "backtest:" in text or "bench:" in text or "sweep:" in text:
            continue  # loaded below with their own commands
        cfg = resolve(FitConfig, path, {})
        assert cfg != FitConfig(), path.name
    assert resolve(FitConfig, CONFIGS / "gru.yaml", {}).model == "gru"
    # No shipped file pins the training recipe: that lives in one place, TrainSettings.
    for path in CONFIGS.glob("*.yaml"):
        assert not any(key in path.read_text() for key in ("learning_rate", "patience", "max_epochs")), path.name


def test_flags_override_the_file_and_defaults_fill_the_rest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  lookback: 12\nnetwork:\n  hidden_size: 8\n")
    cfg = resolve(FitConfig, path, {"hidden_size": 16, "max_epochs": 2})
    assert (cfg.data.lookback, cfg.network.hidden_size, cfg.train.max_epochs, cfg.train.batch_size) == (12, 16, 2, 64)
    assert to_flat_dict(cfg)["data.lookback"] == 12


@pytest.mark.parametrize("text, message", [
    ("network:\n  hiden_size: 8\n", r"unknown key 'hiden_size' in config file .*section 'network'.*did you mean 'hidden_size'"),
    ("netwrk:\n  hidden_size: 8\n", r"unknown key 'netwrk'.*did you mean 'network'"),
    ("data:\n  target: price\n", r"--target must be one of return, volatility, got 'price'"),
    ("data:\n  features: returns,rang\n", r"--features must be one of returns, range, volume, got 'rang' \(did you mean 'range'\?\)"),
    ("train:\n  learning_rate: .inf\n", r"--learning-rate must be a finite number"),
    ("data:\n  lookback: many\n", r"--lookback must be of type int, got 'many'"),
    ("data:\n  lookback: 1\n", r"--lookback must be at least 2, got 1"),
    ("data: [1, 2\n", r"not valid YAML at line"),
    ("- a\n- b\n", r"must hold a mapping"),
])
def test_config_typos_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ForecastError, match=message):
        resolve(FitConfig, path, {})


def test_missing_config_file():
    with pytest.raises(ForecastError, match="not found"):
        resolve(FitConfig, "nope.yaml", {})


def test_shipped_backtest_and_bench_configs_load_and_flags_override():
    from forecast.config.settings import BacktestConfig, BenchConfig

    assert resolve(BenchConfig, CONFIGS / "bench.yaml", {}).bench.synthetic_lag == [5, 10, 20, 40]
    assert "lstm-fgr" in resolve(BacktestConfig, CONFIGS / "odyssey.yaml", {}).backtest.models
    cfg = resolve(BacktestConfig, CONFIGS / "backtest.yaml", {"jobs": 2, "models": "lstm,gru"})
    assert (cfg.backtest.test_start, cfg.backtest.jobs) == ("2015-01-01", 2)
    assert cfg.backtest.models == ["lstm", "gru"]


@pytest.mark.parametrize("cls, flags", [
    ("FitConfig", ["--model", "gru", "--seeds", "1,2", "--features", "returns,range", "--synthetic", "tar"]),
    ("BacktestConfig", ["--models", "lstm,ridge", "--test-start", "2016-01-04", "--window", "rolling"]),
    ("BenchConfig", ["--series", "longmem", "--synthetic-lag", "5,10", "--seeds", "0,1,2"]),
    ("DiagnoseConfig", ["--models", "rnn,gru"]),
])
def test_print_config_round_trips_through_config(tmp_path, cls, flags):
    """--print-config prints YAML that --config reads back to the very same settings."""
    import subprocess
    import sys

    from forecast.config import settings as config

    command = {"FitConfig": ["fit"], "BacktestConfig": ["backtest"], "BenchConfig": ["bench"],
               "DiagnoseConfig": ["diagnose", "gradients"]}[cls]
    run = lambda *args: subprocess.run([sys.executable, "-m", "forecast", *command, *args], capture_output=True,
                                       text=True, cwd=tmp_path)
    first = run(*flags, "--print-config")
    assert first.returncode == 0, first.stderr
    (tmp_path / "printed.yaml").write_text(first.stdout)
    again = run("--config", "printed.yaml", "--print-config")
    assert again.stdout == first.stdout
    assert resolve(getattr(config, cls), tmp_path / "printed.yaml", {}) != getattr(config, cls)()
