"""``forecast backtest``: walk-forward backtest of several models, with report and MLflow runs.

ingest -> folds -> (parallel) refits and forecasts -> scoring, SPA/MCS verdicts and trading
metrics -> files, figures, report.html -> MLflow parent run with one nested run per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import tracking
from ..config import BacktestConfig
from ..evaluation import (NAIVE, leaderboard, multiple_comparison, prediction_frame, score, trading_rows,
                          trading_table)
from ..metrics import rmse
from ..models import get_entry, parse_models
from ..models.custom import load_cell
from ..report import (html_report, plot_cumulative_sse_difference, plot_equity, plot_fold_bars, plot_forecasts,
                      text_table)
from ..walkforward import make_folds, plan_units, run_units
from .backtest_distribution import add_benchmark, distribution_section, forecasts_distributions
from .common import Echo, RunRecord, check_custom_cells, data_tags, load_data, unique_models

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
    distributions: dict[str, dict] = field(default_factory=dict)   # per distribution model: scores and verdicts


def backtest(cfg: BacktestConfig, echo: Echo = print) -> BacktestResult:
    d, b = cfg.data, cfg.backtest
    setups = {}                 # a network's own settings (--from-sweep: its best), else the shared ones
    if b.from_sweep:
        from ..sweep.results import from_sweep

        b, setups = from_sweep(cfg, echo)
    entries = parse_models(unique_models(b.models, echo), d.target)
    if NAIVE not in [e.name for e in entries]:
        entries.append(get_entry(NAIVE))
    distributional = forecasts_distributions(entries, d.target, cfg.network.distribution)
    if distributional:
        add_benchmark(entries, echo)
    for entry in entries:
        if entry.custom:
            load_cell(entry.cell)          # a user's class: a one-line error now, not in a worker
    history, series = load_data(d, echo)
    check_custom_cells([e for e in entries if e.name not in setups], len(series.feature_names), cfg.network, d.lookback)
    # The longest lookback in play: every model trains on the same days and forecasts the same days.
    folds = make_folds(series, max([d.lookback] + [s.lookback for s in setups.values()]), d.horizon, b, d.val_fraction)
    first, last = series.target_dates(folds[0].split.test[:1])[0], series.target_dates(folds[-1].split.test[-1:])[0]
    echo(f"backtest: {len(folds)} folds of up to {b.refit_every} days, {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
         f"{b.window} training window{', warm starts' if b.warm_start else ''}, {b.jobs} job(s); "
         f"models: {', '.join(e.name for e in entries)}")
    record = RunRecord.for_settings(cfg, "backtest", d.source_name, f"backtest-{d.target}", (d.source_name, "backtest"),
                                    echo)
    with record:
        tags = data_tags(history, series) | ({"from_sweep": b.from_sweep} if b.from_sweep else {})
        record.tags(tags)
        started = time.perf_counter()
        results = run_units(plan_units(entries, folds, b.warm_start, setups), series, cfg.network, cfg.train,
                            d.lookback, d.horizon, b.jobs, echo)
        echo(f"fitted {len(results)} model-folds in {time.perf_counter() - started:.1f}s")

        by_key = {(r.model, r.fold): r for r in results}
        tests = {f.number: f.split.test for f in folds}
        levels = cfg.quantiles if distributional else None
        frame = pd.concat([prediction_frame(series, tests[f], {e.name: by_key[e.name, f].forecasts}, d.horizon, f,
                                            {e.name: by_key[e.name, f].distribution}, levels)
                           for e in entries for f in tests], ignore_index=True)
        metrics = score(frame, d.target, d.horizon)
        _add_seed_rmse(metrics, results, frame, list(tests))
        per_fold = pd.DataFrame([{"model": m, "fold": f, **vals} for f, part in frame.groupby("fold")
                                 for m, vals in score(part, d.target, d.horizon).items()])
        trading, curves = trading_table(frame, b.cost_bps) if d.target == "return" else ({}, {})
        spa, mcs = multiple_comparison(frame, seed=cfg.train.seed)
        for model, membership in mcs.items():
            metrics[model].update(membership)
        board = leaderboard(metrics, trading, spa)
        seconds = pd.DataFrame([(r.model, r.seconds) for r in results], columns=["model", "s"]).groupby("model")["s"].sum()
        board["fit_seconds"] = board["model"].map(seconds)
        section = (distribution_section(record, frame, by_key, entries, folds, history, series, cfg)
                   if distributional else None)
        overall_metrics = section.overall(metrics) if section else metrics

        record.csv("predictions.csv", frame)
        overall = pd.DataFrame([{"model": m, "fold": "all", **{k: v for k, v in vals.items() if not isinstance(v, dict)}}
                                for m, vals in overall_metrics.items()])
        record.csv("metrics.csv", pd.concat([overall, per_fold.astype({"fold": str})], ignore_index=True))
        summary = section.summary() if section else None
        record.json("metrics.json", tracking.clean({
            "overall": overall_metrics,
            "per_fold": {str(f): {r["model"]: {k: v for k, v in r.items() if k not in ("model", "fold")}
                                  for _, r in part.iterrows()} for f, part in per_fold.groupby("fold")},
            "trading": trading,
            "spa": spa,
            "verdicts": dict(zip(board["model"], board["verdict"])),
            **({"distribution": summary} if summary else {}),
        }))
        record.config(cfg)
        figures = _figures(record, frame, per_fold, curves, d, b)
        intro = [history.describe(),
                 f"Target: {d.target}; lookback {d.lookback}, horizon {d.horizon}; {len(folds)} folds refit every "
                 f"{b.refit_every} days ({b.window} window) from {first:%Y-%m-%d} to {last:%Y-%m-%d}.",
                 "Every model is refit with its scaler on data strictly before each fold; R2 vs naive is "
                 "1 - SSE_model / SSE_naive; DM: Diebold-Mariano test of equal squared error vs naive (HLN "
                 "corrected), the pairwise test.",
                 f"Verdicts test all models at once on their daily squared errors (stationary block bootstrap): "
                 f"Hansen's SPA asks whether any model beats naive (p = {spa['pvalue']:.3f}); the Model Confidence "
                 f"Set (90%) keeps the models that cannot be told apart from the best. Directional accuracy is "
                 f"tested with Pesaran-Timmermann (PT p, one-sided), whose null keeps how often the market and the "
                 f"forecast go up; 'Always up' is the hit rate of a forecast that always says up."]
        if setups:
            from ..sweep.space import describe

            intro.insert(1, f"Networks each at their best settings from sweep {b.from_sweep}, tuned on days before "
                            f"{b.test_start}: " + "; ".join(f"{m}: {describe(s)}" for m, s in setups.items()) + ".")
        tables = [("Leaderboard", board.drop(columns=[c for c in board if c.startswith("rmse_by_seed")]))]
        if trading:
            tables.append((f"Trading (sign of the forecast, {b.cost_bps:g} bps per unit turnover)",
                           trading_rows(trading)))
        if section:
            intro += section.intro
            tables[1:1] = section.tables
            figures = section.figures + figures
        tables.append(("Per fold", per_fold))
        record.commit("report.html", lambda p: html_report(p, f"Backtest: {d.source_name} ({d.target})", intro,
                                                           tables, figures))
        if record.run_id:
            _track_models(record, tags, overall_metrics, per_fold, trading, board,
                          summary["coverage_verdicts"] if summary else {})
        echo(f"\nleaderboard ({len(frame[frame['model'] == NAIVE])} forecast days, sorted by R2 vs naive):")
        cols = ["rmse", "mae", "r2_oos", "dir_acc", "always_up_hit_rate", "pt_pvalue", "dm_pvalue", "mcs_pvalue"]
        cols += ["qlike"] if d.target == "volatility" else (["sharpe_long_flat"] if trading else [])
        echo(text_table(board.to_dict("records"), cols + ["fit_seconds", "verdict"]))
        echo(f"SPA (is any model better than naive?): p = {spa['pvalue']:.3f}; in the 90% model confidence set: "
             f"{', '.join(m for m, v in mcs.items() if v['in_mcs'])}")
        if section:
            echo(section.text)
    return BacktestResult(frame, metrics, per_fold, trading, board, record.out, record.run_id,
                          section.results if section else {})


def _add_seed_rmse(metrics: dict, results: list, frame: pd.DataFrame, folds: list[int]) -> None:
    """``rmse_by_seed`` for seed ensembles: each seed's one-day-ahead RMSE over all folds."""
    for model in {r.model for r in results if r.by_seed}:
        parts = {r.fold: r for r in results if r.model == model}
        y = frame[(frame["model"] == model) & (frame.get("step", 1) == 1)]["y_true"].to_numpy()
        seeds = parts[folds[0]].by_seed
        metrics[model]["rmse_by_seed"] = {
            str(s): rmse(y, np.concatenate([parts[f].by_seed[s][:, 0] for f in folds])) for s in seeds}


