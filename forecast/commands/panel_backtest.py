"""``forecast backtest`` on a panel: several series on one walk-forward calendar, verdicts per series and across.

plan (models, the panel, its folds) -> run (every model on every series and fold; a network's members across
series, folds and seeds train as one population where that pays) -> judge (each series exactly as one
series is judged; across series: pooled scores, Holm's correction of the SPA p-values, the R2 table of the
heatmap, the rank IC with five series or more) -> write (predictions with a series column, metrics,
report.html) -> an MLflow parent run with one nested run per model holding its metrics per series.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from ..config.settings import BacktestConfig
from ..console import Echo
from ..data.panels import Panel, load_panel
from ..errors import ForecastError
from ..stats.cross_section import UNINFORMED_RPS
from ..evaluate.panel import (cross_sectional, holm_table, pooled_scores, portfolio_trading, r2_table,
                              ranked_probability)
from ..evaluate.scores import NAIVE, trading_rows
from ..models.custom import check_custom_cells
from ..report.figures import plot_equity, plot_heatmap
from ..report.html import html_report
from ..report.prose import tuned_line
from ..report.tables import text_table
from ..tracking import runs as tracking
from ..tracking.record import RunRecord, panel_tags, series_slug
from .backtest_judge import TAG_MODEL_RUN, BacktestResult, Judgement, Plan, judge, plan_models

SERIES_COLUMNS = ["rmse", "r2_oos", "dm_pvalue", "mcs_pvalue", "verdict"]
POOLED_COLUMNS = ["rmse", "mae", "r2_oos", "dir_acc", "days"]


@dataclass
class PanelPlan:
    entries: list
    panel: Panel
    folds: list                       # each series' folds (numbered alike across the panel)
    backtest: object
    setups: dict                      # network -> its own settings (--from-sweep), else empty
    distributional: bool              # distributions forecast (judged per series, VaR tests included)


@dataclass
class PanelJudgement:
    per_series: dict[str, Judgement]
    frame: pd.DataFrame               # every series' predictions, with a series column
    pooled: dict
    holm: pd.DataFrame
    r2: pd.DataFrame
    cross: dict
    portfolio: dict                   # the equal-weight portfolio's trading by model (empty for volatility)
    curves: dict                      # its growth of 1
    rps: dict                         # distributions, five series or more: the ranked probability score by model


def panel_backtest(cfg: BacktestConfig, echo: Echo = print) -> BacktestResult:
    d = cfg.data
    plan = plan_panel(cfg, echo)
    record = RunRecord.for_settings(cfg, "backtest", d.source_name, f"backtest-{d.target}", (d.source_name, "backtest"),
                                    echo)
    b = plan.backtest
    from ..engine.cluster import executor

    with executor(b.executor, b.ray_address, b.jobs, echo) as cluster, record:
        record.tags(panel_tags(plan.panel) | ({"from_sweep": b.from_sweep} if plan.setups else {}))
        from ..engine.walkforward import plan_units, run_units

        started = time.perf_counter()
        units = plan_units(plan.entries, plan.folds, b.warm_start, cfg.network, cfg.train, plan.setups, panel=True)
        results = run_units(units, plan.panel.series, cfg.network, cfg.train, d.lookback, d.horizon, b.jobs, echo,
                            names=plan.panel.names, cluster=cluster, on_epochs=record.unit_epochs(plan.panel.names))
        echo(f"fitted {len(results)} model-folds in {time.perf_counter() - started:.1f}s")
        judged = judge_panel(plan, results, cfg, record)
        _write(record, plan, judged, cfg)
        if record.run_id:
            _track_models(record, judged, panel_tags(plan.panel))
        _print(echo, judged)
    board = pd.DataFrame([{"model": m, **v} for m, v in judged.pooled.items()])
    return BacktestResult(judged.frame, judged.pooled, pd.concat([j.per_fold.assign(series=n) for n, j in
                                                                  judged.per_series.items()], ignore_index=True),
                          {}, board, record.out, record.run_id)


def plan_panel(cfg: BacktestConfig, echo: Echo = print) -> PanelPlan:
    """Models checked, every series loaded, folds made: bad input is one line before a run opens."""
    d = cfg.data

    def refuse(entries: list) -> None:
        if cfg.backtest.warm_start and any(e.scope == "global" for e in entries):
            raise ForecastError("--warm-start: a global network trains afresh for each fold in this version; drop "
                                "--warm-start or the -global models")
        if cfg.network.distribution and any(e.scope == "global" for e in entries):
            raise ForecastError("--distribution: a global network forecasts points in this version; drop the "
                                "-global models, or --distribution")

    models = plan_models(cfg, echo, refuse)
    b, setups, entries, distributional = models.backtest, models.setups, models.entries, models.distributional
    panel = load_panel(d, echo)
    check_custom_cells([e for e in entries if e.name not in setups], len(panel.series[0].feature_names), cfg.network,
                       d.lookback)
    from ..engine.panel import panel_calendar, panel_folds

    lookback = max(d.lookback, models.lookback)
    folds = panel_folds(panel.series, panel.names, lookback, d.horizon, b, d.val_fraction, echo)
    calendar = panel_calendar(panel.series, lookback, d.horizon)
    numbers = sorted({f.number for series_folds in folds for f in series_folds})
    first = min(s.target_dates(f[0].split.test[:1])[0] for s, f in zip(panel.series, folds))
    echo(f"backtest: panel of {len(panel)} series ({', '.join(panel.names)}), {len(numbers)} folds of up to "
         f"{b.refit_every} days of the panel's calendar ({len(calendar):,} days), {first:%Y-%m-%d} to "
         f"{calendar[-1]:%Y-%m-%d}, {b.window} training window, {b.jobs} job(s); models: "
         f"{', '.join(e.name for e in entries)}")
    return PanelPlan(entries, panel, folds, b, setups, distributional)


def judge_panel(plan: PanelPlan, results: list, cfg: BacktestConfig, record: RunRecord) -> PanelJudgement:
    """Each series judged as one series is; then the verdicts across series."""
    per_series = {}
    for i, name in enumerate(plan.panel.names):
        one = Plan(plan.entries, plan.panel.histories[i], plan.panel.series[i], plan.folds[i], plan.backtest,
                   plan.setups, plan.distributional, name)
        per_series[name] = judge(one, [r for r in results if r.series == i], cfg, record)
    frame = pd.concat([j.frame.assign(series=name) for name, j in per_series.items()], ignore_index=True)
    frame = frame[["date", "series"] + [c for c in frame.columns if c not in ("date", "series")]]
    portfolio, curves = (portfolio_trading(frame, plan.backtest.cost_bps) if cfg.data.target == "return"
                         else ({}, {}))
    rps = (ranked_probability(frame, {n: j.dists for n, j in per_series.items()}, cfg.data.horizon,
                              seed=cfg.train.seed) if plan.distributional else {})
    return PanelJudgement(per_series, frame, pooled_scores(frame, cfg.data.target),
                          holm_table({n: j.spa["pvalue"] for n, j in per_series.items()}),
                          r2_table({n: j.metrics for n, j in per_series.items()}), cross_sectional(frame),
                          portfolio, curves, rps)


def _write(record: RunRecord, plan: PanelPlan, j: PanelJudgement, cfg: BacktestConfig) -> None:
    record.csv("predictions.csv", j.frame)
    rows = [pd.DataFrame([{"series": n, "model": m, "fold": "all", **_plain(v)} for m, v in one.overall.items()])
            for n, one in j.per_series.items()]
    rows += [one.per_fold.astype({"fold": str}).assign(series=n) for n, one in j.per_series.items()]
    metrics = pd.concat(rows, ignore_index=True)
    record.csv("metrics.csv", metrics[["series"] + [c for c in metrics.columns if c != "series"]])
    record.json("metrics.json", tracking.clean({
        "pooled": j.pooled, "holm": j.holm.to_dict("records"), "cross_sectional": j.cross, "portfolio": j.portfolio,
        "ranked_probability": j.rps,
        "series": {n: {"overall": one.overall, "spa": one.spa,
                       "verdicts": dict(zip(one.board["model"], one.board["verdict"])),
                       **({"distribution": one.section.summary()} if one.section else {})}
                   for n, one in j.per_series.items()}}))
    record.config(cfg)
    heatmap = record.figure("r2_heatmap.png", plot_heatmap, j.r2, title="R2 vs naive by series and model")
    d, b = cfg.data, plan.backtest
    figures = [("R2 vs naive by series and model", heatmap)]
    if j.curves:
        figures.append(("Equal-weight portfolio of the series (long/flat)", record.figure(
            "portfolio_equity.png", plot_equity, j.curves,
            title=f"Equal-weight portfolio of {len(plan.panel)} series: growth of 1, {b.cost_bps:g} bps costs")))
    beaten = [r["series"] for r in j.holm.to_dict("records") if r["holm_pvalue"] < 0.05]
    intro = [f"Panel of {len(plan.panel)} series: " + "; ".join(h.describe() for h in plan.panel.histories) + ".",
             f"Walk-forward: folds of {b.refit_every} days of the panel's calendar, every model refit on each "
             f"series strictly before each fold ({b.window} window); target: {d.target}, lookback {d.lookback}.",
             "Each series is judged on its own (SPA, MCS), then across series: Holm's correction of the SPA p-values "
             "(many series: one beating naive at 5% is what chance gives). Series where some model beats naive after "
             f"it: {', '.join(beaten) if beaten else 'none'}."]
    if plan.setups:
        from ..sweep.space import describe

        intro.append(tuned_line(b.from_sweep, b.test_start, {m: describe(s) for m, s in plan.setups.items()}))
    tables = [("Pooled over all series (one-day-ahead)", _pooled_frame(j.pooled)),
              ("Holm across series", j.holm)]
    if j.cross:
        tables.append(("Cross-sectional skill: daily rank IC across series (Newey-West t)",
                       pd.DataFrame([{"model": m, **v} for m, v in j.cross.items()])))
    tables += [(f"Leaderboard: {n}", one.board.drop(columns=[c for c in one.board if c.startswith("rmse_by_seed")]))
               for n, one in j.per_series.items()]
    if j.rps:
        tables.append((f"Ranked probability score of each series' quintile rank over {d.horizon} day(s) (M6; "
                       f"uninformed: 0.16; t: Newey-West of the daily improvement)", _rps_frame(j.rps)))
    if j.portfolio:
        tables.insert(2, (f"Equal-weight portfolio of the series, traded by the sign of each model's forecasts "
                          f"({b.cost_bps:g} bps per unit turnover; leaderboards below: each series' Sharpe)",
                          trading_rows(j.portfolio)))
    for n, one in j.per_series.items():
        if one.section:
            tables += [(f"{title}: {n}", table) for title, table in one.section.tables]
            figures += [(f"{title} ({n})", path) for title, path in one.section.figures]
    if plan.distributional:
        intro += next(one.section.intro for one in j.per_series.values())
    tables.append(("R2 vs naive by series", j.r2.reset_index(names="series")))
    record.commit("report.html", lambda p: html_report(p, f"Backtest: panel of {len(plan.panel)} series ({d.target})",
                                                       intro, tables, figures))


def _rps_frame(rps: dict) -> pd.DataFrame:
    frame = pd.DataFrame([{"model": m, **v} for m, v in rps.items()])
    return frame.sort_values("rps", kind="stable").reset_index(drop=True)


def _plain(values: dict) -> dict:
    return {k: v for k, v in values.items() if not isinstance(v, dict)}


def _pooled_frame(pooled: dict) -> pd.DataFrame:
    frame = pd.DataFrame([{"model": m, **v} for m, v in pooled.items()])
    return frame.sort_values("r2_oos", ascending=False, kind="stable").reset_index(drop=True)


def beaten(j: PanelJudgement, model: str) -> int:
    """On how many series ``model`` beats naive: its own verdict says so and Holm's correction keeps it."""
    holm = dict(zip(j.holm["series"], j.holm["holm_pvalue"]))
    return sum(holm[n] < 0.05 and dict(zip(one.board["model"], one.board["verdict"])).get(model, "").startswith(
        "better than naive") for n, one in j.per_series.items())


