"""Typed configuration: dataclasses with a default and a one-line doc per field.

The YAML files in ``configs/`` mirror these sections (``data:``, ``model:``,
``train:``, ``backtest:`` plus a few top-level keys); every field is also a
command-line flag (``lookback`` -> ``--lookback``). Precedence: defaults < YAML <
flags. Unknown keys are errors that name the key, never silently ignored.

Import-light on purpose: ``forecast --help`` loads this module, not torch.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ForecastError

TICKER_PATTERN = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9.^=_-]{0,24}$")
FEATURES = ("returns", "range", "volume")
TARGETS = ("return", "volatility")


def option(default: Any, doc: str, choices: tuple | None = None) -> Any:
    """A dataclass field carrying its help text (and allowed values) for the CLI."""
    return field(default=default, metadata={"help": doc, "choices": choices})


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def require(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ForecastError(f"{flag_name(name)} {rule}, got {value!r}")


@dataclass
class DataConfig:
    ticker: str = option("^GSPC", "Yahoo Finance ticker to forecast (a name such as ^GSPC, never a path)")
    csv: str | None = option(None, "read prices from this CSV (Date, Close and/or Adj Close, optional Open/High/Low/Volume) instead of downloading")
    synthetic: str | None = option(None, "use a simulated series with a known best error instead: rw, ar2 or longmem")
    synthetic_length: int = option(3000, "number of days of the simulated series")
    synthetic_noise: float = option(0.01, "standard deviation of the simulated series' noise (its best possible RMSE)")
    synthetic_lag: int = option(40, "longmem only: the lag L in r_t = 0.8 r_(t-L) + e_t")
    synthetic_seed: int = option(0, "seed of the simulated series")
    offline: bool = option(False, "do not try to download: use the cache, else the bundled history")
    cache_dir: str | None = option(None, "download cache folder (default: $FORECAST_CACHE_DIR or ~/.cache/forecast)")
    target: str = option("return", "what to forecast: next day's log return, or its volatility proxy", TARGETS)
    features: str = option("returns", "comma-separated input features: returns, range (log high/low), volume (log volume change)")
    lookback: int = option(30, "days of history in each input window")
    horizon: int = option(1, "days ahead to forecast (more than 1: one output per day, direct multi-output)")
    val_fraction: float = option(0.15, "share of windows for validation (taken just before the test part)")
    test_fraction: float = option(0.15, "share of windows for the test part (the most recent ones)")

    def __post_init__(self) -> None:
        if self.csv is None and self.synthetic is None:
            require(bool(TICKER_PATTERN.match(self.ticker or "")), "ticker", self.ticker,
                  "must be a ticker symbol (letters, digits, ^ . = _ -; no slashes or spaces); use --csv for a file")
        require(self.synthetic in (None, "rw", "ar2", "longmem"), "synthetic", self.synthetic, "must be one of rw, ar2, longmem")
        require(self.synthetic_length >= 100, "synthetic_length", self.synthetic_length, "must be at least 100")
        require(self.synthetic_noise > 0, "synthetic_noise", self.synthetic_noise, "must be positive")
        require(self.synthetic_lag >= 1, "synthetic_lag", self.synthetic_lag, "must be at least 1")
        require(self.target in TARGETS, "target", self.target, f"must be one of {', '.join(TARGETS)}")
        unknown = [f for f in self.feature_list if f not in FEATURES]
        require(not unknown and "returns" in self.feature_list, "features", self.features,
              f"must list some of {', '.join(FEATURES)} and include returns")
        require(self.lookback >= 2, "lookback", self.lookback, "must be at least 2")
        require(self.horizon >= 1, "horizon", self.horizon, "must be at least 1")
        require(0 < self.val_fraction < 0.5, "val_fraction", self.val_fraction, "must be between 0 and 0.5")
        require(0 < self.test_fraction < 0.5, "test_fraction", self.test_fraction, "must be between 0 and 0.5")

    @property
    def feature_list(self) -> list[str]:
        return [f.strip() for f in (self.features or "").split(",") if f.strip()]

    @property
    def source_name(self) -> str:
        """Name of the data set: the ticker, the CSV's stem, or the simulation."""
        if self.synthetic:
            return f"synthetic-{self.synthetic}"
        if self.csv:
            return Path(self.csv).stem
        return self.ticker


