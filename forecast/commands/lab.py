"""The recurrent-network laboratory: ``forecast diagnose gradients`` and ``forecast bench``.

``gradients``: the norm of d(last output) / d(input k steps back), k = 0..L-1, at
initialisation and after training; the vanishing gradient made visible.
``bench``: each model's test RMSE divided by the simulated noise's standard deviation
(the best any forecast can do), per series, lag and seed, with the training recipe
every other command uses.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from ..config.settings import BenchConfig, DataSettings, DiagnoseConfig
from ..data.synthetic import simulate
from ..data.windows import build_series, make_targets, time_split
from ..stats.metrics import rmse
from ..models import parse_models
from ..report.figures import plot_bench, plot_gradient_flow
from ..report.tables import text_table
from ..console import Echo
from ..errors import ForecastError
from ..tracking.record import RunRecord
from ..data.load import load_data
from ..models import unique_models

BENCH_COLUMNS = ["series", "lag", "model", "seed", "rmse_over_opt"]
ZERO = "zero"


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


def gradients(cfg: DiagnoseConfig, echo: Echo = print) -> pd.DataFrame:
    import torch

    from ..data.datamodule import WindowDataModule
    from ..engine.forecasters import FitContext, NetworkForecaster

    d = cfg.data
    entries = parse_models(unique_models(cfg.diagnose.models, echo))   # networks only: DiagnoseConfig checked
    history, series = load_data(d, echo)
    split = time_split(len(series), d.lookback, d.horizon, d.val_fraction, d.test_fraction)
    dm = WindowDataModule(series, d.lookback, d.horizon, split=split)
    dm.setup("fit")
    x = dm.val_x[: cfg.diagnose.n_windows]
    ctx = FitContext(series.feature_names, d.target, d.lookback, d.horizon)
    record = RunRecord.for_settings(cfg, "diagnose", d.source_name, "gradient-flow", (d.source_name, "gradients"), echo)
    with record:
        record.tags({"data_source": history.source})
        rows = []
        for entry in entries:
            train = replace(cfg.train, seed=cfg.train.seed_list[0], seeds=[])
            forecaster = NetworkForecaster(entry, cfg.network, train, ctx, progress=False)
            torch.manual_seed(train.seed)
            fresh = forecaster.build_module().net.eval()
            start = time.perf_counter()
            forecaster.fit(series, split)
            echo(f"  {entry.name}: trained in {time.perf_counter() - start:.1f}s ({len(forecaster.history_)} epochs)")
            for stage, net in (("init", fresh), ("trained", forecaster.module_.net.eval())):
                norms = input_gradient_norms(net, x)
                rows += [{"model": entry.name, "stage": stage, "k": k, "grad_norm": float(v)} for k, v in enumerate(norms)]
        frame = pd.DataFrame(rows)
        record.csv("gradients.csv", frame)
        record.config(cfg)
        record.figure("gradients.png", plot_gradient_flow, frame,
                      title=f"{d.source_name}: gradient of the last output w.r.t. earlier inputs")
        summary = frame.pivot_table(index=["model", "stage"], columns="k", values="grad_norm")
        last = d.lookback - 1
        for (m, s), r in summary.iterrows():
            record.metrics({f"{m}.{s}.grad_ratio_k{last}": r[last] / r[0]})
        echo("\n|d output / d input k steps back|, relative to k = 0:")
        echo(text_table([{"model": f"{m} ({s})", "k=10": r[min(10, last)] / r[0], f"k={last}": r[last] / r[0]}
                         for (m, s), r in summary.iterrows()], ["k=10", f"k={last}"]))
    return frame


# ---------------------------------------------------------------- known optimum

def bench_cases(cfg: BenchConfig) -> list[tuple[str, int | None]]:
    """(series, lag) pairs: one per lag for longmem, one for every other series."""
    return [(s, lag) for s in cfg.bench.series for lag in (cfg.bench.synthetic_lag if s == "longmem" else [None])]


def bench(cfg: BenchConfig, echo: Echo = print) -> pd.DataFrame:
    """Every model on every series, lag and seed; a seed sets both the training seed and the series' seed."""
    b = cfg.bench
    if b.family:
        from .family_bench import bench_family

        return bench_family(cfg, echo)
    if "panel" in b.series:
        if b.series != ["panel"]:
            raise ForecastError("--series panel is a panel of three series, benched on its own: run it apart from "
                                f"{', '.join(s for s in b.series if s != 'panel')}")
        from .panel_bench import bench_panel

        return bench_panel(cfg, echo)
    entries = parse_models(unique_models(b.models, echo), "return")
    lookback = b.window
    cases, seeds = bench_cases(cfg), cfg.train.seed_list
    echo(f"bench: {len(cases)} series x {len(seeds)} seed(s) x {len(entries)} models, lookback {lookback}, "
         f"{b.synthetic_length} days each")
    record = RunRecord.for_settings(cfg, "bench", "synthetic", "known-optimum", ("bench",), echo)
    with record:
        rows = []
        for kind, lag in cases:
            rows += _bench_case(kind, lag, seeds, entries, cfg, lookback, echo)
        frame = pd.DataFrame(rows, columns=BENCH_COLUMNS).astype({"lag": "Int64"})
        summary = bench_summary(frame)
        record.csv("bench.csv", frame)
        record.config(cfg)
        if (frame["series"] == "longmem").any():
            record.figure("bench.png", plot_bench, frame[frame["series"] == "longmem"],
                          title=f"RMSE / best possible against lag (lookback {lookback}; median and range over "
                                f"{len(seeds)} seed(s))")
        record.metrics({f"{r.series}{'' if pd.isna(r.lag) else f'.lag{r.lag}'}.{r.model}.rmse_over_opt": r.median
                        for r in summary.itertuples()})
        echo(f"\nRMSE / best possible RMSE (the noise's std {b.synthetic_noise}); 1.00 is perfect; "
             f"median [min - max] over {len(seeds)} seed(s):")
        echo(bench_table(summary, [e.name for e in entries]))
    return frame


