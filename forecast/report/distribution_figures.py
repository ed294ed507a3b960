"""Figures of distribution forecasts: the fan chart, the value-at-risk hits and the implied volatility.

``bands`` is a long frame, one row per model and forecast day: ``model, date, y_true`` and the
quantiles ``q01, q05, q50, q95, q99`` of the one-day-ahead distribution (``BAND_LEVELS``).
Returns are drawn in percent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate.distribution_scores import VAR_LEVEL
from .figures import pyplot, save_figure

BAND_LEVELS = [0.01, 0.05, 0.5, 0.95, 0.99]


def plot_fan_chart(bands: pd.DataFrame, path: Path, title: str, last_days: int = 250) -> Path:
    """One panel per model: the 98% and 90% intervals, the median, the actual returns, the 1% VaR hits."""
    plt = pyplot()
    models = list(dict.fromkeys(bands["model"]))
    fig, axes = plt.subplots(len(models), 1, figsize=(11, 0.6 + 2.1 * len(models)), sharex=True, sharey=True,
                             squeeze=False)
    dates = sorted(bands["date"].unique())[-last_days:]
    for ax, model in zip(axes[:, 0], models):
        rows = bands[bands["model"] == model].set_index("date").loc[dates]
        x = rows.index
        ax.fill_between(x, 100 * rows["q01"], 100 * rows["q99"], color="tab:blue", alpha=0.18, lw=0, label="1%-99%")
        ax.fill_between(x, 100 * rows["q05"], 100 * rows["q95"], color="tab:blue", alpha=0.35, lw=0, label="5%-95%")
        ax.plot(x, 100 * rows["q50"], color="tab:blue", lw=0.6, label="median")
        ax.scatter(x, 100 * rows["y_true"], s=3, color="k", zorder=3, label="actual")
        hits = rows[rows["y_true"] < rows["q01"]]
        ax.scatter(hits.index, 100 * hits["y_true"], s=28, marker="x", color="tab:red", zorder=4, label="below 1% VaR")
        inside = np.mean((rows["y_true"] >= rows["q05"]) & (rows["y_true"] <= rows["q95"]))
        ax.set_title(f"{model}: {100 * inside:.0f}% of these days inside the 90% interval, {len(hits)} below the "
                     f"1% VaR", fontsize=9, loc="left")
        ax.axhline(0, color="k", lw=0.4)
        ax.set_ylabel("return, %")
    axes[0, 0].legend(loc="upper right", ncol=5, fontsize=7)
    fig.suptitle(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_var_hits(bands: pd.DataFrame, path: Path, title: str) -> Path:
    """Top: each model's running count of 1% VaR hits against the expected 1% of days. Bottom: the hit days."""
    plt = pyplot()
    models = list(dict.fromkeys(bands["model"]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4.2 + 0.3 * len(models)), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 0.6 + 0.3 * len(models)]})
    for i, model in enumerate(models):
        rows = bands[bands["model"] == model].sort_values("date")
        hit = (rows["y_true"] < rows["q01"]).to_numpy()
        line, = top.step(rows["date"], np.cumsum(hit), where="post", lw=1.2,
                         label=f"{model}: {hit.sum()} hits ({100 * hit.mean():.1f}%)")
        bottom.scatter(rows["date"][hit], np.full(hit.sum(), i), marker="|", s=120, color=line.get_color())
    days = sorted(bands["date"].unique())
    top.plot(days, VAR_LEVEL * np.arange(1, len(days) + 1), color="k", ls="--", lw=1,   # a calibrated forecast
             label=f"expected: {100 * VAR_LEVEL:g}% of days")
    top.set_ylabel("cumulative 1% VaR hits")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    bottom.set_yticks(range(len(models)), models, fontsize=8)
    bottom.set_ylim(-0.7, len(models) - 0.3)
    bottom.invert_yaxis()
    bottom.set_xlabel("hit days")
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_implied_volatility(sds: dict[str, pd.Series], realized: pd.Series, reference: dict[str, pd.Series],
                            path: Path, title: str, last_days: int = 250) -> Path:
    """Each distribution's one-day standard deviation (``sds``, by date), the volatility target's forecasts and
    the realized proxy, on the distributions' days."""
    plt = pyplot()
    days = sorted(set().union(*(sd.index for sd in sds.values())))[-last_days:]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(days, 100 * realized.reindex(days).to_numpy(), color="0.65", lw=0.8, label="realized proxy")
    for model, sd in sds.items():
        ax.plot(days, 100 * sd.reindex(days).to_numpy(), lw=1.1, label=f"{model} (distribution sd)")
    for model, forecast in reference.items():
        ax.plot(days, 100 * forecast.reindex(days).to_numpy(), color="k", ls="--", lw=1.1,
                label=f"{model} (volatility target)")
    ax.set_ylabel("daily volatility, %")
    ax.set_title(title)
    ax.legend(loc="upper left", ncol=4, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)