@dataclass
class ModelConfig:
    model: str = option("lstm", "model name from the registry (see `forecast models`)")
    hidden_size: int = option(64, "units per recurrent layer")
    num_layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout between recurrent layers (needs num_layers > 1)")
    chrono: bool = option(True, "chrono initialisation of LSTM/GRU gate biases: memory time scales up to --lookback steps")

    def __post_init__(self) -> None:
        require(self.hidden_size >= 1, "hidden_size", self.hidden_size, "must be at least 1")
        require(self.num_layers >= 1, "num_layers", self.num_layers, "must be at least 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")


@dataclass
class TrainConfig:
    max_epochs: int = option(30, "upper bound on training epochs (early stopping usually ends sooner)")
    batch_size: int = option(64, "windows per gradient step")
    learning_rate: float = option(1e-3, "Adam learning rate")
    weight_decay: float = option(0.0, "Adam weight decay (L2)")
    patience: int = option(5, "epochs without validation improvement before early stopping")
    gradient_clip: float = option(1.0, "clip the gradient norm to this value (0: off)")
    seed: int = option(42, "random seed: same seed, same data -> same CPU result")
    accelerator: str = option("auto", "auto (GPU where there is one), cpu or gpu", ("auto", "cpu", "gpu"))
    tbptt_k1: int = option(0, "truncated BPTT: run statefully over the training series, update the weights every K1 steps (0: windowed training)")
    tbptt_k2: int = option(0, "truncated BPTT: backpropagate K2 steps at each update (default: K1)")

    def __post_init__(self) -> None:
        require(self.tbptt_k1 >= 0, "tbptt_k1", self.tbptt_k1, "must be >= 0")
        require(self.tbptt_k2 >= 0, "tbptt_k2", self.tbptt_k2, "must be >= 0")
        require(self.tbptt_k1 > 0 or self.tbptt_k2 == 0, "tbptt_k2", self.tbptt_k2, "needs --tbptt-k1 too")
        require(self.max_epochs >= 1, "max_epochs", self.max_epochs, "must be at least 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be positive")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        require(self.patience >= 1, "patience", self.patience, "must be at least 1")
        require(self.gradient_clip >= 0, "gradient_clip", self.gradient_clip, "must be >= 0")
        require(self.accelerator in ("auto", "cpu", "gpu"), "accelerator", self.accelerator, "must be auto, cpu or gpu")


