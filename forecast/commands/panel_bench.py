"""``forecast bench --series panel``: the simulated panel (``data/synthetic.py``), where one series follows
another and a covariate leads a third, so two optima are known for every series.

Each model trains on each seed's panel twice, with exactly the data a user's ``forecast backtest
--synthetic panel`` reads: on each series' own past (``own``) and with ``--covariates panel``
(``covariates``: the other series and the panel's covariate). A local network trains one network per
series; a global one (``gru-global``, ...) one network on all three series. Reported per series on the
test part (the last 15% of each series): RMSE over the *univariate optimum* (the zero forecast: each series
is white noise on its own) and over the *full optimum* (the true conditional mean, lagged term included).
Both are realised on the test days, not the noise level, which a few hundred days only approximate. A
model that finds the covariates reaches the full optimum on sim-follow and sim-led; one that cannot see
them stays at the univariate optimum, and should not beat it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd

from ..config.settings import BenchConfig, DataSettings
from ..console import Echo
from ..data.covariate_spec import PANEL
from ..data.panels import load_panel
from ..data.synthetic import PANEL_LINKS, simulate_panel
from ..data.windows import make_targets, shared_layout, time_split
from ..models import parse_models, unique_models
from ..report.tables import text_table
from ..stats.metrics import rmse
from ..tracking.record import RunRecord

INPUTS = ("own", "covariates")
PANEL_COLUMNS = ["series", "inputs", "model", "seed", "rmse_over_full", "rmse_over_univariate"]


def bench_panel(cfg: BenchConfig, echo: Echo = print) -> pd.DataFrame:
    b = cfg.bench
    entries = parse_models(unique_models(b.models, echo), "return")
    seeds = cfg.train.seed_list
    lookback = b.lookback or max(lag for _, lag, _ in PANEL_LINKS.values()) + 10
    echo(f"bench: simulated panel (3 series, 1 covariate) x {len(seeds)} seed(s) x {len(entries)} models x "
         f"{len(INPUTS)} inputs (own past; with the covariates), lookback {lookback}, {b.synthetic_length} days each")
    record = RunRecord.for_settings(cfg, "bench", "synthetic", "panel", ("bench", "panel"), echo)
    with record:
        rows = [row for seed in seeds for inputs in INPUTS
                for row in _bench_inputs(seed, inputs, entries, cfg, lookback, echo)]
        frame = pd.DataFrame(rows, columns=PANEL_COLUMNS)
        summary = panel_summary(frame)
        record.csv("bench.csv", frame)
        record.csv("bench_summary.csv", summary)
        record.config(cfg)
        record.metrics({f"{r.series}.{r.inputs}.{r.model}.{ratio}": getattr(r, ratio) for r in summary.itertuples()
                        for ratio in ("rmse_over_full", "rmse_over_univariate")})
        for ratio, what in (("rmse_over_univariate", "the univariate optimum (the zero forecast)"),
                            ("rmse_over_full", "the full optimum (the true conditional mean)")):
            echo(f"\nRMSE / {what}; median [min - max] over {len(seeds)} seed(s):")
            echo(panel_table(frame, ratio))
    return frame


def _bench_inputs(seed: int, inputs: str, entries: list, cfg: BenchConfig, lookback: int, echo: Echo) -> list[dict]:
    """Every model on one seed's panel with one kind of inputs: its rows, one per series and model."""
    from ..engine.forecasters import FitContext, make_forecaster
    from ..engine.global_networks import make_global
    from ..engine.population import fit_forecasters, population_size

    b = cfg.bench
    settings = DataSettings(synthetic="panel", synthetic_length=b.synthetic_length, synthetic_noise=b.synthetic_noise,
                            synthetic_seed=seed, covariates=[PANEL] if inputs == "covariates" else [],
                            lookback=lookback)
    panel = load_panel(settings, echo=lambda _: None)
    series = list(panel.series)
    splits = [time_split(len(s), lookback, 1, settings.val_fraction, settings.test_fraction) for s in series]
    truth = simulate_panel(b.synthetic_length, b.synthetic_noise, seed).means
    optima = []
    for name, s, split in zip(panel.names, series, splits):
        y = make_targets(s.target, split.test, 1)[:, 0]
        optima.append((y, rmse(y, truth[name].reindex(s.target_dates(split.test)).to_numpy()), rmse(y, 0.0)))
    train = replace(cfg.train, seed=seed, seeds=[])
    rows = []
    for entry in entries:
        start = time.perf_counter()
        size = population_size(entry, cfg.network, train)
        if entry.scope == "global":
            laid = shared_layout(series)
            ctx = FitContext(laid[0].feature_names, "return", lookback, 1)
            model = make_global(entry, cfg.network, train, ctx, [(s, sp, i) for i, (s, sp) in enumerate(zip(laid, splits))],
                                len(laid) if cfg.network.series_embedding else 0)
            fit_forecasters([(model, laid[0], splits[0])], size, train)
            models = [(model, s) for s in laid]
        else:
            models = [(make_forecaster(entry, cfg.network, train, FitContext(s.feature_names, "return", lookback, 1),
                                       progress=False), s) for s in series]
            fit_forecasters([(m, s, sp) for (m, s), sp in zip(models, splits)], size, train)
        for name, (model, s), split, (y, full, univariate) in zip(panel.names, models, splits, optima):
            error = rmse(y, model.predict(s, split.test)[:, 0])
            rows.append({"series": name, "inputs": inputs, "model": entry.name, "seed": seed,
                         "rmse_over_full": error / full, "rmse_over_univariate": error / univariate})
        shown = ", ".join(f"{r['series']} {r['rmse_over_full']:.3f}" for r in rows[-len(series):])
        echo(f"  seed {seed} {inputs:<10} {entry.name:<12} RMSE / full optimum: {shown}  "
             f"({time.perf_counter() - start:.1f}s)")
    return rows


def panel_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max of both ratios over seeds, per series, inputs and model."""
    grouped = frame.groupby(["series", "inputs", "model"], sort=False)
    return grouped.agg(rmse_over_full=("rmse_over_full", "median"), full_low=("rmse_over_full", "min"),
                       full_high=("rmse_over_full", "max"), rmse_over_univariate=("rmse_over_univariate", "median"),
                       univariate_low=("rmse_over_univariate", "min"),
                       univariate_high=("rmse_over_univariate", "max")).reset_index()


def panel_table(frame: pd.DataFrame, ratio: str) -> str:
    """Models (with their inputs) down, series across; each cell the median ratio and its range over seeds."""
    cells: dict[str, dict[str, str]] = {}
    for (series, inputs, model), values in frame.groupby(["series", "inputs", "model"], sort=False)[ratio]:
        spread = f" [{values.min():.3f}-{values.max():.3f}]" if len(values) > 1 else ""
        cells.setdefault(f"{model} ({inputs})", {})[series] = f"{values.median():.3f}{spread}"
    columns = list(dict.fromkeys(frame["series"]))
    return text_table([{"model": k, **v} for k, v in cells.items()], columns)
