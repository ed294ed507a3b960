"""The words of the backtest report: what was done and how to read the verdicts, beside the tables."""

from __future__ import annotations


def backtest_intro(described: str, data, backtest, n_folds: int, first, last, spa_pvalue: float,
                   tuned: str | None = None) -> list[str]:
    """The report's opening paragraphs. ``data`` and ``backtest``: the settings sections; ``first``/``last``:
    the first and last forecast day; ``tuned``: a line on settings taken from a sweep, if any."""
    intro = [described,
             f"Target: {data.target}; lookback {data.lookback}, horizon {data.horizon}; {n_folds} folds refit every "
             f"{backtest.refit_every} days ({backtest.window} window) from {first:%Y-%m-%d} to {last:%Y-%m-%d}.",
             "Every model is refit with its scaler on data strictly before each fold; R2 vs naive is "
             "1 - SSE_model / SSE_naive; DM: Diebold-Mariano test of equal squared error vs naive (HLN "
             "corrected), the pairwise test.",
             f"Verdicts test all models at once on their daily squared errors (stationary block bootstrap): "
             f"Hansen's SPA asks whether any model beats naive (p = {spa_pvalue:.3f}); the Model Confidence "
             f"Set (90%) keeps the models that cannot be told apart from the best. Directional accuracy is "
             f"tested with Pesaran-Timmermann (PT p, one-sided), whose null keeps how often the market and the "
             f"forecast go up; 'Always up' is the hit rate of a forecast that always says up."]
    if tuned:
        intro.insert(1, tuned)
    return intro


def tuned_line(sweep: str, test_start: str, settings: dict[str, str]) -> str:
    """Networks at their best settings from a sweep: ``settings`` maps each network to its description."""
    return (f"Networks each at their best settings from sweep {sweep}, tuned on days before {test_start}: "
            + "; ".join(f"{m}: {s}" for m, s in settings.items()) + ".")


DISTRIBUTION_INTRO = (
    "Distributions (one-day-ahead): CRPS (lower is better) from each model's full distribution; coverage_90: "
    "share of days inside the 5%-95% interval (0.90 if calibrated); var01_hits: share of days below the 1% "
    "quantile, the 1% value at risk (0.01 if calibrated), tested by Kupiec (is the share 1%?) and "
    "Christoffersen (do hits cluster?); coverage is 'accepted' when both p-values are at least 0.05. CRPS "
    "is compared with {reference} by Diebold-Mariano, and across all distribution models by the 90% MCS. "
    "Point models have no distribution: their quantile cells are empty.")
