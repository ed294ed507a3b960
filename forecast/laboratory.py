"""The recurrent-network laboratory: gradient flow and series with a known best error.

``gradient_flow``: the norm of d(last output) / d(input k steps back), k = 0..L-1, at
initialisation and after training; the vanishing gradient made visible.
``known_optimum_bench``: each model's test RMSE divided by the simulated noise's
standard deviation (the best any forecast can do) on rw, ar2 and longmem series.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import tracking
from .config import to_flat_dict
from .laboratory_config import BenchConfig, DiagnoseConfig
from .errors import ForecastError
from .data.windows import make_targets, time_split
from .models import parse_models
from .pipeline import default_out_dir, load_series, write_config
from .report import pyplot, text_table


# ---------------------------------------------------------------- gradient flow

def input_gradient_norms(net, x) -> np.ndarray:
    """Mean over windows of ||d y_last / d x_(L-1-k)||, indexed by k (0: the latest input)."""
    import torch

    x = x.clone().requires_grad_(True)                 # [B, L, F]
    net.zero_grad()
    out = net(x)[:, 0].sum()                           # one scalar per window, summed over the batch
    (grad,) = torch.autograd.grad(out, x)              # [B, L, F]
    per_step = grad.norm(dim=2).mean(dim=0)            # [L]
    return per_step.flip(0).detach().numpy()           # k = 0 .. L-1 steps back


def gradient_flow(cfg: DiagnoseConfig, echo: Callable[[str], None] = print) -> pd.DataFrame:
    import torch

    from .data.datamodule import WindowDataModule
    from .train import FitContext, make_forecaster

    d = cfg.data
    entries = parse_models(cfg.diagnose.models)
    if any(e.kind != "network" for e in entries):
        raise ForecastError("--models: gradient flow needs recurrent models, not baselines")
    history, series = load_series(d, echo)
    split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
    dm = WindowDataModule(series, d.lookback, d.horizon, split=split)
    dm.setup("fit")
    x = dm.val_x[: cfg.diagnose.n_windows]
    rows = []
    ctx = FitContext(series.feature_names, d.target, d.lookback, d.horizon)
    for entry in entries:
        forecaster = make_forecaster(entry, cfg.model, cfg.train, ctx, progress=False)
        torch.manual_seed(cfg.train.seed)
        fresh = forecaster.build_module().net.eval()
        start = time.perf_counter()
        forecaster.fit(series, split)
        echo(f"  {entry.name}: trained in {time.perf_counter() - start:.1f}s ({len(forecaster.history_)} epochs)")
        for stage, net in (("init", fresh), ("trained", forecaster.module_.net.eval())):
            norms = input_gradient_norms(net, x)
            rows += [{"model": entry.name, "stage": stage, "k": k, "grad_norm": float(v)} for k, v in enumerate(norms)]
    frame = pd.DataFrame(rows)
    out = Path(cfg.out) if cfg.out else default_out_dir(d.source_name, "gradients")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "gradients.csv", index=False)
    write_config(cfg, out / "config.yaml")
    plot_gradient_flow(frame, out / "gradients.png", f"{d.source_name}: gradient of the last output w.r.t. earlier inputs")
    summary = frame.pivot_table(index=["model", "stage"], columns="k", values="grad_norm")
    last = d.lookback - 1
    echo(f"\n|d output / d input k steps back|, relative to k = 0:")
    echo(text_table([{"model": f"{m} ({s})", "k=10": r[min(10, last)] / r[0], f"k={last}": r[last] / r[0]}
                     for (m, s), r in summary.iterrows()], ["k=10", f"k={last}"]))
    if cfg.track:
        tags = {tracking.TAG_KIND: "diagnose", tracking.TAG_SOURCE: d.source_name, "data_source": history.source}
        with tracking.start_run(tracking.experiment_name(d.source_name, cfg.experiment), "gradient-flow", tags,
                                to_flat_dict(cfg)):
            for (m, s), r in summary.iterrows():
                tracking.log_metrics({f"{m}.{s}.grad_ratio_k{last}": r[last] / r[0]})
            tracking.log_artifacts(out)
    echo(f"\noutputs: {out}/ (gradients.png, gradients.csv)")
    return frame


def plot_gradient_flow(frame: pd.DataFrame, path: Path, title: str) -> Path:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- known optimum

def known_optimum_bench(cfg: BenchConfig, echo: Callable[[str], None] = print) -> pd.DataFrame:
    from .train import FitContext, make_forecaster

    entries = parse_models(cfg.bench.models)
    rows = []
    for kind in [s.strip() for s in cfg.bench.series.split(",")]:
        d = replace(cfg.data, synthetic=kind, target="return", features="returns")
        _, series = load_series(d, echo)
        split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
        y = make_targets(series.target, split.test, d.horizon)[:, 0]
        ctx = FitContext(series.feature_names, "return", d.lookback, d.horizon)
        zero = float(np.sqrt(np.mean(y ** 2)))
        rows.append({"series": kind, "model": "zero forecast", "ratio": zero / d.synthetic_noise, "epochs": 0, "seconds": 0.0})
        for entry in entries:
            start = time.perf_counter()
            model = make_forecaster(entry, cfg.model, cfg.train, ctx, progress=False).fit(series, split)
            p = model.predict(series, split.test)[:, 0]
            rmse = float(np.sqrt(np.mean((p - y) ** 2)))
            rows.append({"series": kind, "model": entry.name, "ratio": rmse / d.synthetic_noise,
                         "epochs": len(model.history_), "seconds": time.perf_counter() - start})
            echo(f"  {kind:<8} {entry.name:<14} RMSE / optimum {rmse / d.synthetic_noise:.3f}"
                 f"  ({rows[-1]['seconds']:.1f}s, {rows[-1]['epochs']} epochs)")
    frame = pd.DataFrame(rows)
    table = frame.pivot(index="model", columns="series", values="ratio")
    table = table.reindex(["zero forecast"] + [e.name for e in entries])
    lag = f" (lag {cfg.data.synthetic_lag})" if "longmem" in table.columns else ""
    echo(f"\nRMSE / best possible RMSE (the noise's std {cfg.data.synthetic_noise}); 1.00 is perfect{lag}:")
    echo(text_table([{"model": m, **{c: v for c, v in r.items()}} for m, r in table.iterrows()], list(table.columns)))
    out = Path(cfg.out) if cfg.out else default_out_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "bench.csv", index=False)
    write_config(cfg, out / "config.yaml")
    if cfg.track:
        tags = {tracking.TAG_KIND: "bench", tracking.TAG_SOURCE: "synthetic"}
        with tracking.start_run(cfg.experiment, "known-optimum", tags, to_flat_dict(cfg)):
            tracking.log_metrics({f"{r.series}.{r.model.replace(' ', '_')}.rmse_ratio": r.ratio for r in frame.itertuples()})
            tracking.log_artifacts(out)
    echo(f"\noutputs: {out}/bench.csv")
    return frame
