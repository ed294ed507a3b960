"""Typed settings of every command: dataclasses with a default and a one-line doc per field.

One owner for every setting. Allowed values are declared once, as ``Literal`` types
(and ``list[...]`` of them); ``--help``, YAML files and flags all read them from here.
The YAML files in ``configs/`` mirror the sections (``data:``, ``network:``,
``train:``, ``backtest:``, ...) plus a few top-level keys; every field is also a flag
(``lookback`` -> ``--lookback``). Precedence: defaults < YAML < flags. Unknown keys are
errors that name the key; ``--print-config`` prints the resolved settings as YAML that
``--config`` reads back unchanged.

Import-light on purpose: ``forecast --help`` loads this module, not torch.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

from ..data.covariate_spec import PANEL, Covariate
from ..data.tickers import check_ticker
from ..errors import ForecastError, shorten
from ..models import get_entry, parse_models
from .yaml_io import flag_name, option, require

Target = Literal["return", "volatility"]
Feature = Literal["returns", "range", "volume"]
SyntheticKind = Literal["rw", "ar2", "longmem", "tar", "garch", "panel"]
FamilyPart = Literal["tune", "report", "all"]
Window = Literal["expanding", "rolling"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu"]   # Lightning's names
DistributionFamily = Literal["normal", "student-t"]
Executor = Literal["local", "ray"]
EXECUTOR_HELP = ("where the work runs: local (worker processes on this machine, --jobs of them) or ray (Ray tasks: "
                 "on the cluster at --ray-address or $RAY_ADDRESS, else on a local Ray started for the command)")
RAY_ADDRESS_HELP = ("--executor ray: the cluster to join, HOST:PORT of its head (or ray://HOST:PORT); default "
                    "$RAY_ADDRESS, else a Ray started for the command on 127.0.0.1")
DEFAULT_QUANTILES = [0.01, 0.05, 0.5, 0.95, 0.99]


DEFAULT_TICKER = "^GSPC"


@dataclass
class DataSettings:
    ticker: str = option(DEFAULT_TICKER, "Yahoo Finance ticker to forecast (a name such as ^GSPC, never a path)")
    tickers: list[str] = option([], "a panel: several tickers forecast side by side, e.g. ^GSPC,^IXIC (each downloaded, cached or bundled as --ticker is); fit, backtest, sweep and predict take panels")
    csv: str | None = option(None, "read prices from this CSV (Date, Close and/or Adj Close, optional Open/High/Low/Volume) instead of downloading; several, comma-separated, or one long file with a Ticker column, are a panel")
    date_format: str | None = option(None, "how the CSV writes dates, e.g. %d/%m/%Y (default: YYYY-MM-DD, or a form that reads one way only)")
    synthetic: SyntheticKind | None = option(None, "use a simulated series with a known best error instead of market data (panel: three series and a covariate, one series following another: a panel for fit, backtest and sweep)")
    synthetic_length: int = option(3000, "number of days of the simulated series")
    synthetic_noise: float = option(0.01, "standard deviation of the simulated series' noise (its best possible RMSE)")
    synthetic_lag: int = option(40, "longmem only: the lag L in r_t = 0.8 r_(t-L) + e_t")
    synthetic_seed: int = option(0, "seed of the simulated series")
    offline: bool = option(False, "do not try to download: use the cache, else the bundled history")
    cache_dir: str | None = option(None, "download cache folder (default: $FORECAST_CACHE_DIR or ~/.cache/forecast)")
    target: Target = option("return", "what to forecast: next day's log return, or its volatility proxy")
    features: list[Feature] = option(["returns"], "input features: returns, range (log high/low), volume (log volume change)")
    covariates: list[str] = option([], "other tickers as inputs of every window, each TICKER[:return|diff|level] (return: log returns, the default; diff: changes; level: the value), e.g. ^VIX:level; or panel: every other series of the panel; aligned to the target's days without look-ahead")
    covariate_csv: list[str] = option([], "covariates from files, each PATH[:return|diff|level] (a date column and a Close column)")
    lookback: int = option(30, "days of history in each input window")
    horizon: int = option(1, "days ahead to forecast (more than 1: one output per day, direct multi-output)")
    val_fraction: float = option(0.15, "share of windows for validation (taken just before the test part)")
    test_fraction: float = option(0.15, "share of windows for the test part (the most recent ones)")

    def __post_init__(self) -> None:
        if self.csv is None and self.synthetic is None:
            self.ticker = check_ticker(self.ticker)
        self.tickers = [check_ticker(t) for t in self.tickers]
        for t in self.tickers:
            if self.tickers.count(t) > 1:
                raise ForecastError(f"--tickers names {t} twice: give each series once")
        if self.tickers and self.ticker != DEFAULT_TICKER:
            raise ForecastError("--ticker and --tickers were both given: a panel is --tickers alone")
        if self.tickers and (self.csv is not None or self.synthetic is not None):
            raise ForecastError("--tickers with --csv or --synthetic: name the data one way")
        require(self.synthetic_length >= 100, "synthetic_length", self.synthetic_length, "must be at least 100")
        require(self.synthetic_noise > 0, "synthetic_noise", self.synthetic_noise, "must be positive")
        require(self.synthetic_lag >= 1, "synthetic_lag", self.synthetic_lag, "must be at least 1")
        require(self.synthetic_seed >= 0, "synthetic_seed", self.synthetic_seed, "must be >= 0")
        require("returns" in self.features, "features", ",".join(self.features), "must include returns")
        specs = covariate_specs(self)
        self.covariates = [c.text() for c in specs if not c.csv] + ([PANEL] if self.panel_covariates else [])
        self.covariate_csv = [c.text() for c in specs if c.csv]
        self.features = list(dict.fromkeys(self.features))
        require(self.lookback >= 2, "lookback", self.lookback, "must be at least 2")
        require(self.horizon >= 1, "horizon", self.horizon, "must be at least 1")
        require(0 < self.val_fraction < 0.5, "val_fraction", self.val_fraction, "must be between 0 and 0.5")
        require(0 < self.test_fraction < 0.5, "test_fraction", self.test_fraction, "must be between 0 and 0.5")

    @property
    def panel_covariates(self) -> bool:
        """``--covariates panel``: every other series of the panel as an input."""
        return any(c.strip().lower() == PANEL for c in self.covariates)

    @property
    def panel(self) -> bool:
        """Several series named by the settings themselves (a long CSV with a Ticker column is one too: data says)."""
        return (len(self.tickers) > 1 or len([p for p in (self.csv or "").split(",") if p.strip()]) > 1
                or self.synthetic == "panel")

    @property
    def source_name(self) -> str:
        """Name of the data set: the ticker, the CSV's stem, the simulation, or a panel's first name and count."""
        from pathlib import Path

        if self.synthetic:
            return f"synthetic-{self.synthetic}"
        names = self.tickers or [Path(p.strip()).stem for p in (self.csv or "").split(",") if p.strip()]
        if len(names) > 1:
            return f"{names[0]}+{len(names) - 1}"
        return names[0] if names else self.ticker


def covariate_specs(data: "DataSettings") -> list[Covariate]:
    """The covariates ``data`` names (tickers, then files), each once and none the target itself (``panel``, the
    other series of a panel, is not among them: ``panel_covariates``)."""
    specs = ([Covariate.parse(c) for c in data.covariates if c.strip().lower() != PANEL]
             + [Covariate.parse(c, csv=True) for c in data.covariate_csv])
    names = [c.name for c in specs]
    for name in names:
        if names.count(name) > 1:
            raise ForecastError(f"--covariates: {shorten(name)} is given more than once; give each covariate once")
        if data.csv is None and data.synthetic is None and name == data.ticker:
            raise ForecastError(f"--covariates: {shorten(name)} is the target itself, whose returns every window "
                                f"already holds; drop it")
    return specs


@dataclass
class NetworkSettings:
    hidden_size: int = option(64, "units per recurrent layer")
    num_layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout between recurrent layers (needs num_layers > 1)")
    chrono: bool = option(True, "chrono initialisation of LSTM/GRU gate biases: memory time scales up to --lookback steps")
    position: bool = option(True, "give every day of a window its position (how many days back, as sines and cosines) as extra inputs, the same for every cell: a network finds a day far from the window's start without counting")
    series_embedding: bool = option(False, "global networks of a panel (lstm-global, ...): every day of a window also carries its series' one-hot code, so the network learns a code per series")
    distribution: DistributionFamily | None = option(None, "forecast a distribution of the return, not only a point: the head outputs location and scale (and degrees of freedom), trained by negative log-likelihood (return target only)")

    def __post_init__(self) -> None:
        require(self.hidden_size >= 1, "hidden_size", self.hidden_size, "must be at least 1")
        require(self.num_layers >= 1, "num_layers", self.num_layers, "must be at least 1")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")


@dataclass
class TrainSettings:
    """The one training recipe: every command that trains a network uses these defaults."""

    max_epochs: int = option(100, "upper bound on training epochs (early stopping usually ends far sooner)")
    batch_size: int = option(64, "windows per gradient step")
    learning_rate: float = option(3e-3, "Adam learning rate")
    weight_decay: float = option(0.0, "Adam weight decay (L2)")
    patience: int = option(10, "epochs without validation improvement before early stopping (best weights are kept)")
    gradient_clip: float = option(1.0, "clip the gradient norm to this value (0: off)")
    restarts: int = option(2, "a training that stopped short (on the naive forecast's validation plateau while ridge finds a signal on the same windows) starts again from a new initialisation, up to this many times; the best by validation loss is kept")
    seed: int = option(42, "random seed: same seed, same data -> same CPU result")
    seeds: list[int] = option([], "train each network once per seed and forecast with their mean (a seed ensemble); overrides --seed")
    accelerator: Accelerator = option("auto", "where networks train, as Lightning names it: auto (a GPU where there is one), cpu, gpu, ...")
    devices: str = option("1", "devices per training, passed to Lightning unchanged: a count, a list such as 0,1, -1 or auto")
    strategy: str = option("auto", "Lightning's training strategy, passed unchanged (auto, ddp, fsdp, ...)")
    population: str = option("auto", "train networks of one cell and shape (folds, seeds, restarts) as one batched model: auto (where it was measured to pay on this device), or at most N networks at a time (1: one at a time)")
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
        require(0 <= self.restarts <= 10, "restarts", self.restarts, "must be between 0 and 10")
        require(self.seed >= 0, "seed", self.seed, "must be >= 0")
        self.population = self.population.strip().lower()
        require(self.population == "auto" or (self.population.isdigit() and int(self.population) >= 1), "population",
                self.population, "must be auto or a whole number of networks, at least 1")
        require(all(s >= 0 for s in self.seeds), "seeds", self.seeds, "must all be >= 0")
        self.seeds = list(dict.fromkeys(self.seeds))

    @property
    def seed_list(self) -> list[int]:
        """The seeds to train with: ``--seeds``, else the one ``--seed``."""
        return list(self.seeds) or [self.seed]


@dataclass
class OutputSettings:
    """Where a command's results go: its output folder and its MLflow run."""

    out: str | None = option(None, "folder for this run's files: new, empty, or an earlier output (default: a new folder under runs/)")
    overwrite: bool = option(False, "replace the earlier output found in --out (only the files its manifest.json lists)")
    experiment: str | None = option(None, "MLflow experiment name (default: forecast/<ticker or data source>)")
    track: bool = option(True, "log the run to MLflow (MLFLOW_TRACKING_URI, else ./mlflow.db and ./mlruns)")