def _track_models(record: RunRecord, j: PanelJudgement, tags: dict) -> None:
    """One nested run per model: its pooled metrics (named as a one-series run's: ``compare`` ranks both alike)
    and each series' (``GSPC.r2_oos``: sorted by series)."""
    record.metrics({"n_series": len(j.per_series)})
    for model, pooled in j.pooled.items():
        verdict = (f"beats naive on {beaten(j, model)} of {len(j.per_series)} series (SPA, MCS, Holm)"
                   if model != NAIVE else "benchmark")
        model_tags = tags | {tracking.TAG_KIND: TAG_MODEL_RUN, tracking.TAG_SOURCE: record.source,
                             "ticker": record.source, "model": model, "verdict": verdict}
        tracking.start_run(record.experiment, model, model_tags, {"model": model}, nested=True)
        try:
            values = {**pooled, **{f"pooled.{k}": v for k, v in pooled.items()},
                      **{f"portfolio.{k}": v for k, v in j.portfolio.get(model, {}).items()},
                      **{k: v for k, v in j.rps.get(model, {}).items() if k != "rps_uninformed"}}
            for name, one in j.per_series.items():
                values |= {f"{series_slug(name)}.{k}": v for k, v in _plain(one.overall.get(model, {})).items()}
            tracking.log_metrics(values)
        finally:
            tracking.end_run()


