"""The settings of `forecast sweep`: what it varies (the search space), how it runs, and its whole config.

Import-light, as ``settings.py``: ``forecast --help`` loads it.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Literal

from ..errors import ForecastError
from .settings import (EXECUTOR_HELP, RAY_ADDRESS_HELP, DataSettings, Executor, NetworkSettings, TrainSettings,
                       check_date, check_distribution)
from .yaml_io import flag_name, option, require

Sampler = Literal["random", "tpe"]

# What a sweep varies: search-space field -> (section, setting) it sets in each trial.
SEARCHED: dict[str, tuple[str, str]] = {
    "lr_range": ("train", "learning_rate"), "weight_decay_range": ("train", "weight_decay"),
    "batch_sizes": ("train", "batch_size"), "gradient_clips": ("train", "gradient_clip"),
    "hidden_sizes": ("network", "hidden_size"), "layer_counts": ("network", "num_layers"),
    "dropout_range": ("network", "dropout"), "lookbacks": ("data", "lookback"),
}


@dataclass
class SearchSpace:
    """The hyperparameters a sweep samples: ``*_range`` is LOW,HIGH (learning rate and weight decay
    log-uniform, dropout uniform); a plural name lists the values to choose from. One value (or LOW = HIGH)
    fixes a dimension. The defaults keep a trial around a minute on 2 cores with the recipe's epoch cap."""

    lr_range: list[float] = option([1e-4, 1e-2], "Adam learning rate: LOW,HIGH, sampled log-uniformly")
    weight_decay_range: list[float] = option([1e-7, 1e-3], "Adam weight decay: LOW,HIGH, sampled log-uniformly")
    dropout_range: list[float] = option([0.0, 0.5], "dropout between layers: LOW,HIGH, sampled uniformly (used with 2+ layers)")
    hidden_sizes: list[int] = option([16, 32, 64], "units per recurrent layer to choose from (128 x 2 layers: minutes per fold on one core)")
    layer_counts: list[int] = option([1, 2], "numbers of stacked layers to choose from")
    lookbacks: list[int] = option([10, 20, 40], "input window lengths (days) to choose from")
    batch_sizes: list[int] = option([64, 128, 256], "batch sizes to choose from")
    gradient_clips: list[float] = option([0.5, 1.0, 5.0], "gradient-norm clips to choose from (0: off)")

    def __post_init__(self) -> None:
        for name in ("lr_range", "weight_decay_range", "dropout_range"):
            values = getattr(self, name)
            require(len(values) == 2 and values[0] <= values[1], name, values, "must be LOW,HIGH with LOW <= HIGH")
        require(self.lr_range[0] > 0, "lr_range", self.lr_range, "must be positive (sampled log-uniformly)")
        require(self.weight_decay_range[0] > 0, "weight_decay_range", self.weight_decay_range,
                "must be positive (sampled log-uniformly; a tiny LOW such as 1e-8 is as good as none)")
        require(0 <= self.dropout_range[0] and self.dropout_range[1] < 1, "dropout_range", self.dropout_range,
                "must lie in [0, 1)")
        for name, low in (("hidden_sizes", 1), ("layer_counts", 1), ("lookbacks", 2), ("batch_sizes", 1),
                          ("gradient_clips", 0)):
            values = getattr(self, name)
            require(bool(values) and min(values) >= low, name, values, f"must list values of at least {low}")
            setattr(self, name, sorted(set(values)))


# A model family's changes to the shared space, from YAML only (space_rnn, space_lstm, space_gru): each key of
# the space, None = the shared value.
SpaceChanges = make_dataclass("SpaceChanges", [
    (f.name, typing.get_type_hints(SearchSpace)[f.name] | None, field(default=None, metadata=f.metadata))
    for f in fields(SearchSpace)])
SpaceChanges.__doc__ = "One model family's changes to the shared search space (YAML only); None keeps the shared value."
SPACE_FAMILIES = ("rnn", "lstm", "gru")   # the LSTM variants search the LSTM's space; your own cells the shared one


def _changes() -> Any:
    return field(default_factory=SpaceChanges, metadata={"yaml_only": True})


