"""The distribution part of ``forecast backtest``: scores, VaR tests and verdicts, figures and tables.

Runs when the backtest forecasts distributions of the return (``--distribution`` for the
networks, or a distribution baseline among the models). Every model with a distribution is
scored on its full one-day-ahead distribution (``evaluate.distribution_scores``), compared on CRPS with
``riskmetrics`` (added to the models when missing), and drawn in a fan chart and a VaR-hits
plot. So that the distributions and the volatility target can be compared, ``har`` is also
fitted to the volatility target on the same folds (what ``--target volatility --models har``
would give) and each distribution's implied volatility is set next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate.distribution_scores import (REFERENCE_DISTRIBUTION, distribution_table, empty_scores, implied_volatility, numeric,
    one_day_sd, score_distributions)
from ..stats.distributions import Distribution
from ..evaluate.scores import first_step
from ..report.distribution_figures import BAND_LEVELS, plot_fan_chart, plot_implied_volatility, plot_var_hits
from ..models import ModelEntry, get_entry
from ..report.prose import DISTRIBUTION_INTRO
from ..report.tables import text_table
from ..stats.scoring_rules import quantile_column
from ..console import Echo
from ..tracking.record import RunRecord, series_slug

VOLATILITY_REFERENCE = "har"


def forecasts_distributions(entries: list[ModelEntry], target: str, distribution: str | None) -> bool:
    """Does this backtest forecast distributions? Networks with ``--distribution``, or a distribution baseline."""
    return target == "return" and (distribution is not None or any(e.dist_baseline for e in entries))


def add_reference_distribution(entries: list[ModelEntry], echo: Echo) -> None:
    """``riskmetrics``, the benchmark of distributions, joins the models when missing (as ``naive`` does)."""
    if REFERENCE_DISTRIBUTION not in [e.name for e in entries]:
        entries.append(get_entry(REFERENCE_DISTRIBUTION))
        echo(f"note: {REFERENCE_DISTRIBUTION} added to the models: distributions are compared with it on CRPS")


@dataclass
class DistributionSection:
    results: dict[str, dict]                                  # per model: scores, tests, verdicts
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    text: str = ""                                            # the table for the terminal

    def overall(self, metrics: dict[str, dict]) -> dict[str, dict]:
        """``metrics`` with every model's distribution scores (empty for point models): fixed names for all."""
        values = numeric(self.results)
        return {m: v | values.get(m, empty_scores()) for m, v in metrics.items()}

    def summary(self) -> dict:
        return {"benchmark": REFERENCE_DISTRIBUTION, "coverage_verdicts": {m: v["coverage"] for m, v in self.results.items()},
                "crps_verdicts": {m: v["crps_verdict"] for m, v in self.results.items()}}


def distribution_section(record: RunRecord, frame: pd.DataFrame, dists: dict[str, Distribution], folds: list,
                         history, series, cfg, name: str | None = None) -> DistributionSection:
    """Scores, tests, verdicts, tables and figures of every model's distribution (``dists``: over all folds).
    ``name``: a panel's series (its figures are named after it), else the data's name."""
    results = score_distributions(frame, dists, cfg.quantiles, REFERENCE_DISTRIBUTION, seed=cfg.train.seed)
    section = DistributionSection(results)
    table = distribution_table(results)
    section.tables.append(("Distribution forecasts: scores, VaR tests and verdicts", table))

    bands = _bands(frame, dists)
    prefix = f"{series_slug(name)}_" if name else ""
    name = name or cfg.data.source_name
    section.figures.append(("Fan chart: 90% (5%-95%) and 98% (1%-99%) intervals against the actual returns, last year; "
                            "crosses mark days below the 1% VaR",
                            record.figure(f"{prefix}fan_chart.png", plot_fan_chart, bands, title=f"{name}: forecast intervals")))
    section.figures.append(("Value-at-risk hits: days the return fell below the 1% VaR, and their running count "
                            "against the expected 1% of days",
                            record.figure(f"{prefix}var_hits.png", plot_var_hits, bands, title=f"{name}: 1% VaR hits")))
    realized = pd.Series(series.proxy, index=series.dates)
    days = pd.DatetimeIndex(sorted(frame["date"].unique()))
    realized = realized.reindex(days)
    reference = _volatility_reference(history, series, folds, cfg)
    sds = one_day_sd(frame, dists)
    vol = implied_volatility(sds, realized, reference)
    section.tables.append(("Implied volatility against the volatility target (daily standard deviation)", vol))
    section.figures.append(("Implied volatility of the distributions, the volatility target's HAR forecast and the "
                            "realized volatility proxy, last year",
                            record.figure(f"{prefix}implied_volatility.png", plot_implied_volatility, sds, realized, reference,
                                          title=f"{name}: daily volatility")))
    section.intro.append(DISTRIBUTION_INTRO.format(reference=REFERENCE_DISTRIBUTION))
    section.text = (f"\ndistribution forecasts ({len(dists)} models, best CRPS first; benchmark {REFERENCE_DISTRIBUTION}):\n"
                    + text_table(table.to_dict("records"), ["crps", "coverage_90", "var01_hits", "kupiec_pvalue",
                                                            "christoffersen_pvalue", "coverage", "crps_dm_pvalue",
                                                            "crps_in_mcs"]))
    return section


def _bands(frame: pd.DataFrame, dists: dict[str, Distribution]) -> pd.DataFrame:
    """``model, date, y_true`` and the quantiles of ``BAND_LEVELS`` of each distribution model's one-day forecasts,
    from its full distribution (whatever ``--quantiles`` wrote)."""
    parts = []
    step1 = first_step(frame)
    for model, dist in dists.items():
        rows = step1[step1["model"] == model]
        q = dist.quantiles(BAND_LEVELS, step=1)
        part = pd.DataFrame({"model": model, "date": rows["date"].to_numpy(), "y_true": rows["y_true"].to_numpy()})
        for j, level in enumerate(BAND_LEVELS):
            part[quantile_column(level)] = q[:, j]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _volatility_reference(history, series, folds: list, cfg) -> dict[str, pd.Series]:
    """``har`` fitted to the volatility target on the same folds: its one-day-ahead forecasts by date. The
    folds index ``series``' rows, which start later than the history when covariates start later: the
    volatility target is cut to the same days first."""
    from ..data.windows import build_series
    from ..engine.walkforward import plan_units, run_units

    d = cfg.data
    volatility = build_series(history, "volatility", d.features)
    volatility = volatility.rows(np.asarray(volatility.dates >= series.dates[0]))
    results = run_units(plan_units([get_entry(VOLATILITY_REFERENCE)], folds, False, cfg.network, cfg.train), volatility, cfg.network,
                        cfg.train, d.lookback, d.horizon, 1, echo=lambda line: None)
    by_fold = {r.fold: r for r in results}
    dates = np.concatenate([volatility.target_dates(f.split.test) for f in folds])
    values = np.concatenate([by_fold[f.number].forecasts[:, 0] for f in folds])
    return {VOLATILITY_REFERENCE: pd.Series(values, index=dates)}