def _figures(record: RunRecord, frame, per_fold, curves, d, b) -> list[tuple[str, Path]]:
    figures = []
    if curves:
        figures.append(("Equity curves (long/flat on the forecast's sign) against buy-and-hold",
                        record.figure("equity.png", plot_equity, curves,
                                      title=f"{d.source_name}: growth of 1, {b.cost_bps:g} bps costs")))
    figures.append(("Cumulative squared-error gain over naive (rising: the model is gaining)",
                    record.figure("cumulative_gain.png", plot_cumulative_sse_difference, frame, NAIVE,
                                  title=f"{d.source_name}: cumulative SE(naive) - SE(model)")))
    figures.append(("Forecasts against actuals (last year)",
                    record.figure("forecasts.png", plot_forecasts, frame, title=f"{d.source_name}: {d.target} forecasts")))
    figures.append(("Out-of-sample R2 vs naive per fold",
                    record.figure("fold_r2.png", plot_fold_bars, per_fold, "r2_oos", title="R2 vs naive by fold")))
    return figures


def _track_models(record: RunRecord, tags: dict, metrics, per_fold, trading, board, coverage: dict) -> None:
    """One nested run per model, with the same metric names in every one (MLflow's compare view lines them up)."""
    record.metrics({"best_r2_oos": board.iloc[0]["r2_oos"], "n_models": len(board)})
    for _, row in board.iterrows():
        model = row["model"]
        model_tags = tags | {tracking.TAG_KIND: TAG_MODEL_RUN, tracking.TAG_SOURCE: record.source, "ticker": record.source,
                             "model": model, "verdict": row["verdict"]}
        if model in coverage:
            model_tags["coverage"] = coverage[model]
        tracking.start_run(record.experiment, model, model_tags, {"model": model}, nested=True)
        try:
            tracking.log_metrics({k: v for k, v in (metrics[model] | trading.get(model, {})).items()
                                  if not isinstance(v, dict)})
            for _, fold_row in per_fold[per_fold["model"] == model].iterrows():
                values = {f"fold_{k}": v for k, v in fold_row.items() if k not in ("model", "fold")}
                tracking.log_metrics(values, step=int(fold_row["fold"]))
        finally:
            tracking.end_run()
