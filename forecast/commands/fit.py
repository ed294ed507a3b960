"""``forecast fit``: train one model on a time-ordered split and score it next to the naive forecast.

ingest -> windows -> train (once per seed) -> scoring -> files -> MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import tracking
from ..config import FitConfig
from ..data.windows import make_inputs, time_split
from ..distribution_eval import BENCHMARK, score_distributions
from ..errors import ForecastError
from ..evaluation import NAIVE, prediction_frame, score
from ..metrics import rmse
from ..models import get_entry
from ..models.custom import load_cell
from ..report import plot_forecasts, text_table
from .common import Echo, RunRecord, check_custom_cells, data_tags, load_data

TABLE_COLUMNS = ["rmse", "mae", "r2_oos", "dir_acc", "always_up_hit_rate", "pt_pvalue", "dm_pvalue"]
DISTRIBUTION_COLUMNS = ["crps", "nll", "coverage_90", "var01_hits", "kupiec_pvalue", "christoffersen_pvalue", "coverage",
                        "crps_dm_pvalue"]


@dataclass
class FitResult:
    metrics: dict[str, dict[str, float]]
    predictions: pd.DataFrame
    out_dir: Path
    run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    forecaster: object = None


def fit(cfg: FitConfig, echo: Echo = print, progress: bool = True) -> FitResult:
    """Train one model on the train part, pick its epoch on validation, score it on the test part."""
    d = cfg.data
    entry = get_entry(cfg.model, d.target)
    if cfg.network.distribution and entry.kind != "network" and not entry.dist_baseline:
        raise ForecastError(f"--distribution: {entry.name} forecasts a point, not a distribution; use a network "
                            f"(or a distribution baseline: har, riskmetrics, garch-t, hist)")
    if entry.custom:
        load_cell(entry.cell)              # a user's class: a one-line error now, not after loading data
    history, series = load_data(d, echo)
    split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
    dates = series.target_dates
    echo(f"split: train {len(split.train)} windows to {dates(split.train)[-1]:%Y-%m-%d}, validation "
         f"{len(split.val)} to {dates(split.val)[-1]:%Y-%m-%d}, test {len(split.test)} from "
         f"{dates(split.test)[0]:%Y-%m-%d} to {dates(split.test)[-1]:%Y-%m-%d}")
    from ..forecasters import FitContext, SeedEnsemble, make_forecaster  # torch: only once the input is good

    check_custom_cells([entry], len(series.feature_names), cfg.network, d.lookback)

    ctx = FitContext(series.feature_names, d.target, d.lookback, d.horizon)
    record = RunRecord.for_settings(cfg, "fit", d.source_name, f"fit-{entry.name}", (d.source_name, entry.name), echo)
    with record:
        record.tags(data_tags(history, series) | {"model": entry.name})
        started = time.perf_counter()
        forecaster = make_forecaster(entry, cfg.network, cfg.train, ctx, progress=progress,
                                     on_epoch=record.epoch_logger(per_seed=len(cfg.train.seed_list) > 1))
        forecaster.fit(series, split)
        seconds = time.perf_counter() - started
        forecasts, dists = {}, {}
        forecasts[entry.name], dists[entry.name] = forecast_test(forecaster, series, split.test)
        references = [NAIVE] + ([BENCHMARK] if dists[entry.name] is not None else [])
        for name in (r for r in references if r != entry.name):   # naive, and riskmetrics for a distribution
            reference = make_forecaster(get_entry(name), cfg.network, cfg.train, ctx).fit(series, split)
            forecasts[name], dists[name] = forecast_test(reference, series, split.test)
        dists = {m: dist for m, dist in dists.items() if dist is not None}
        frame = prediction_frame(series, split.test, forecasts, d.horizon, 0, dists, cfg.quantiles if dists else None)
        metrics = score(frame, d.target, d.horizon)
        verdicts = score_distributions(frame, dists, cfg.quantiles, seed=cfg.train.seed) if dists else {}
        for name, values in verdicts.items():
            metrics[name].update(values)
        if isinstance(forecaster, SeedEnsemble):
            y = frame.loc[frame["model"] == NAIVE, "y_true"].to_numpy()[:len(split.test)]
            by_seed = forecaster.member_predictions(series, split.test)[:, :, 0]      # [S, N] one day ahead
            metrics[entry.name]["rmse_by_seed"] = {str(s): rmse(y, p) for s, p in zip(forecaster.seeds, by_seed)}
        epochs = epochs_trained(forecaster)
        seeds = f" ({len(cfg.train.seed_list)} seeds)" if len(cfg.train.seed_list) > 1 else ""
        echo(f"trained {entry.name}{seeds} in {seconds:.1f}s{epochs}")

        for name, values in metrics.items():
            prefix = "test_" if name == entry.name else f"{name}_test_"
            record.metrics({prefix + k: v for k, v in values.items() if not isinstance(v, (dict, str))})
        record.metrics({"train_seconds": seconds})
        record.csv("predictions.csv", frame)
        record.json("metrics.json", {m: {k: tracking.clean(v) for k, v in vals.items()}
                                     for m, vals in metrics.items()})
        record.config(cfg)
        record.figure("forecasts.png", plot_forecasts, frame, title=f"{d.source_name}: {d.target} forecasts on the test period")
        if record.run_id and hasattr(forecaster, "network_"):
            example = make_inputs(series.features, np.array([len(series) - 1]), d.lookback)
            tracking.log_model(forecaster.network_, example, d.lookback, list(series.feature_names), d.target)
        echo(f"\ntest metrics ({len(split.test)} days, {d.target} target):")
        echo(text_table([{"model": m, **vals} for m, vals in metrics.items()],
                        TABLE_COLUMNS + (["qlike"] if d.target == "volatility" else [])))
        if verdicts:
            echo(f"\ndistribution forecasts ({len(split.test)} days; coverage accepted when Kupiec and "
                 f"Christoffersen p >= 0.05):")
            echo(text_table([{"model": m, **vals} for m, vals in verdicts.items()], DISTRIBUTION_COLUMNS))
    return FitResult(metrics, frame, record.out, record.run_id, forecaster.history_, forecaster)


def forecast_test(forecaster, series, origins):
    """A fitted forecaster's point forecasts ``[N, H]`` and its distribution (None for a point model): the
    distribution's mean when it has one, so that its forecasts are computed once."""
    dist = forecaster.predict_distribution(series, origins)
    return (forecaster.predict(series, origins) if dist is None else dist.mean), dist


def epochs_trained(forecaster) -> str:
    """", best epoch B of N" (one per seed for an ensemble); empty for a model that trains no epochs."""
    members = getattr(forecaster, "members", None) or [forecaster]      # a seed ensemble: its networks
    if not members[0].history_:
        return ""
    best = ", ".join(str(m.best_epoch_ + 1) for m in members)
    total = ", ".join(str(len(m.history_)) for m in members)
    return f", best epoch {best} of {total}" if len(members) == 1 else f", best epochs {best} of {total} by seed"