@dataclass
class SweepSettings:
    models: list[str] = option(["lstm", "gru", "rnn"], "networks to tune, one study each (see `forecast models`; your own cell as module:Class)")
    trials: int = option(20, "finished (complete or pruned) trials per model's study, counted over every worker on every machine; run again with more to add trials")
    sampler: Sampler = option("random", "random: complete trials, for importances (Greff et al.); tpe: find the best, pruning bad trials")
    test_start: str | None = option(None, "first day of the held-out test period the sweep never sees, YYYY-MM-DD (default: the study's, else the last quarter of the data)")
    val_folds: int = option(3, "walk-forward validation folds before --test-start that score each trial")
    fold_days: int = option(252, "trading days per validation fold (each refit on everything before it)")
    storage: str | None = option(None, "Optuna storage URL, e.g. postgresql://user@host/db for many machines (default: sqlite in --out)")
    study: str | None = option(None, "study name; each model's study is <study>-<model>-<target> (default: the ticker or data source)")
    jobs: int = option(1, "workers, each running trials one after another: local processes, or Ray tasks with --executor ray")
    executor: Executor = option("local", EXECUTOR_HELP)
    ray_address: str | None = option(None, RAY_ADDRESS_HELP)
    timeout: float | None = option(None, "seconds after which no new trial starts (default: none)")
    heartbeat: int = option(30, "seconds between a running trial's heartbeats in the storage")
    grace_period: int = option(600, "seconds without a heartbeat before a trial counts as dead, is failed and retried (a short one fails live trials)")
    max_retries: int = option(2, "times a dead worker's trial is retried")

    def __post_init__(self) -> None:
        require(bool(self.models), "models", self.models, "needs at least one model")
        require(self.trials >= 1, "trials", self.trials, "must be at least 1")
        require(self.val_folds >= 1, "val_folds", self.val_folds, "must be at least 1")
        require(self.fold_days >= 5, "fold_days", self.fold_days, "must be at least 5")
        require(self.jobs >= 1, "jobs", self.jobs, "must be at least 1")
        require(self.timeout is None or self.timeout > 0, "timeout", self.timeout, "must be positive")
        require(self.heartbeat >= 1, "heartbeat", self.heartbeat, "must be at least 1 second")
        require(self.grace_period > self.heartbeat, "grace_period", self.grace_period,
                f"must be longer than --heartbeat ({self.heartbeat}s)")
        require(self.max_retries >= 0, "max_retries", self.max_retries, "must be >= 0")
        require(self.storage is None or re.match(r"^[a-z][a-z0-9+]*://", self.storage) is not None, "storage",
                self.storage, "must be a database URL such as sqlite:///study.db or postgresql://user@host/db")
        require(self.study is None or re.fullmatch(r"[\w^.=@-]{1,100}", self.study) is not None, "study", self.study,
                "must be up to 100 letters, digits or ^ . = @ _ -")
        if self.test_start is not None:
            self.test_start = check_date("test_start", self.test_start)


@dataclass
class SweepConfig:
    """`forecast sweep`: each network tuned by walk-forward validation before the test period, tracked in MLflow."""

    data: DataSettings = field(default_factory=DataSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    space: SearchSpace = field(default_factory=SearchSpace)
    space_rnn: SpaceChanges = _changes()
    space_lstm: SpaceChanges = _changes()
    space_gru: SpaceChanges = _changes()
    out: str | None = option(None, "this sweep's folder, reused by every run of it (default: runs/sweep-<study>)")
    experiment: str | None = option(None, "MLflow experiment name (default: forecast/<ticker or data source>)")
    track: bool = option(True, "log the sweep and every trial to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db and ./mlruns)")

    def __post_init__(self) -> None:
        check_distribution(self.network, self.data)
        defaults = {"data": DataSettings(), "network": NetworkSettings(), "train": TrainSettings()}
        for key, (section, name) in SEARCHED.items():
            if getattr(getattr(self, section), name) != getattr(defaults[section], name):
                raise ForecastError(f"{flag_name(name)} is what the sweep searches; set its range with "
                                    f"{flag_name(key)} instead")
        for family in SPACE_FAMILIES:
            self.space_for(family)

    def space_for(self, family: str | None) -> SearchSpace:
        """The search space of a model family (rnn, lstm, gru; None: the shared one)."""
        if family is None:
            return self.space
        changes = {k: v for k, v in vars(getattr(self, f"space_{family}")).items() if v is not None}
        try:
            return SearchSpace(**{**vars(self.space), **changes})
        except ForecastError as err:
            raise ForecastError(f"space_{family}: {err}") from None
