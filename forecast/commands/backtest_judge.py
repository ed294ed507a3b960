"""What a backtest of one series concludes, shared by the one-series and the panel backtest: its plan, its
judgement (scores, seed RMSEs, trading, SPA and MCS verdicts, the leaderboard, distributions) and its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config.settings import BacktestConfig
from ..evaluate.results import collect, seed_rmse
from ..evaluate.scores import NAIVE, leaderboard, multiple_comparison, score_points, trading_table
from ..models import get_entry, parse_models, unique_models
from ..models.custom import load_cell
from ..tracking.record import RunRecord
from .backtest_distribution import add_reference_distribution, distribution_section, forecasts_distributions

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


@dataclass
class Plan:
    """What a backtest will do: its models, data, folds and settings (a sweep's, per network, with --from-sweep)."""

    entries: list
    history: object
    series: object
    folds: list
    backtest: object                       # the backtest settings in force (--from-sweep: its test start, models)
    setups: dict                           # network -> its own settings (--from-sweep), else empty
    distributional: bool
    name: str | None = None                # a panel's series: what its figures are named after

    @property
    def days(self):
        s, f = self.series, self.folds
        return s.target_dates(f[0].split.test[:1])[0], s.target_dates(f[-1].split.test[-1:])[0]


@dataclass
class Judgement:
    """Everything a backtest concludes from its forecasts."""

    frame: pd.DataFrame
    metrics: dict
    per_fold: pd.DataFrame
    trading: dict
    curves: dict
    spa: dict
    mcs: dict
    board: pd.DataFrame
    section: object = None                 # the distribution part, when distributions are forecast
    dists: dict = None                     # each model's distributions over all folds (in the frame's order)

    @property
    def overall(self) -> dict:
        return self.section.overall(self.metrics) if self.section else self.metrics


@dataclass
class ModelPlan:
    """The models a backtest compares: its settings in force, each tuned network's own settings, the entries."""

    backtest: object                       # --from-sweep: its test start and models
    setups: dict
    entries: list                          # naive (and riskmetrics for distributions) added
    distributional: bool

    @property
    def lookback(self) -> int:
        """Every model forecasts the same days: the folds are made with the longest lookback in play."""
        return max([s.lookback for s in self.setups.values()], default=0)


def plan_models(cfg: BacktestConfig, echo, check=None) -> ModelPlan:
    """--from-sweep read, --models parsed (``check``: a caller's refusals of the parsed entries), naive and the
    reference distribution added, users' cells imported: a one-line error now, not in a worker."""
    d, b = cfg.data, cfg.backtest
    setups = {}
    if b.from_sweep:
        from ..sweep.results import from_sweep

        b, setups = from_sweep(cfg, echo)
    entries = parse_models(unique_models(b.models, echo), d.target)
    if check is not None:
        check(entries)
    if NAIVE not in [e.name for e in entries]:
        entries.append(get_entry(NAIVE))
    distributional = forecasts_distributions(entries, d.target, cfg.network.distribution)
    if distributional:
        add_reference_distribution(entries, echo)
    for entry in entries:
        if entry.custom:
            load_cell(entry.cell)
    return ModelPlan(b, setups, entries, distributional)


def judge(plan: Plan, results: list, cfg: BacktestConfig, record: RunRecord) -> Judgement:
    """Scores per model and fold, seed RMSEs, trading, SPA and MCS verdicts, the leaderboard, distributions."""
    d = cfg.data
    frame, dists = collect(plan.series, plan.folds, [e.name for e in plan.entries], results, d.horizon,
                           cfg.quantiles if plan.distributional else None)
    metrics = score_points(frame, d.target, d.horizon)
    for model, by_seed in seed_rmse(results, frame, plan.folds).items():
        metrics[model]["rmse_by_seed"] = by_seed
    per_fold = pd.DataFrame([{"model": m, "fold": f, **vals} for f, part in frame.groupby("fold")
                             for m, vals in score_points(part, d.target, d.horizon).items()])
    trading, curves = trading_table(frame, plan.backtest.cost_bps) if d.target == "return" else ({}, {})
    spa, mcs = multiple_comparison(frame, seed=cfg.train.seed)
    for model, membership in mcs.items():
        metrics[model].update(membership)
    board = leaderboard(metrics, trading, spa)
    seconds = pd.DataFrame([(r.model, r.seconds) for r in results], columns=["model", "s"]).groupby("model")["s"].sum()
    board["fit_seconds"] = board["model"].map(seconds)
    section = (distribution_section(record, frame, dists, plan.folds, plan.history, plan.series, cfg, plan.name)
               if plan.distributional else None)
    return Judgement(frame, metrics, per_fold, trading, curves, spa, mcs, board, section, dists)