def _print(echo: Echo, j: PanelJudgement) -> None:
    for name, one in j.per_series.items():
        days = len(one.frame[one.frame["model"] == NAIVE])
        echo(f"\n{name} ({days} forecast days): SPA p = {one.spa['pvalue']:.3f}")
        echo(text_table(one.board.to_dict("records"), SERIES_COLUMNS))
        if one.section:
            echo(one.section.text)
    echo(f"\npooled over {len(j.per_series)} series:")
    echo(text_table(_pooled_frame(j.pooled).to_dict("records"), POOLED_COLUMNS))
    echo("\nHolm across series (is any model better than naive on this series, after testing every series?):")
    echo(text_table(j.holm.to_dict("records"), ["spa_pvalue", "holm_pvalue", "verdict"], first="series"))
    if j.rps:
        echo(f"\nranked probability score of the quintile ranks ({next(iter(j.rps.values()))['rps_days']} days; "
             f"uninformed {UNINFORMED_RPS}; lower is better):")
        echo(text_table(_rps_frame(j.rps).to_dict("records"), ["rps", "rps_t", "rps_days"]))
    if j.portfolio:
        echo("\nequal-weight portfolio of the series, traded by the sign of each forecast:")
        echo(text_table(trading_rows(j.portfolio).to_dict("records"), ["rule", "cagr", "sharpe", "max_drawdown",
                                                                        "turnover"]))
    if j.cross:
        echo("\ncross-sectional skill (daily rank IC across series):")
        echo(text_table([{"model": m, **v} for m, v in j.cross.items()], ["rank_ic", "rank_ic_t", "rank_ic_pvalue",
                                                                          "ic_days"]))
