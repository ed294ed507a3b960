"""Typed configs: YAML mirrors the dataclasses, flags override, unknown keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast.config import FitConfig, resolve, to_flat_dict
from forecast.errors import ForecastError

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("name", ["default", "lstm", "gru", "rnn"])
def test_shipped_configs_load(name):
    cfg = resolve(FitConfig, CONFIGS / f"{name}.yaml", {})
    assert cfg.model.model == ("lstm" if name == "default" else name)


def test_flags_override_the_file_and_defaults_fill_the_rest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  lookback: 12\nmodel:\n  hidden_size: 8\n")
    cfg = resolve(FitConfig, path, {"hidden_size": 16, "max_epochs": 2})
    assert (cfg.data.lookback, cfg.model.hidden_size, cfg.train.max_epochs, cfg.train.batch_size) == (12, 16, 2, 64)
    assert to_flat_dict(cfg)["data.lookback"] == 12


@pytest.mark.parametrize("text, message", [
    ("model:\n  hiden_size: 8\n", r"unknown key 'hiden_size' in config file .*section 'model'.*did you mean 'hidden_size'"),
    ("modle:\n  hidden_size: 8\n", r"unknown key 'modle'.*did you mean 'model'"),
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


def test_shipped_backtest_config_loads_and_flags_override():
    from forecast.config import BacktestConfig

    cfg = resolve(BacktestConfig, CONFIGS / "backtest.yaml", {"jobs": 2})
    assert (cfg.backtest.test_start, cfg.backtest.refit_every, cfg.backtest.jobs) == ("2015-01-01", 252, 2)
    assert cfg.backtest.models == "rnn,lstm,gru,naive,mean,ridge"
