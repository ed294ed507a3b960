"""Configs of `forecast diagnose gradients` and `forecast bench` (import-light, for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import DataConfig, ModelConfig, TrainConfig, _f, _need


@dataclass
class DiagnoseSettings:
    models: str = _f("rnn,lstm,gru", "comma-separated recurrent models to compare")
    n_windows: int = _f(256, "validation windows averaged over")

    def __post_init__(self) -> None:
        _need(self.n_windows >= 1, "n_windows", self.n_windows, "must be at least 1")


@dataclass
class DiagnoseConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(lookback=50))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diagnose: DiagnoseSettings = field(default_factory=DiagnoseSettings)
    out: str | None = _f(None, "folder for gradients.csv and gradients.png (default: runs/<data>-gradients-<time>)")
    experiment: str | None = _f(None, "MLflow experiment name (default: forecast/<data>)")
    track: bool = _f(True, "log the figure and numbers to MLflow")


@dataclass
class BenchSettings:
    models: str = _f("rnn,lstm,gru,ridge", "comma-separated models (any from the registry, e.g. lstm-cifg)")
    series: str = _f("rw,ar2,longmem", "comma-separated simulated series: rw, ar2, longmem")

    def __post_init__(self) -> None:
        bad = [s for s in self.series.split(",") if s.strip() not in ("rw", "ar2", "longmem")]
        _need(not bad, "series", self.series, "must list some of rw, ar2, longmem")


@dataclass
class BenchConfig:
    # Long series and a lookback past the longmem lag; room to train past a plateau.
    data: DataConfig = field(default_factory=lambda: DataConfig(lookback=50, synthetic_length=6000, synthetic_lag=40))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=60, patience=20, learning_rate=3e-3))
    bench: BenchSettings = field(default_factory=BenchSettings)
    out: str | None = _f(None, "folder for bench.csv (default: runs/bench-<time>)")
    experiment: str | None = _f("forecast/bench", "MLflow experiment name")
    track: bool = _f(True, "log the table to MLflow")


