"""PNG figures of forecasts, errors, folds, equity, gradients and the bench: each saved and freed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate.scores import first_step
from .tables import METRIC_LABELS

def save_figure(fig, path: Path) -> Path:
    """Write a figure as a PNG and free it (a long backtest draws many)."""
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def pyplot():
    import warnings

    import matplotlib

    # A title naming a file such as 数据.csv: the default font lacks the glyphs, the figure shows boxes; no
    # warning per character and figure (the name is printed correctly in the command's own lines).
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font", category=UserWarning)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_forecasts(predictions: pd.DataFrame, path: Path, title: str, last_days: int = 250) -> Path:
    """Actual target against each model's forecast over the last ``last_days`` forecast days."""
    plt = pyplot()
    step1 = first_step(predictions)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    dates = sorted(step1["date"].unique())[-last_days:]
    first = step1[step1["model"] == step1["model"].iloc[0]].set_index("date").loc[dates]
    ax.plot(first.index, first["y_true"], color="0.6", lw=0.8, label="actual")
    for model, rows in step1.groupby("model", sort=False):
        rows = rows.set_index("date").loc[dates]
        ax.plot(rows.index, rows["y_pred"], lw=1.2, label=model)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(title)
    ax.set_ylabel("target")
    ax.legend(loc="upper left", ncol=6, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_equity(curves: dict[str, pd.Series], path: Path, title: str) -> Path:
    """Equity curves (growth of 1) of the trading rules and buy-and-hold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, curve in curves.items():
        ax.plot(curve.index, curve.to_numpy(), lw=1.8 if name == "buy_and_hold" else 1.0,
                color="k" if name == "buy_and_hold" else None, label=name)
    ax.set_title(title)
    ax.set_ylabel("growth of 1")
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_cumulative_sse_difference(predictions: pd.DataFrame, naive: str, path: Path, title: str) -> Path:
    """Cumulative (SE_naive - SE_model) over time: rising means the model is gaining on naive."""
    plt = pyplot()
    step1 = first_step(predictions)
    base = step1[step1["model"] == naive].set_index("date")
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for model, rows in step1.groupby("model", sort=False):
        if model == naive:
            continue
        rows = rows.set_index("date")
        gain = (base["y_true"] - base["y_pred"]) ** 2 - (rows["y_true"] - rows["y_pred"]) ** 2
        ax.plot(rows.index, gain.cumsum().to_numpy(), lw=1.0, label=model)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(title)
    ax.set_ylabel("cumulative SE(naive) - SE(model)")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_fold_bars(per_fold: pd.DataFrame, metric: str, path: Path, title: str) -> Path:
    """One group of bars per fold, one bar per model, for ``metric``."""
    plt = pyplot()
    table = per_fold.pivot(index="fold", columns="model", values=metric)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(table.columns), 1)
    x = np.arange(len(table.index))
    for i, model in enumerate(table.columns):
        ax.bar(x + i * width, table[model].to_numpy(dtype=float), width, label=model)
    ax.set_xticks(x + 0.4 - width / 2, [str(f) for f in table.index])
    ax.set_xlabel("fold")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gradient_flow(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """|d output / d input k steps back| per model, at initialisation and after training (log scale)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, stage in zip(axes, ("init", "trained")):
        for model, rows in frame[frame["stage"] == stage].groupby("model", sort=False):
            ax.semilogy(rows["k"], rows["grad_norm"].clip(lower=1e-30), label=model)
        ax.set_title(f"at {'initialisation' if stage == 'init' else 'the end of training'}")
        ax.set_xlabel("k: steps back from the last input")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("mean ||d output / d input||")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bench(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """RMSE / optimum against the dependency's lag, one line per model: median over seeds, range shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    stats = frame.groupby(["model", "lag"], sort=False)["rmse_over_opt"].agg(["median", "min", "max"]).reset_index()
    for model, rows in stats.groupby("model", sort=False):
        rows = rows.sort_values("lag")
        lags = rows["lag"].astype(float).to_numpy()
        style = dict(color="0.5", ls="--") if model == "zero" else {}
        line, = ax.plot(lags, rows["median"], marker="o", label=model, **style)
        ax.fill_between(lags, rows["min"], rows["max"], color=line.get_color(), alpha=0.15)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ticks = sorted(frame["lag"].dropna().astype(int).unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("lag L of the dependency r_t = 0.8 r_(t-L) + e_t")
    ax.set_ylabel("test RMSE / best possible RMSE")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_heatmap(table: pd.DataFrame, path: Path, title: str, label: str = "R2 vs naive") -> Path:
    """Series down, models across, each cell coloured by its value (blue above 0, red below) and written in it."""
    plt = pyplot()
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 * len(table.columns) + 3, 0.45 * len(table.index) + 2))
    bound = max(float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0, 1e-6)
    image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    for (i, j), v in np.ndenumerate(values):
        dark = not np.isnan(v) and abs(v) > 0.6 * bound            # white on the deepest colours, to stay legible
        ax.text(j, i, "" if np.isnan(v) else f"{v:+.4f}", ha="center", va="center", fontsize=8,
                color="white" if dark else "black")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