def _bench_case(kind: str, lag: int | None, seeds: list[int], entries: list, cfg: BenchConfig, lookback: int,
                echo: Echo) -> list[dict]:
    """Rows of one series (and lag): each seed simulates its own series and trains every model with that seed; the
    seeds of a network train as one population where that pays."""
    from ..engine.forecasters import FitContext, make_forecaster
    from ..engine.population import fit_forecasters, population_size

    b = cfg.bench
    data, rows = [], {}
    for seed in seeds:
        series = build_series(simulate(kind, b.synthetic_length, b.synthetic_noise, seed, lag or 40), "return", ["returns"])
        split = time_split(len(series), lookback, 1, DataSettings.val_fraction, DataSettings.test_fraction)
        data.append((series, split, make_targets(series.target, split.test, 1)[:, 0]))
        rows[seed, ZERO] = {"series": kind, "lag": lag, "model": ZERO, "seed": seed,
                            "rmse_over_opt": rmse(data[-1][2], 0) / b.synthetic_noise}
    for entry in entries:
        start = time.perf_counter()
        models = [make_forecaster(entry, cfg.network, replace(cfg.train, seed=seed, seeds=[]),
                                  FitContext(series.feature_names, "return", lookback, 1), progress=False)
                  for seed, (series, _, _) in zip(seeds, data)]
        fit_forecasters([(m, series, split) for m, (series, split, _) in zip(models, data)],
                        population_size(entry, cfg.network, cfg.train), cfg.train)
        seconds = (time.perf_counter() - start) / len(seeds)
        for seed, model, (series, split, y) in zip(seeds, models, data):
            ratio = rmse(y, model.predict(series, split.test)[:, 0]) / b.synthetic_noise
            rows[seed, entry.name] = {"series": kind, "lag": lag, "model": entry.name, "seed": seed,
                                      "rmse_over_opt": ratio}
            where = f"{kind}{f' lag {lag}' if lag else ''} seed {seed}"
            echo(f"  {where:<22} {entry.name:<14} RMSE / optimum {ratio:.3f}  ({seconds:.1f}s, "
                 f"{len(model.history_)} epochs)")
    return [rows[seed, name] for seed in seeds for name in [ZERO] + [e.name for e in entries]]


def bench_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max of RMSE / optimum over seeds, per series, lag and model."""
    keys = ["series", "lag", "model"]
    grouped = frame.groupby(keys, sort=False, dropna=False)["rmse_over_opt"]
    return grouped.agg(median="median", low="min", high="max").reset_index()


def bench_table(summary: pd.DataFrame, models: list[str]) -> str:
    """Models down, series (and lag) across; each cell the median with its range over seeds."""
    columns = list(dict.fromkeys(f"{s} lag {int(l)}" if not pd.isna(l) else s for s, l in zip(summary["series"], summary["lag"])))
    cells: dict[str, dict[str, str]] = {}
    for r in summary.itertuples():
        column = f"{r.series} lag {int(r.lag)}" if not pd.isna(r.lag) else r.series
        spread = f" [{r.low:.2f}-{r.high:.2f}]" if r.high > r.low else ""
        cells.setdefault(r.model, {})[column] = f"{r.median:.3f}{spread}"
    rows = [{"model": m, **cells[m]} for m in [ZERO] + models if m in cells]
    return text_table(rows, columns)
