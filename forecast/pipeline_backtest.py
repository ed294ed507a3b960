"""What ``forecast backtest`` and ``forecast compare`` do, callable from Python and notebooks.

ingest -> folds -> (parallel) refits and forecasts -> scoring and trading metrics ->
files, figures, report.html -> MLflow parent run with one nested run per model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import tracking
from .backtest import make_folds, plan_units, run_backtest_units
from .config import BacktestConfig, to_flat_dict
from .errors import ForecastError
from .evaluation import HIGHER_IS_BETTER, leaderboard, multiple_comparison, trading_table
from .models import get_entry, parse_models
from .pipeline import data_tags, default_out_dir, load_series, write_config
from .report import (html_report, plot_cumulative_sse_difference, plot_equity, plot_fold_bars, plot_forecasts,
                     text_table)
from .scoring import NAIVE, prediction_frame, score

TAG_MODEL_RUN = "backtest-model"


@dataclass
class BacktestResult:
    predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    per_fold: pd.DataFrame
    trading: dict[str, dict[str, float]]
    leaderboard: pd.DataFrame
    out_dir: Path
    run_id: str | None


def run_backtest(cfg: BacktestConfig, echo: Callable[[str], None] = print) -> BacktestResult:
    d, b = cfg.data, cfg.backtest
    entries = parse_models(b.models, d.target)
    if NAIVE not in [e.name for e in entries]:
        entries.append(get_entry(NAIVE))
    history, series = load_series(d, echo)
    folds = make_folds(series, d.lookback, d.horizon, b, d.val_fraction)
    first, last = series.target_dates(folds[0].split.test[:1])[0], series.target_dates(folds[-1].split.test[-1:])[0]
    echo(f"backtest: {len(folds)} folds of up to {b.refit_every} days, {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
         f"{b.window} training window{', warm starts' if b.warm_start else ''}, {b.jobs} job(s); "
         f"models: {', '.join(e.name for e in entries)}")
    started = time.perf_counter()
    units = plan_units(entries, folds, b.warm_start)
    results = run_backtest_units(units, series, cfg.model, cfg.train, d.lookback, d.horizon, b.jobs, echo)
    echo(f"fitted {len(results)} model-folds in {time.perf_counter() - started:.1f}s")

    by_key = {(r.model, r.fold): r for r in results}
    folds_by_number = {f.number: f for f in folds}
    frame = pd.concat([prediction_frame(series, folds_by_number[f].split.test, {e.name: by_key[e.name, f].forecasts},
                                        d.horizon, f) for e in entries for f in folds_by_number], ignore_index=True)
    metrics = score(frame, d.target, d.horizon)
    per_fold = pd.DataFrame([{"model": m, "fold": f, **vals} for f, part in frame.groupby("fold")
                             for m, vals in score(part, d.target, d.horizon).items()])
    trading, curves = trading_table(frame, b.cost_bps) if d.target == "return" else ({}, {})
    spa, mcs = multiple_comparison(frame, seed=cfg.train.seed)
    for model, membership in mcs.items():
        metrics[model].update(membership)
    board = leaderboard(metrics, trading, spa)
    seconds = pd.DataFrame([(r.model, r.seconds) for r in results], columns=["model", "s"]).groupby("model")["s"].sum()
    board["fit_seconds"] = board["model"].map(seconds)

    out = Path(cfg.out) if cfg.out else default_out_dir(d.source_name, "backtest")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "predictions.csv", index=False, date_format="%Y-%m-%d")
    overall = pd.DataFrame([{"model": m, "fold": "all", **v} for m, v in metrics.items()])
    pd.concat([overall, per_fold.astype({"fold": str})], ignore_index=True).to_csv(out / "metrics.csv", index=False)
    clean = lambda values: {k: tracking.clean(v) for k, v in values.items()}
    (out / "metrics.json").write_text(json.dumps({
        "overall": {m: clean(v) for m, v in metrics.items()},
        "per_fold": {str(f): {r["model"]: clean({k: v for k, v in r.items() if k not in ("model", "fold")})
                              for _, r in part.iterrows()} for f, part in per_fold.groupby("fold")},
        "trading": {m: clean(v) for m, v in trading.items()},
        "spa": clean(spa),
        "verdicts": dict(zip(board["model"], board["verdict"])),
    }, indent=2))
    write_config(cfg, out / "config.yaml")
    figures = _figures(frame, per_fold, curves, out, d, b)
    intro = [history.describe(), f"Target: {d.target}; lookback {d.lookback}, horizon {d.horizon}; {len(folds)} folds "
             f"refit every {b.refit_every} days ({b.window} window) from {first:%Y-%m-%d} to {last:%Y-%m-%d}.",
             "Every model is refit with its scaler on data strictly before each fold; R2 vs naive is "
             "1 - SSE_model / SSE_naive; DM: Diebold-Mariano test of equal squared error vs naive (HLN corrected), "
             "the pairwise test.",
             f"Verdicts test all models at once on their daily squared errors (stationary block bootstrap): "
             f"Hansen's SPA asks whether any model beats naive (p = {spa['pvalue']:.3f}); the Model Confidence "
             f"Set (90%) keeps the models that cannot be told apart from the best. Directional accuracy is "
             f"tested with Pesaran-Timmermann (PT p, one-sided), whose null keeps how often the market and the "
             f"forecast go up; 'always up' is the hit rate of a forecast that always says up."]
    tables = [("Leaderboard", board)]
    if trading:
        tables.append((f"Trading (sign of the forecast, {b.cost_bps:g} bps per unit turnover)",
                       pd.DataFrame([{"model": m, **v} for m, v in trading.items()])))
    tables.append(("Per fold", per_fold))
    html_report(out / "report.html", f"Backtest: {d.source_name} ({d.target})", intro, tables, figures)

    run_id = _track(cfg, history, series, metrics, per_fold, trading, board, out) if cfg.track else None
    echo(f"\nleaderboard ({len(frame[frame['model'] == NAIVE])} forecast days, sorted by R2 vs naive):")
    cols = ["rmse", "mae", "r2_oos", "dir_acc", "always_up_hit_rate", "pt_pvalue", "dm_pvalue", "mcs_pvalue"]
    cols += ["qlike"] if d.target == "volatility" else (["sharpe_long_flat"] if trading else [])
    echo(text_table(board.to_dict("records"), cols + ["fit_seconds", "verdict"]))
    echo(f"SPA (is any model better than naive?): p = {spa['pvalue']:.3f}; MCS at 90%: "
         f"{', '.join(m for m, v in mcs.items() if v['in_mcs'])}")
    echo(f"\noutputs: {out}/ (report.html, predictions.csv, metrics.csv, metrics.json, figures)")
    if run_id:
        echo(f"mlflow: parent run {run_id} with one nested run per model ({tracking.tracking_uri()})")
    return BacktestResult(frame, metrics, per_fold, trading, board, out, run_id)


def _figures(frame, per_fold, curves, out: Path, d, b) -> list[tuple[str, Path]]:
    figures = []
    if curves:
        figures.append(("Equity curves (long/flat on the forecast's sign) against buy-and-hold",
                        plot_equity(curves, out / "equity.png", f"{d.source_name}: growth of 1, {b.cost_bps:g} bps costs")))
    figures.append(("Cumulative squared-error gain over naive (rising: the model is gaining)",
                    plot_cumulative_sse_difference(frame, NAIVE, out / "cumulative_gain.png",
                                                   f"{d.source_name}: cumulative SE(naive) - SE(model)")))
    figures.append(("Forecasts against actuals (last year)",
                    plot_forecasts(frame, out / "forecasts.png", f"{d.source_name}: {d.target} forecasts")))
    figures.append(("Out-of-sample R2 vs naive per fold",
                    plot_fold_bars(per_fold, "r2_oos", out / "fold_r2.png", "R2 vs naive by fold")))
    return figures


def _track(cfg: BacktestConfig, history, series, metrics, per_fold, trading, board, out: Path) -> str:
    d = cfg.data
    tags = data_tags(history, series, "backtest", d.source_name)
    experiment = tracking.experiment_name(d.source_name, cfg.experiment)
    with tracking.start_run(experiment, f"backtest-{d.target}", tags, to_flat_dict(cfg)) as parent:
        best = board.iloc[0]
        tracking.log_metrics({"best_r2_oos": best["r2_oos"], "n_models": len(board)})
        for _, row in board.iterrows():
            model = row["model"]
            model_tags = tags | {tracking.TAG_KIND: TAG_MODEL_RUN, "model": model, "verdict": row["verdict"]}
            with tracking.start_run(experiment, model, model_tags, {"model": model}, nested=True):
                # The same metric names in every model's run: MLflow's compare view lines them up.
                tracking.log_metrics(metrics[model] | trading.get(model, {}))
                for _, fold_row in per_fold[per_fold["model"] == model].iterrows():
                    values = {f"fold_{k}": v for k, v in fold_row.items() if k not in ("model", "fold")}
                    tracking.log_metrics(values, step=int(fold_row["fold"]))
        tracking.log_artifacts(out)
        return parent.info.run_id


def run_compare(ticker: str | None = None, experiment: str | None = None, metric: str = "r2_oos",
                echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Leaderboard across every stored backtest's model runs."""
    runs = tracking.find_runs(experiment=experiment, kind=TAG_MODEL_RUN, source=ticker)
    if runs.empty:
        where = f" for {ticker!r}" if ticker else ""
        raise ForecastError(f"no finished backtests{where} in {tracking.tracking_uri()}; run `forecast backtest` first")
    column = f"metrics.{metric}"
    if column not in runs:
        known = sorted(c.split(".", 1)[1] for c in runs.columns if c.startswith("metrics.") and "fold_" not in c)
        raise ForecastError(f"--metric {metric!r} is not recorded; choose one of: {', '.join(known)}")
    table = pd.DataFrame({
        "model": runs["tags.model"], "ticker": runs["tags.ticker"], "target": runs.get("tags.target"),
        "data": runs["tags.data_start"] + ".." + runs["tags.data_end"],
        "date": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
        metric: runs[column], "dm_pvalue": runs.get("metrics.dm_pvalue"), "verdict": runs.get("tags.verdict"),
        "run": runs["run_id"].str[:8]})
    table = table.sort_values(metric, ascending=metric not in HIGHER_IS_BETTER, na_position="last", kind="stable")
    echo(f"{len(table)} model runs from {runs['tags.mlflow.parentRunId'].nunique()} backtest(s), best first by {metric}:")
    rows = table.to_dict("records")
    echo(text_table(rows, ["ticker", "target", "data", "date", metric, "dm_pvalue", "verdict", "run"]))
    return table.reset_index(drop=True)
