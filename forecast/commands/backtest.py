"""``forecast backtest``: walk-forward backtest of several models, with report and MLflow runs (a panel of several
series: ``panel_backtest``).

plan (models, data, folds) -> run (refits and forecasts, in parallel) -> judge (scores, SPA/MCS
verdicts, trading, distributions) -> write (files, figures, report.html) -> MLflow parent run
with one nested run per model.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..config.settings import BacktestConfig
from .backtest_judge import TAG_MODEL_RUN, BacktestResult, Judgement, Plan, judge, plan_models
from ..console import Echo
from ..data.load import load_data
from ..data.panels import is_panel
from ..evaluate.scores import NAIVE, trading_rows
from ..models.custom import check_custom_cells
from ..report.figures import plot_cumulative_sse_difference, plot_equity, plot_fold_bars, plot_forecasts
from ..report.html import html_report
from ..report.prose import backtest_intro, tuned_line
from ..report.tables import text_table
from ..tracking import runs as tracking
from ..tracking.record import RunRecord, data_tags

BOARD_COLUMNS = ["rmse", "mae", "r2_oos", "dir_acc", "always_up_hit_rate", "pt_pvalue", "dm_pvalue", "mcs_pvalue"]


def backtest(cfg: BacktestConfig, echo: Echo = print) -> BacktestResult:
    d = cfg.data
    if is_panel(d):
        from .panel_backtest import panel_backtest

        return panel_backtest(cfg, echo)
    plan = plan_backtest(cfg, echo)
    record = RunRecord.for_settings(cfg, "backtest", d.source_name, f"backtest-{d.target}", (d.source_name, "backtest"),
                                    echo)
    b = plan.backtest
    from ..engine.cluster import executor

    with executor(b.executor, b.ray_address, b.jobs, echo) as cluster, record:
        tags = data_tags(plan.history, plan.series) | ({"from_sweep": b.from_sweep} if b.from_sweep else {})
        record.tags(tags)
        from ..engine.walkforward import plan_units, run_units

        started = time.perf_counter()
        units = plan_units(plan.entries, plan.folds, b.warm_start, cfg.network, cfg.train, plan.setups)
        results = run_units(units, plan.series, cfg.network, cfg.train, d.lookback, d.horizon, b.jobs, echo,
                            cluster=cluster, on_epochs=record.unit_epochs())
        echo(f"fitted {len(results)} model-folds in {time.perf_counter() - started:.1f}s")
        judged = judge(plan, results, cfg, record)
        _write(record, plan, judged, cfg)
        if record.run_id:
            summary = judged.section.summary() if judged.section else {}
            _track_models(record, tags, judged, summary.get("coverage_verdicts", {}))
        _print(echo, judged, cfg)
    return BacktestResult(judged.frame, judged.metrics, judged.per_fold, judged.trading, judged.board, record.out,
                          record.run_id, judged.section.results if judged.section else {})


def plan_backtest(cfg: BacktestConfig, echo: Echo = print) -> Plan:
    """Models checked, data loaded, folds made: every bad input is a one-line error before a run opens."""
    d = cfg.data
    models = plan_models(cfg, echo)
    b, setups, entries = models.backtest, models.setups, models.entries
    history, series = load_data(d, echo)
    check_custom_cells([e for e in entries if e.name not in setups], len(series.feature_names), cfg.network, d.lookback)
    from ..engine.walkforward import make_folds

    folds = make_folds(series, max(d.lookback, models.lookback), d.horizon, b, d.val_fraction)
    plan = Plan(entries, history, series, folds, b, setups, models.distributional)
    first, last = plan.days
    echo(f"backtest: {len(folds)} folds of up to {b.refit_every} days, {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
         f"{b.window} training window{', warm starts' if b.warm_start else ''}, {b.jobs} job(s); "
         f"models: {', '.join(e.name for e in entries)}")
    return plan


def _write(record: RunRecord, plan: Plan, j: Judgement, cfg: BacktestConfig) -> None:
    d, b = cfg.data, plan.backtest
    record.csv("predictions.csv", j.frame)
    overall = pd.DataFrame([{"model": m, "fold": "all", **{k: v for k, v in vals.items() if not isinstance(v, dict)}}
                            for m, vals in j.overall.items()])
    record.csv("metrics.csv", pd.concat([overall, j.per_fold.astype({"fold": str})], ignore_index=True))
    summary = j.section.summary() if j.section else None
    record.json("metrics.json", tracking.clean({
        "overall": j.overall,
        "per_fold": {str(f): {r["model"]: {k: v for k, v in r.items() if k not in ("model", "fold")}
                              for _, r in part.iterrows()} for f, part in j.per_fold.groupby("fold")},
        "trading": j.trading,
        "spa": j.spa,
        "verdicts": dict(zip(j.board["model"], j.board["verdict"])),
        **({"distribution": summary} if summary else {}),
    }))
    record.config(cfg)
    figures = _figures(record, j.frame, j.per_fold, j.curves, d, b)
    first, last = plan.days
    tuned = None
    if plan.setups:
        from ..sweep.space import describe

        tuned = tuned_line(b.from_sweep, b.test_start, {m: describe(s) for m, s in plan.setups.items()})
    intro = backtest_intro(plan.history.describe(), d, b, len(plan.folds), first, last, j.spa["pvalue"], tuned)
    tables = [("Leaderboard", j.board.drop(columns=[c for c in j.board if c.startswith("rmse_by_seed")]))]
    if j.trading:
        tables.append((f"Trading (sign of the forecast, {b.cost_bps:g} bps per unit turnover)", trading_rows(j.trading)))
    if j.section:
        intro += j.section.intro
        tables[1:1] = j.section.tables
        figures = j.section.figures + figures
    tables.append(("Per fold", j.per_fold))
    record.commit("report.html", lambda p: html_report(p, f"Backtest: {d.source_name} ({d.target})", intro, tables,
                                                       figures))


def _print(echo: Echo, j: Judgement, cfg: BacktestConfig) -> None:
    echo(f"\nleaderboard ({len(j.frame[j.frame['model'] == NAIVE])} forecast days, sorted by R2 vs naive):")
    cols = BOARD_COLUMNS + (["qlike"] if cfg.data.target == "volatility" else (["sharpe_long_flat"] if j.trading else []))
    echo(text_table(j.board.to_dict("records"), cols + ["fit_seconds", "verdict"]))
    echo(f"SPA (is any model better than naive?): p = {j.spa['pvalue']:.3f}; in the 90% model confidence set: "
         f"{', '.join(m for m, v in j.mcs.items() if v['in_mcs'])}")
    if j.section:
        echo(j.section.text)


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


def _track_models(record: RunRecord, tags: dict, j: Judgement, coverage: dict) -> None:
    """One nested run per model, with the same metric names in every one (MLflow's compare view lines them up)."""
    record.metrics({"best_r2_oos": j.board.iloc[0]["r2_oos"], "n_models": len(j.board)})
    metrics = j.overall
    for _, row in j.board.iterrows():
        model = row["model"]
        model_tags = tags | {tracking.TAG_KIND: TAG_MODEL_RUN, tracking.TAG_SOURCE: record.source, "ticker": record.source,
                             "model": model, "verdict": row["verdict"]}
        if model in coverage:
            model_tags["coverage"] = coverage[model]
        tracking.start_run(record.experiment, model, model_tags, {"model": model}, nested=True)
        try:
            tracking.log_metrics({k: v for k, v in (metrics[model] | j.trading.get(model, {})).items()
                                  if not isinstance(v, dict)})
            for _, fold_row in j.per_fold[j.per_fold["model"] == model].iterrows():
                values = {f"fold_{k}": v for k, v in fold_row.items() if k not in ("model", "fold")}
                tracking.log_metrics(values, step=int(fold_row["fold"]))
        finally:
            tracking.end_run()