@dataclass
class RunConfig:
    """What every command that trains shares: data, network, training, and where results go."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str | None = option(None, "folder for this run's files (default: runs/<data>-<what>-<time>)")
    experiment: str | None = option(None, "MLflow experiment name (default: forecast/<ticker or data source>)")
    track: bool = option(True, "log the run to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db and ./mlruns)")


@dataclass
class FitConfig(RunConfig):
    """`forecast fit`: one model, one time-ordered split."""


@dataclass
class BacktestSettings:
    models: str = option("rnn,lstm,gru,naive,mean,ridge", "comma-separated models to compare (see `forecast models`); naive is always added")
    test_start: str | None = option(None, "first day forecast, YYYY-MM-DD (default: the last quarter of the data)")
    refit_every: int = option(252, "trading days per fold: every model is refit before each fold (252: about a year)")
    window: str = option("expanding", "training data of a fold: all days before it, or the last --train-length days", ("expanding", "rolling"))
    train_length: int = option(2520, "rolling window only: training windows per fold (validation included)")
    warm_start: bool = option(False, "start each fold's network from the previous fold's weights (faster refits)")
    cost_bps: float = option(1.0, "trading cost in basis points per unit of turnover")
    jobs: int = option(1, "worker processes for the folds (results do not depend on it)")

    def __post_init__(self) -> None:
        require(self.refit_every >= 5, "refit_every", self.refit_every, "must be at least 5 days")
        require(self.window in ("expanding", "rolling"), "window", self.window, "must be expanding or rolling")
        require(self.train_length >= 50, "train_length", self.train_length, "must be at least 50")
        require(self.cost_bps >= 0, "cost_bps", self.cost_bps, "must be >= 0")
        require(self.jobs >= 1, "jobs", self.jobs, "must be at least 1")
        if self.test_start is not None:
            import datetime

            try:
                datetime.date.fromisoformat(str(self.test_start))
            except ValueError:
                raise ForecastError(f"--test-start must be a date YYYY-MM-DD, got {self.test_start!r}") from None


@dataclass
class BacktestConfig(RunConfig):
    """`forecast backtest`: several models, walk-forward folds."""

    backtest: BacktestSettings = field(default_factory=BacktestSettings)


# ---------------------------------------------------------------- resolution

def field_type(cls: type, name: str) -> type:
    """The plain type of a field: `int | None` -> int; used to coerce YAML and flag values."""
    tp = typing.get_type_hints(cls)[name]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _coerce(name: str, value: Any, tp: type) -> Any:
    if value is None:
        return None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "0", "off"):
            return False
    else:
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            pass
    raise ForecastError(f"{flag_name(name)} must be of type {tp.__name__}, got {value!r}")


def section_fields(cls: type) -> list:
    """The nested sections of a config class (fields whose type is itself a config dataclass)."""
    hints = typing.get_type_hints(cls)
    return [f for f in fields(cls) if is_dataclass(hints[f.name])]


def scalar_fields(cls: type) -> list:
    """The fields of a config class that are values (not nested sections)."""
    sections = {f.name for f in section_fields(cls)}
    return [f for f in fields(cls) if f.name not in sections]


def section_defaults(cls: type, name: str) -> Any:
    """The default instance of a section: a command may change its defaults (bench: lookback 50)."""
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory()


def _unknown_key(key: str, valid: list[str], where: str) -> ForecastError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(valid)})"
    return ForecastError(f"unknown key {key!r} in {where}{hint}")


def build(cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build a (nested) config from a dict; unknown keys raise naming the key."""
    if not isinstance(values, dict):
        raise ForecastError(f"{where} must be a mapping of keys to values, got {values!r}")
    sections = {f.name: f for f in section_fields(cls)}
    scalars = {f.name: f for f in scalar_fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in sections:
            base = section_defaults(cls, key)
            if not isinstance(value or {}, dict):
                raise ForecastError(f"{where} section {key!r} must be a mapping of keys to values, got {value!r}")
            merged = {f.name: getattr(base, f.name) for f in fields(base)} | (value or {})
            kwargs[key] = build(type(base), merged, f"{where} section {key!r}")
        elif key in scalars:
            kwargs[key] = _coerce(key, value, field_type(cls, key))
        else:
            raise _unknown_key(key, list(sections) + list(scalars), where)
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ForecastError(f"config file {str(path)!r} not found; see configs/ for examples")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise ForecastError(f"config file {str(path)!r} is not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(loaded, dict):
        raise ForecastError(f"config file {str(path)!r} must hold a mapping (key: value), not {type(loaded).__name__}")
    return loaded


def resolve(cls: type, yaml_path: str | Path | None, flags: dict[str, Any]) -> Any:
    """defaults < YAML file < flags. ``flags`` maps field name -> value given on the command line."""
    values = load_yaml(yaml_path) if yaml_path else {}
    where = f"config file {str(yaml_path)!r}" if yaml_path else "config"
    # Validate the file's keys first (errors name the file), then lay flags over it.
    build(cls, values, where)
    owners = {f.name: s.name for s in section_fields(cls) for f in scalar_fields(typing.get_type_hints(cls)[s.name])}
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for name, value in flags.items():
        if name in owners:
            merged.setdefault(owners[name], {})
            merged[owners[name]] = {**(merged[owners[name]] or {}), name: value}
        else:
            merged[name] = value
    return build(cls, merged, where)


def to_flat_dict(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data.lookback": 30, ...}``: MLflow params and the saved config."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            out.update(to_flat_dict(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict, the layout of the YAML files."""
    from dataclasses import asdict

    return asdict(config)
