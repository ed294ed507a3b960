"""``forecast fit`` on a panel: one model per series, one split in time for all of them, one network logged per
series for ``forecast predict``.

The split is a panel backtest's single fold: the test part is the last ``--test-fraction`` of the panel's
calendar, each series forecast on its own days there, each network trained (its validation carved from the
end of its training part) on the series' days strictly before the test part. The networks of the series
train as one population where that pays, as a panel backtest's do. Each series is scored next to the naive
forecast as a one-series fit is.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..config.settings import BacktestSettings, FitConfig
from ..console import Echo
from ..data.panels import load_panel
from ..data.windows import make_inputs
from ..errors import ForecastError
from ..evaluate.distribution_scores import REFERENCE_DISTRIBUTION
from ..evaluate.scores import NAIVE
from ..models import get_entry
from ..models.custom import check_custom_cells
from ..report.figures import plot_forecasts
from ..report.tables import text_table
from ..tracking import runs as tracking
from ..tracking.record import RunRecord, panel_tags, series_slug
from .fit_common import TABLE_COLUMNS, FitResult, checked_entry, epochs_trained, score_fit


def panel_fit(cfg: FitConfig, echo: Echo = print, progress: bool = True) -> FitResult:
    d = cfg.data
    entry = checked_entry(cfg)
    if entry.scope == "global":
        raise ForecastError(f"--model {entry.name}: `fit` logs one network per series of a panel; compare global "
                            f"networks in `forecast backtest`, or fit {entry.name.removesuffix('-global')}")
    panel = load_panel(d, echo)
    check_custom_cells([entry], len(panel.series[0].feature_names), cfg.network, d.lookback)
    from ..engine.forecasters import FitContext   # torch: only once the input is good
    from ..engine.panel import panel_calendar, panel_folds
    from ..engine.population import population_size
    from ..engine.walkforward import Unit, fit_unit

    calendar = panel_calendar(panel.series, d.lookback, d.horizon)
    first = calendar[int(len(calendar) * (1 - d.test_fraction))]
    settings = BacktestSettings(test_start=f"{first:%Y-%m-%d}", refit_every=max(5, len(calendar)))
    folds = [own[0] for own in panel_folds(panel.series, panel.names, d.lookback, d.horizon, settings,
                                           d.val_fraction, echo)]
    echo(f"split: panel of {len(panel)} series, test part from {first:%Y-%m-%d} to {calendar[-1]:%Y-%m-%d} "
         f"({len(calendar) - int(len(calendar) * (1 - d.test_fraction))} days of the panel's calendar); each "
         f"series trained on its days before it")
    where = tuple(range(len(panel)))
    ctx = FitContext(panel.series[0].feature_names, d.target, d.lookback, d.horizon)
    record = RunRecord.for_settings(cfg, "fit", d.source_name, f"fit-{entry.name}", (d.source_name, entry.name), echo)
    with record:
        record.tags(panel_tags(panel) | {"model": entry.name})
        started = time.perf_counter()
        unit = Unit(entry, tuple(folds), False, population=population_size(entry, cfg.network, cfg.train),
                    series=where)
        main = fit_unit(unit, panel.series, cfg.network, cfg.train, ctx, progress=progress, keep_model=True)
        seconds = time.perf_counter() - started
        echo(f"trained {entry.name} on {len(panel)} series in {seconds:.1f}s")
        record.metrics({"train_seconds": seconds})
        references = [NAIVE] + ([REFERENCE_DISTRIBUTION] if main[0].distribution is not None else [])
        others = [fit_unit(Unit(get_entry(name), tuple(folds), False, series=where), panel.series, cfg.network,
                           cfg.train, ctx) for name in references if name != entry.name]
        frames, metrics = [], {}
        for i, name in enumerate(panel.names):
            results = [main[i]] + [other[i] for other in others]
            frame, metrics[name], _ = score_fit(panel.series[i], folds[i], results, cfg)
            frames.append(frame.assign(series=name))
            echo(f"  {name}: {epochs_trained(main[i].fitted).lstrip(', ') or 'fitted'}")
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[["date", "series"] + [c for c in frame.columns if c not in ("date", "series")]]
        _write(record, cfg, entry.name, panel, frame, metrics, [r.fitted for r in main])
        _print(echo, metrics, d.target)
    return FitResult(metrics, frame, record.out, record.run_id, main[0].fitted.history_ if main[0].fitted else [])


def _write(record: RunRecord, cfg: FitConfig, model: str, panel, frame: pd.DataFrame, metrics: dict,
           fitted: list) -> None:
    d = cfg.data
    for name, by_model in metrics.items():
        slug = series_slug(name)
        for m, values in by_model.items():
            prefix = f"{slug}.test_" if m == model else f"{slug}.{m}_test_"
            record.metrics({prefix + k: v for k, v in values.items() if not isinstance(v, (dict, str))})
    record.csv("predictions.csv", frame)
    record.json("metrics.json", tracking.clean(metrics))
    record.config(cfg)
    for name in panel.names:
        record.figure(f"{series_slug(name)}_forecasts.png", plot_forecasts, frame[frame["series"] == name],
                      title=f"{name}: {d.target} forecasts on the test period")
    if record.run_id and hasattr(fitted[0], "network_"):
        for name, series, forecaster in zip(panel.names, panel.series, fitted):
            example = make_inputs(series.features, np.array([len(series) - 1]), d.lookback)
            tracking.log_model(forecaster.network_, example, d.lookback, list(series.feature_names), d.target,
                               series=series_slug(name))


def _print(echo: Echo, metrics: dict, target: str) -> None:
    for name, by_model in metrics.items():
        echo(f"\n{name}: test metrics ({target} target):")
        echo(text_table([{"model": m, **v} for m, v in by_model.items()],
                        TABLE_COLUMNS + (["qlike"] if target == "volatility" else [])))
