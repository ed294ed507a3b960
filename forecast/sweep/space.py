"""A sweep's search space as Optuna suggestions, and the settings a trial trains with.

Every dimension is sampled in every trial (dropout too, though it only acts with two or more
layers), so that importance evaluators see one search space without conditional parameters.
Everything the space does not vary comes from the sweep's ``train``/``network`` settings, that is
from the one training recipe of ``TrainSettings``: the sweep has no training defaults of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config.settings import NetworkSettings, TrainSettings
from ..config.sweep_settings import SEARCHED, SPACE_FAMILIES, SearchSpace
from ..models import ModelEntry
from ..engine.walkforward import ModelSetup

LOG_SCALE = ("lr_range", "weight_decay_range")


def family(entry: ModelEntry) -> str | None:
    """The space a network searches: rnn, lstm (its variants too) or gru; None (the shared one) for your own cell."""
    if entry.custom or entry.cell is None:
        return None
    head = entry.cell.split("-")[0]
    return head if head in SPACE_FAMILIES else None


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """One value per dimension, named as the setting it sets (learning_rate, hidden_size, lookback...)."""
    params = {}
    for key, (_, name) in SEARCHED.items():
        values = getattr(space, key)
        if key.endswith("_range"):
            params[name] = trial.suggest_float(name, values[0], values[1], log=key in LOG_SCALE)
        else:
            params[name] = trial.suggest_categorical(name, values)
    return params


def setup_of(params: dict[str, Any], network: NetworkSettings, train: TrainSettings) -> ModelSetup:
    """The settings a trial's values give: the sweep's own settings with the sampled ones replaced."""
    sections: dict[str, dict[str, Any]] = {"data": {}, "network": {}, "train": {}}
    for section, name in SEARCHED.values():
        sections[section][name] = params[name]
    net = sections["network"]
    if net["num_layers"] < 2:
        net["dropout"] = 0.0            # torch applies dropout between layers only
    return ModelSetup(replace(network, **net), replace(train, **sections["train"]), int(sections["data"]["lookback"]))


def describe(setup: ModelSetup) -> str:
    """A short line: hidden 64x2, lookback 20, lr 2.1e-03, batch 128."""
    n, t = setup.network, setup.train
    return (f"hidden {n.hidden_size}x{n.num_layers}, lookback {setup.lookback}, lr {t.learning_rate:.1e}, "
            f"batch {t.batch_size}, clip {t.gradient_clip:g}, wd {t.weight_decay:.0e}"
            + (f", dropout {n.dropout:.2f}" if n.num_layers > 1 else ""))