@dataclass
class RunConfig(OutputSettings):
    """What every command that trains on market data shares: data, network, training, and where results go."""

    data: DataSettings = field(default_factory=DataSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    quantiles: list[float] = option(DEFAULT_QUANTILES, "quantile levels written for distribution forecasts (columns q01, q05, ...)")

    def __post_init__(self) -> None:
        require(bool(self.quantiles) and all(0 < q < 1 for q in self.quantiles), "quantiles", self.quantiles,
                "needs levels between 0 and 1 (exclusive)")
        self.quantiles = sorted(set(self.quantiles))
        check_distribution(self.network, self.data)


def check_distribution(network: NetworkSettings, data: DataSettings) -> None:
    if network.distribution and data.target == "volatility":
        raise ForecastError(f"--distribution {network.distribution} forecasts the return's distribution; "
                            f"it cannot be used with --target volatility")


@dataclass
class FitConfig(RunConfig):
    """`forecast fit`: one model, one time-ordered split."""

    model: str = option("lstm", "model name from the registry (see `forecast models`) or your own cell as module:Class")

    def __post_init__(self) -> None:
        super().__post_init__()
        get_entry(self.model, self.data.target)   # an unknown name or target: one line, before any import of torch


@dataclass
class BacktestSettings:
    models: list[str] = option(["rnn", "lstm", "gru", "naive", "mean", "ridge"],
                               "models to compare (see `forecast models`; your own cell as module:Class); naive is always added")
    test_start: str | None = option(None, "first day forecast, YYYY-MM-DD (default: the last quarter of the data)")
    refit_every: int = option(252, "trading days per fold: every model is refit before each fold (252: about a year)")
    window: Window = option("expanding", "training data of a fold: all days before it, or the last --train-length days")
    train_length: int = option(2520, "rolling window only: training windows per fold (validation included)")
    warm_start: bool = option(False, "start each fold's network from the previous fold's weights (faster refits)")
    cost_bps: float = option(1.0, "trading cost in basis points per unit of turnover")
    jobs: int = option(1, "worker processes for the folds (results do not depend on it); with --executor ray and no cluster, the local Ray's CPUs")
    executor: Executor = option("local", EXECUTOR_HELP)
    ray_address: str | None = option(None, RAY_ADDRESS_HELP)
    from_sweep: str | None = option(None, "a `forecast sweep` folder: its networks each with its best settings (best/<model>.yaml) next to the baselines of --models")

    def __post_init__(self) -> None:
        require(bool(self.models), "models", self.models, "needs at least one model")
        require(self.refit_every >= 5, "refit_every", self.refit_every, "must be at least 5 days")
        require(self.train_length >= 50, "train_length", self.train_length, "must be at least 50")
        require(self.cost_bps >= 0, "cost_bps", self.cost_bps, "must be >= 0")
        require(self.jobs >= 1, "jobs", self.jobs, "must be at least 1")
        if self.test_start is not None:
            self.test_start = check_date("test_start", self.test_start)


@dataclass
class BacktestConfig(RunConfig):
    """`forecast backtest`: several models, walk-forward folds."""

    backtest: BacktestSettings = field(default_factory=BacktestSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_models(self.backtest.models, self.data.target)


@dataclass
class DiagnoseSettings:
    models: list[str] = option(["rnn", "lstm", "gru"], "recurrent models to compare")
    n_windows: int = option(256, "validation windows averaged over")

    def __post_init__(self) -> None:
        require(bool(self.models), "models", self.models, "needs at least one model")
        require(self.n_windows >= 1, "n_windows", self.n_windows, "must be at least 1")


@dataclass
class DiagnoseConfig(RunConfig):
    """`forecast diagnose gradients`."""

    data: DataSettings = field(default_factory=lambda: DataSettings(lookback=50))
    diagnose: DiagnoseSettings = field(default_factory=DiagnoseSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.network.distribution is None, "distribution", self.network.distribution,
                "is not used by diagnose gradients (it follows a point forecast's gradient)")
        if any(e.kind != "network" for e in parse_models(self.diagnose.models)):
            raise ForecastError("--models: gradient flow needs recurrent models, not baselines")


@dataclass
class BenchSettings:
    models: list[str] = option(["rnn", "lstm", "gru", "ridge"], "models (any from the registry, e.g. lstm-cifg)")
    series: list[SyntheticKind] = option(["rw", "ar2", "longmem"], "simulated series")
    synthetic_lag: list[int] = option([40], "longmem only: the lags L in r_t = 0.8 r_(t-L) + e_t, one run per lag")
    synthetic_length: int = option(6000, "days of each simulated series")
    synthetic_noise: float = option(0.01, "standard deviation of the noise (the best possible RMSE)")
    lookback: int | None = option(None, "days in each input window (default: the largest lag + 10)")
    family: FamilyPart | None = option(None, "instead of --series: the family of simulated processes (data/family.py): tune (the part a recipe may be tuned on), report (the part only reported) or all; training seeds from --seeds")
    jobs: int = option(1, "family bench: trainings run side by side in this many worker processes (same results for any number)")

    def __post_init__(self) -> None:
        require(bool(self.models), "models", self.models, "needs at least one model")
        require(self.jobs >= 1, "jobs", self.jobs, "must be at least 1")
        require(bool(self.series), "series", self.series, "needs at least one series")
        require(bool(self.synthetic_lag) and min(self.synthetic_lag) >= 1, "synthetic_lag", self.synthetic_lag,
                "must list lags of at least 1")
        require(self.synthetic_length >= 100, "synthetic_length", self.synthetic_length, "must be at least 100")
        require(self.synthetic_noise > 0, "synthetic_noise", self.synthetic_noise, "must be positive")
        require(self.lookback is None or self.lookback >= 2, "lookback", self.lookback, "must be at least 2")

    @property
    def window(self) -> int:
        """The lookback: given, else the largest lag + 10 (every lag fits inside the window)."""
        return self.lookback or max(self.synthetic_lag) + 10


@dataclass
class BenchConfig(OutputSettings):
    """`forecast bench`: models on simulated series with a known best possible error."""

    experiment: str | None = option("forecast/bench", "MLflow experiment name")
    network: NetworkSettings = field(default_factory=NetworkSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)

    def __post_init__(self) -> None:
        parse_models(self.bench.models, "return")


@dataclass
class PredictConfig:
    """`forecast predict`: the next trading day from a logged model and the latest data."""

    ticker: str = option("^GSPC", "ticker whose latest fit run to use")
    tickers: list[str] = option([], "a panel's tickers: the latest fit of that panel forecasts every series")
    csv: str | None = option(None, "take the latest data from this CSV instead of downloading (a panel: several, or one with a Ticker column)")
    date_format: str | None = option(None, "how the CSV writes dates, e.g. %d/%m/%Y (default: YYYY-MM-DD, or a form that reads one way only)")
    run_id: str | None = option(None, "MLflow run id of the model (default: the newest finished fit of the ticker or panel)")
    offline: bool = option(False, "do not try to download; use the cache or the bundled data")
    cache_dir: str | None = option(None, "download cache folder")
    model: str | None = option(None, "a run of your own cell: name its class again (module:Class) to allow importing it")
    allow_pickle: bool = option(False, "load a run logged by an older version as a pickle (runs code from the store: only if you trust it)")

    def __post_init__(self) -> None:
        if self.csv is None:
            self.ticker = check_ticker(self.ticker)
        self.tickers = DataSettings(tickers=self.tickers).tickers    # the same checks as every command's


@dataclass
class CompareConfig:
    """`forecast compare`: a leaderboard across stored backtests."""

    ticker: str | None = option(None, "only runs of this ticker (or data source)")
    experiment: str | None = option(None, "only this MLflow experiment")
    metric: str = option("r2_oos", "metric to rank by")


def check_date(name: str, value: Any) -> str:
    """A calendar date ``YYYY-MM-DD`` (YAML may hand over a ``date``)."""
    try:
        return datetime.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ForecastError(f"{flag_name(name)} must be a date YYYY-MM-DD, got {shorten(value)}") from None

