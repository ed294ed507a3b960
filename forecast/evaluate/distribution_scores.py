"""Judging distribution forecasts: proper scores, the value-at-risk backtests, and the comparison with RiskMetrics.

Every score comes from a model's full forecast distribution (``Distribution``), whatever
``--quantiles`` writes, on the one-day-ahead forecasts:

- ``crps``: continuous ranked probability score (closed form; exact for ``hist``'s sample), in
  return units; lower is better. It rewards sharp *and* calibrated forecasts.
- ``nll``: mean negative log-likelihood (null for ``hist``, which has no density).
- ``pinball``: mean quantile loss over the written levels.
- ``coverage_90``: share of days inside the 5%-95% interval (0.90 for a calibrated forecast).
- ``var01_hits``: share of days below the 1% quantile, the 1% value at risk (0.01 if calibrated);
  ``kupiec_pvalue`` tests that share (unconditional coverage), ``christoffersen_pvalue`` whether
  hits cluster (independence). The coverage verdict is "accepted" when both are at least 0.05.
- ``crps_dm_pvalue``: Diebold-Mariano test of equal daily CRPS against ``riskmetrics``;
  ``crps_in_mcs``: in the 90% Model Confidence Set of the daily CRPS of all distribution models.

``METRICS`` names them all (with ``var05_hits``, ``crps_dm_stat``, ``crps_diff`` and ``crps_mcs_pvalue``): a
point model has the same names, empty (``empty_scores``).

A sweep over distribution networks minimises the mean NLL of its validation folds' forecasts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stats.distributions import Distribution
from .scores import MCS_SIZE, first_step
from ..stats.metrics import MIN_DAYS, diebold_mariano_losses, model_confidence_set
from ..stats.scoring_rules import christoffersen_pvalue, kupiec_pvalue, pinball_loss

REFERENCE_DISTRIBUTION = "riskmetrics"
TEST_LEVEL = 0.05        # a coverage test rejects below this p-value
VAR_LEVEL = 0.01         # the value at risk tested: the 1% quantile
INTERVAL = (0.05, 0.95)  # the 90% interval of coverage_90
METRICS = ("crps", "nll", "pinball", "coverage_90", "var01_hits", "var05_hits", "kupiec_pvalue",
           "christoffersen_pvalue", "crps_dm_stat", "crps_dm_pvalue", "crps_diff", "crps_in_mcs", "crps_mcs_pvalue")


def distribution_metrics(y: np.ndarray, dist: Distribution, levels: list[float], crps: np.ndarray) -> dict[str, float]:
    """The scores of one model's one-day-ahead distributions ``dist`` at the outcomes ``y [N]``, whose daily
    CRPS is ``crps [N]``."""
    y = np.asarray(y, dtype=np.float64)
    q = dist.quantiles([VAR_LEVEL, *INTERVAL], step=1)                # [N, 3]: q01, q05, q95
    hits = (y < q[:, 0]).astype(int)
    nll = dist.nll(y)
    return {"crps": float(np.mean(crps)),
            "nll": float(np.mean(nll)) if np.isfinite(nll).all() else float("nan"),
            "pinball": pinball_loss(y, dist.quantiles(levels, step=1), levels),
            "coverage_90": float(np.mean((y >= q[:, 1]) & (y <= q[:, 2]))),
            "var01_hits": float(hits.mean()),
            "var05_hits": float(np.mean(y < q[:, 1])),
            "kupiec_pvalue": kupiec_pvalue(hits, VAR_LEVEL),
            "christoffersen_pvalue": christoffersen_pvalue(hits)}


def coverage_verdict(kupiec: float, christoffersen: float) -> str:
    """"accepted" when both VaR tests give p >= 0.05; otherwise which one rejected, or why it cannot say."""
    failed = [name for name, p in (("Kupiec", kupiec), ("Christoffersen", christoffersen))
              if not math.isnan(p) and p < TEST_LEVEL]
    if failed:
        return f"rejected ({', '.join(failed)})"
    if math.isnan(kupiec) or math.isnan(christoffersen):
        return "untestable (too few hits)"
    return "accepted"


def crps_verdict(metrics: dict, model: str, benchmark: str) -> str:
    if model == benchmark:
        return "benchmark"
    p, diff = metrics.get("crps_dm_pvalue", float("nan")), metrics.get("crps_diff", float("nan"))
    if math.isnan(p) or p >= TEST_LEVEL:
        return f"no different from {benchmark} (DM)"
    return f"{'better' if diff < 0 else 'worse'} than {benchmark} (DM)"


def score_distributions(frame: pd.DataFrame, dists: dict[str, Distribution], levels: list[float],
                        benchmark: str = REFERENCE_DISTRIBUTION, seed: int = 0) -> dict[str, dict]:
    """Per model with a distribution: its scores, the CRPS comparison with ``benchmark`` (Diebold-Mariano)
    and with all of them (MCS), and its two verdicts (``coverage``, ``crps_verdict``, strings)."""
    out: dict[str, dict] = {}
    step1 = first_step(frame)
    daily = {}
    for model, dist in dists.items():
        rows = step1[step1["model"] == model]
        y = rows["y_true"].to_numpy(dtype=np.float64)
        crps = dist.crps(y)
        out[model] = distribution_metrics(y, dist, levels, crps)
        daily[model] = pd.Series(crps, index=rows["date"].to_numpy())
    losses = pd.DataFrame(daily)
    for model in dists:
        if benchmark in losses:
            stat, p = diebold_mariano_losses(losses[model].to_numpy(), losses[benchmark].to_numpy())
            out[model].update({"crps_dm_stat": stat, "crps_dm_pvalue": p,
                               "crps_diff": float(losses[model].mean() - losses[benchmark].mean())})
        else:
            out[model].update({"crps_dm_stat": float("nan"), "crps_dm_pvalue": float("nan"), "crps_diff": float("nan")})
    if len(losses.dropna()) >= MIN_DAYS:        # a single model is the whole set: in it, p-value 1.0
        mcs = model_confidence_set(losses, MCS_SIZE, seed=seed)
        for model, member in mcs.items():
            out[model].update({"crps_in_mcs": member["in_mcs"], "crps_mcs_pvalue": member["mcs_pvalue"]})
    else:
        for model in out:
            out[model].update({"crps_in_mcs": True, "crps_mcs_pvalue": 1.0})
    for model, values in out.items():
        values["coverage"] = coverage_verdict(values["kupiec_pvalue"], values["christoffersen_pvalue"])
        values["crps_verdict"] = crps_verdict(values, model, benchmark)
    return out


def distribution_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per distribution model, best CRPS first, with its verdicts."""
    columns = ["crps", "nll", "pinball", "coverage_90", "var01_hits", "kupiec_pvalue", "christoffersen_pvalue",
               "coverage", "crps_dm_pvalue", "crps_in_mcs", "crps_verdict"]
    rows = [{"model": m, **{c: v.get(c) for c in columns}} for m, v in results.items()]
    return pd.DataFrame(rows).sort_values("crps", kind="stable").reset_index(drop=True)


