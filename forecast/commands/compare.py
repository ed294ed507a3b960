"""``forecast compare``: one leaderboard across every stored backtest's model runs."""

from __future__ import annotations

import pandas as pd

from ..tracking import runs as tracking
from ..config.settings import CompareConfig
from ..errors import ForecastError
from ..evaluate.scores import HIGHER_IS_BETTER
from ..report.tables import text_table
from .backtest_judge import TAG_MODEL_RUN
from ..console import Echo


def compare(cfg: CompareConfig, echo: Echo = print) -> pd.DataFrame:
    """Leaderboard across every stored backtest's model runs, best first by ``cfg.metric``."""
    runs = tracking.find_runs(experiment=cfg.experiment, kind=TAG_MODEL_RUN, source=cfg.ticker)
    if runs.empty:
        where = f" for {cfg.ticker!r}" if cfg.ticker else ""
        raise ForecastError(f"no finished backtests{where} in {tracking.shown_uri()}; run `forecast backtest` first")
    metric, column = cfg.metric, f"metrics.{cfg.metric}"
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
    echo(text_table(table.to_dict("records"), ["ticker", "target", "data", "date", metric, "dm_pvalue", "verdict", "run"]))
    return table.reset_index(drop=True)
