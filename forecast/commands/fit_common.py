"""What a fit of one series and a fit of a panel share: the result, the entry check, the scoring of a split, how
the trained networks are described."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config.settings import FitConfig
from ..errors import ForecastError
from ..evaluate.distribution_scores import score_distributions
from ..evaluate.results import collect, seed_rmse
from ..evaluate.scores import score_points
from ..models import get_entry
from ..models.custom import load_cell

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


def score_fit(series, fold, results: list, cfg: FitConfig) -> tuple[pd.DataFrame, dict, dict]:
    """A fit's predictions frame (its model first, then the references), every model's test metrics (with its
    distribution's verdicts and each seed's RMSE), and the distribution verdicts alone."""
    d = cfg.data
    frame, dists = collect(series, [fold], [r.model for r in results], results, d.horizon,
                           cfg.quantiles if results[0].distribution is not None else None)
    metrics = score_points(frame, d.target, d.horizon)
    verdicts = score_distributions(frame, dists, cfg.quantiles, seed=cfg.train.seed) if dists else {}
    for name, values in verdicts.items():
        metrics[name].update(values)
    for name, by_seed in seed_rmse(results, frame, [fold]).items():
        metrics[name]["rmse_by_seed"] = by_seed
    return frame, metrics, verdicts


def checked_entry(cfg: FitConfig):
    entry = get_entry(cfg.model, cfg.data.target)
    if cfg.network.distribution and entry.kind != "network" and not entry.dist_baseline:
        raise ForecastError(f"--distribution: {entry.name} forecasts a point, not a distribution; use a network "
                            f"(or a distribution baseline: har, riskmetrics, garch-t, hist)")
    if entry.custom:
        load_cell(entry.cell)              # a user's class: a one-line error now, not after loading data
    return entry


def restarts_used(forecaster) -> int:
    """How many times the networks started again from a new initialisation (``--restarts``), all seeds."""
    members = getattr(forecaster, "members", None) or [forecaster]
    return int(sum(getattr(m, "restarts_", 0) for m in members))


def epochs_trained(forecaster) -> str:
    """", best epoch B of N" (one per seed for an ensemble); empty for a model that trains no epochs."""
    members = getattr(forecaster, "members", None) or [forecaster]      # a seed ensemble: its networks
    if not members[0].history_:
        return ""
    best = ", ".join(str(m.best_epoch_ + 1) for m in members)
    total = ", ".join(str(len(m.history_)) for m in members)
    return f", best epoch {best} of {total}" if len(members) == 1 else f", best epochs {best} of {total} by seed"
