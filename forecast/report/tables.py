"""Text tables: metric names as the user reads them, numbers formatted by what they are."""

from __future__ import annotations

import math

METRIC_LABELS = {
    "rmse": "RMSE", "mae": "MAE", "r2_oos": "R2 vs naive", "dir_acc": "Dir. acc",
    "always_up_hit_rate": "Always up", "pt_stat": "PT stat", "pt_pvalue": "PT p", "dm_stat": "DM stat",
    "dm_pvalue": "DM p", "mcs_pvalue": "MCS p", "in_mcs": "in MCS", "qlike": "QLIKE",
    "sharpe_long_flat": "Sharpe L/F", "sharpe_long_short": "Sharpe L/S", "fit_seconds": "fit s",
    "crps": "CRPS", "nll": "NLL", "pinball": "Pinball", "coverage_90": "In 90% int.", "var01_hits": "1% VaR hits",
    "kupiec_pvalue": "Kupiec p", "christoffersen_pvalue": "Christoffersen p", "coverage": "Coverage",
    "crps_dm_pvalue": "CRPS DM p", "crps_in_mcs": "CRPS in MCS", "crps_verdict": "CRPS vs benchmark",
    "mean_vol": "Mean (daily)", "corr_realized": "Corr. with realized",
    "cagr": "CAGR", "ann_vol": "Volatility", "sharpe": "Sharpe", "max_drawdown": "Max drawdown",
    "total_return": "Total return", "turnover": "Turnover / year",
    "spa_pvalue": "SPA p", "holm_pvalue": "Holm p", "rank_ic": "Rank IC", "rank_ic_t": "IC t (NW)",
    "rank_ic_pvalue": "IC p", "ic_days": "IC days",
}


def format_value(value, key: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, str):
        return value
    if key in ("rmse", "mae"):
        return f"{value:.6f}"
    if key in ("r2_oos",):
        return f"{value:+.4f}"
    if key in ("dir_acc", "always_up_hit_rate", "coverage_90", "var01_hits", "cagr", "ann_vol", "max_drawdown",
               "total_return"):
        return f"{100 * value:.1f}%"
    if key in ("mean_vol",):
        return f"{100 * value:.3f}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def text_table(rows: list[dict], columns: list[str], first: str = "model") -> str:
    """A fixed-width table; ``columns`` are metric keys, labelled with METRIC_LABELS."""
    header = [first] + [METRIC_LABELS.get(c, c) for c in columns]
    body = [[str(r[first])] + [format_value(r.get(c), c) for c in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(b) for b in body])
