"""What ``forecast fit`` and ``forecast predict`` do, callable from Python and notebooks.

ingest -> windows -> train -> scoring -> report files -> MLflow; ``echo`` receives the
lines a user should see (the CLI prints them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import tracking
from .config import DataConfig, FitConfig, to_dict, to_flat_dict
from .data.ingest import PriceHistory, load_history
from .data.windows import Series, build_series, make_inputs, time_split
from .errors import ForecastError
from .models import get_entry
from .report import plot_forecasts, text_table
from .scoring import NAIVE, prediction_frame, score

TABLE_COLUMNS = ["rmse", "mae", "r2_oos", "dir_acc", "always_up_hit_rate", "pt_pvalue", "dm_pvalue"]


@dataclass
class FitResult:
    metrics: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    out_dir: Path
    run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    forecaster: object = None


def load_series(cfg: DataConfig, echo: Callable[[str], None] = print) -> tuple[PriceHistory, Series]:
    """Load, say where the data came from, and build features and target."""
    history = load_history(cfg)
    echo(f"data: {history.describe()}")
    series = build_series(history, cfg.target, cfg.feature_list)
    for note in history.notes:
        echo(f"note: {note}")
    return history, series


def default_out_dir(*parts: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "-".join(p.replace("^", "").replace("/", "_") for p in parts)
    return Path("runs") / f"{safe}-{stamp}"


def data_tags(history: PriceHistory, series: Series, kind: str, source_name: str) -> dict[str, str]:
    return {tracking.TAG_KIND: kind, tracking.TAG_SOURCE: source_name, "ticker": source_name,
            "data_source": history.source, "data_start": f"{series.dates[0]:%Y-%m-%d}",
            "data_end": f"{series.dates[-1]:%Y-%m-%d}", "data_digest": history.digest(), "target": series.target_name}


def write_config(cfg, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def run_fit(cfg: FitConfig, echo: Callable[[str], None] = print, progress: bool = True) -> FitResult:
    """Train one model on the train part, pick its epoch on validation, score it on the test part."""
    d = cfg.data
    entry = get_entry(cfg.model.model, d.target)
    history, series = load_series(d, echo)
    split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
    dates = series.target_dates
    echo(f"split: train {len(split.train)} windows to {dates(split.train)[-1]:%Y-%m-%d}, validation "
         f"{len(split.val)} to {dates(split.val)[-1]:%Y-%m-%d}, test {len(split.test)} from "
         f"{dates(split.test)[0]:%Y-%m-%d} to {dates(split.test)[-1]:%Y-%m-%d}")
    from .train import FitContext, make_forecaster  # torch and Lightning: only once the input is known good

    ctx = FitContext(series.feature_names, d.target, d.lookback, d.horizon)
    started = time.perf_counter()
    forecaster = make_forecaster(entry, cfg.model, cfg.train, ctx, progress=progress).fit(series, split)
    seconds = time.perf_counter() - started
    forecasts = {entry.name: forecaster.predict(series, split.test)}
    if entry.name != NAIVE:
        naive = make_forecaster(get_entry(NAIVE), cfg.model, cfg.train, ctx).fit(series, split)
        forecasts[NAIVE] = naive.predict(series, split.test)
    frame = prediction_frame(series, split.test, forecasts, d.horizon)
    metrics = score(frame, d.target, d.horizon)
    echo(f"trained {entry.name} in {seconds:.1f}s" + (f", best epoch {forecaster.best_epoch_ + 1} of "
                                                       f"{len(forecaster.history_)}" if forecaster.history_ else ""))

    out = Path(cfg.out) if cfg.out else default_out_dir(d.source_name, entry.name)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "predictions.csv", index=False, date_format="%Y-%m-%d")
    (out / "metrics.json").write_text(json.dumps(
        {m: {k: tracking.clean(v) for k, v in vals.items()} for m, vals in metrics.items()}, indent=2))
    write_config(cfg, out / "config.yaml")
    plot_forecasts(frame, out / "forecasts.png", f"{d.source_name}: {d.target} forecasts on the test period")

    run_id = None
    if cfg.track:
        run_id = _track_fit(cfg, history, series, entry.name, forecaster, metrics, out, seconds)
    rows = [{"model": m, **vals} for m, vals in metrics.items()]
    echo(f"\ntest metrics ({len(split.test)} days, {d.target} target):")
    echo(text_table(rows, TABLE_COLUMNS + (["qlike"] if d.target == "volatility" else [])))
    echo(f"\noutputs: {out}/ (predictions.csv, metrics.json, forecasts.png, config.yaml)")
    if run_id:
        echo(f"mlflow: run {run_id} in experiment {tracking.experiment_name(d.source_name, cfg.experiment)!r} "
             f"({tracking.tracking_uri()}); browse with `mlflow ui --backend-store-uri {tracking.tracking_uri()}`")
    return FitResult(metrics, frame, out, run_id, forecaster.history_, forecaster)


def _track_fit(cfg: FitConfig, history: PriceHistory, series: Series, model: str, forecaster, metrics, out: Path,
               seconds: float) -> str:
    d = cfg.data
    tags = data_tags(history, series, "fit", d.source_name) | {"model": model}
    params = to_flat_dict(cfg) | {"data.feature_names": ",".join(series.feature_names)}
    with tracking.start_run(tracking.experiment_name(d.source_name, cfg.experiment),
                            f"fit-{model}", tags, params) as run:
        tracking.log_history(forecaster.history_)
        for name, values in metrics.items():
            prefix = "test_" if name == model else f"{name}_test_"
            tracking.log_metrics({prefix + k: v for k, v in values.items()})
        tracking.log_metrics({"train_seconds": seconds})
        tracking.log_artifacts(out)
        if hasattr(forecaster, "network_"):
            example = make_inputs(series.features, np.array([len(series) - 1]), d.lookback)
            tracking.log_model(forecaster.network_, example)
        return run.info.run_id


@dataclass
class Prediction:
    run_id: str
    origin: pd.Timestamp
    date: pd.Timestamp
    forecasts: np.ndarray          # [H] target units
    last_price: float
    target: str

    def describe(self) -> list[str]:
        lines = [f"model: run {self.run_id}; data up to {self.origin:%Y-%m-%d}"]
        if self.target == "return":
            r = float(self.forecasts[0])
            lines.append(f"forecast for {self.date:%Y-%m-%d}: log return {r:+.5f} ({100 * np.expm1(r):+.3f}%), "
                         f"implied price {self.last_price * np.exp(r):,.2f} (last close {self.last_price:,.2f})")
        else:
            lines.append(f"forecast for {self.date:%Y-%m-%d}: daily volatility {float(self.forecasts[0]):.5f} "
                         f"({100 * float(self.forecasts[0]) * np.sqrt(252):.1f}% annualised)")
        return lines


def run_predict(data: DataConfig, run_id: str | None = None, echo: Callable[[str], None] = print) -> Prediction:
    """Forecast the next trading day after the latest data with a logged model."""
    import torch

    from .data.calendar import next_trading_day

    run = tracking.latest_fit_run(data.source_name, run_id)
    p = run.data.params
    try:
        lookback, target = int(p["data.lookback"]), p["data.target"]
        features = p["data.features"]
    except KeyError:
        raise ForecastError(f"run {run.info.run_id} is not a `forecast fit` run (no data params)") from None
    resolved = DataConfig(**{**{k: getattr(data, k) for k in ("ticker", "csv", "synthetic", "offline", "cache_dir")},
                             "lookback": lookback, "target": target, "features": features})
    network = tracking.load_network(run.info.run_id)
    history, series = load_series(resolved, echo)
    if len(series) < lookback:
        raise ForecastError(f"history has {len(series)} days, fewer than the model's lookback {lookback}")
    x = make_inputs(series.features, np.array([len(series) - 1]), lookback)
    with torch.no_grad():
        forecasts = network(torch.from_numpy(x)).numpy()[0]
    origin = series.dates[-1]
    result = Prediction(run.info.run_id, origin, next_trading_day(origin), forecasts, float(series.price[-1]), target)
    for line in result.describe():
        echo(line)
    return result
