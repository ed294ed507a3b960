"""Configs of `forecast diagnose gradients` and `forecast bench` (import-light, for the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import DataConfig, RunConfig, TrainConfig, option, require


@dataclass
class DiagnoseSettings:
    models: str = option("rnn,lstm,gru", "comma-separated recurrent models to compare")
    n_windows: int = option(256, "validation windows averaged over")

    def __post_init__(self) -> None:
        require(self.n_windows >= 1, "n_windows", self.n_windows, "must be at least 1")


@dataclass
class DiagnoseConfig(RunConfig):
    """`forecast diagnose gradients`."""

    data: DataConfig = field(default_factory=lambda: DataConfig(lookback=50))
    diagnose: DiagnoseSettings = field(default_factory=DiagnoseSettings)


@dataclass
class BenchSettings:
    models: str = option("rnn,lstm,gru,ridge", "comma-separated models (any from the registry, e.g. lstm-cifg)")
    series: str = option("rw,ar2,longmem", "comma-separated simulated series: rw, ar2, longmem")

    def __post_init__(self) -> None:
        bad = [s for s in self.series.split(",") if s.strip() not in ("rw", "ar2", "longmem")]
        require(not bad, "series", self.series, "must list some of rw, ar2, longmem")


@dataclass
class BenchConfig(RunConfig):
    """`forecast bench`: long series and a lookback past the longmem lag; room to train past a plateau."""

    data: DataConfig = field(default_factory=lambda: DataConfig(lookback=50, synthetic_length=6000, synthetic_lag=40))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=60, patience=20, learning_rate=3e-3))
    experiment: str | None = option("forecast/bench", "MLflow experiment name")
    bench: BenchSettings = field(default_factory=BenchSettings)