def numeric(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """The numbers of ``score_distributions`` (for metrics.json's ``overall`` and MLflow), verdicts left out."""
    return {m: {k: v for k, v in values.items() if not isinstance(v, str)} for m, values in results.items()}


def empty_scores() -> dict[str, float]:
    """A point model's distribution metrics: the same names, no values."""
    return {name: float("nan") for name in METRICS}


def one_day_sd(frame: pd.DataFrame, dists: dict[str, Distribution]) -> dict[str, pd.Series]:
    """Each distribution model's one-day-ahead standard deviation, by date."""
    step1 = first_step(frame)
    return {m: pd.Series(d.sd[:, 0], index=step1.loc[step1["model"] == m, "date"].to_numpy())
            for m, d in dists.items()}


def implied_volatility(sds: dict[str, pd.Series], realized: pd.Series,
                       volatility_forecasts: dict[str, pd.Series]) -> pd.DataFrame:
    """Do the distribution forecasts and the volatility target agree? Each distribution model's standard
    deviation (``one_day_sd``) and each volatility-target model's forecast, against the realized volatility
    proxy of the same days: the mean level and the correlation (scale-free: the proxy, a high-low range,
    misses the overnight move, so its level sits below the return's standard deviation)."""
    series = {f"{m} (distribution sd)": s for m, s in sds.items()}
    series |= {f"{m} (volatility target)": s for m, s in volatility_forecasts.items()}
    rows = [{"model": "realized proxy", "mean_vol": float(realized.mean()), "corr_realized": 1.0}]
    for name, s in series.items():
        both = pd.concat([s.rename("f"), realized.rename("v")], axis=1).dropna()
        rows.append({"model": name, "mean_vol": float(both["f"].mean()),
                     "corr_realized": float(np.corrcoef(both["f"], both["v"])[0, 1])})
    return pd.DataFrame(rows)

