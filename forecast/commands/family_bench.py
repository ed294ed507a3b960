"""``forecast bench --family tune|report|all``: the training recipe judged on a family of simulated
processes with a known optimum (``data/family.py``), every (process, model, seed) case counted.

Each case trains the model with the recipe every command uses, on the process's own split (train,
validation, test in time order), and reports RMSE / optimum and R2
vs the zero forecast on the test part. The optimum is the RMSE of the process's own innovations on
the test days (the best possible forecast's errors there), not the noise level, which a few hundred
days only approximate. The summary counts, per model, the cases within 1.05 of
the optimum where the cell can represent it (the lag inside the lookback; the RNN: lags up to 5),
and on random walks the largest R2 vs naive (skill a model invents).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from ..config.settings import BenchConfig, DataSettings
from ..console import Echo
from ..data.family import Process, process_history, process_innovations, select
from ..data.windows import build_series, make_targets, time_split
from ..models import parse_models, unique_models
from ..report.tables import text_table
from ..stats.metrics import r2_oos, rmse
from ..tracking.record import RunRecord

WITHIN = 1.05          # a case is learned when RMSE / optimum is at most this
RNN_LAGS = 5           # the vanilla RNN is held to the target only where the lag is at most this


def bench_family(cfg: BenchConfig, echo: Echo = print) -> pd.DataFrame:
    b = cfg.bench
    entries = parse_models(unique_models(b.models, echo), "return")
    processes, seeds = select(b.family), cfg.train.seed_list
    cases = [(p, e, s) for p in processes for e in entries for s in seeds]
    echo(f"bench: family part {b.family!r}: {len(processes)} processes x {len(entries)} models x {len(seeds)} "
         f"seed(s) = {len(cases)} trainings, {b.jobs} job(s)")
    record = RunRecord.for_settings(cfg, "bench", "synthetic", f"family-{b.family}", ("bench", b.family), echo)
    with record:
        rows = _run(cases, cfg, echo)
        frame = pd.DataFrame(rows)
        summary = family_summary(frame)
        record.csv("bench.csv", frame)
        record.csv("bench_summary.csv", summary)
        record.config(cfg)
        record.metrics({f"{r.model}.share_within": r.share_within for r in summary.itertuples()
                        if not pd.isna(r.share_within)})
        echo(f"\nRMSE / best possible RMSE on family part {b.family!r} (1.00 is perfect; every seed counted):")
        echo(text_table(summary.to_dict("records"), ["cases", "within", "share_within", "median", "worst",
                                                     "rw_max_r2"]))
    return frame


def _run(cases: list, cfg: BenchConfig, echo: Echo) -> list[dict]:
    """Every case, in this process or in ``--jobs`` workers; rows in the order of ``cases`` either way. The seeds of
    one process and model are one piece of work: their networks train as a population where that pays."""
    from ..engine.workers import cap_jobs, pool_context, worker_pool

    pieces = list(dict.fromkeys((p, e) for p, e, _ in cases))
    seeds = list(dict.fromkeys(s for _, _, s in cases))
    jobs, note = cap_jobs(cfg.bench.jobs, len(pieces))
    if note:
        echo(f"note: {note}")
    args = [(p, e, seeds, cfg.train, cfg.network) for p, e in pieces]
    rows: list[dict] = []

    def report(batch: list[dict]) -> None:
        for row in batch:
            rows.append(row)
            echo(f"  [{len(rows)}/{len(cases)}] {row['process']:<18} {row['model']:<6} seed {row['seed']}: RMSE / "
                 f"optimum {row['rmse_over_opt']:.3f} ({row['seconds']:.0f}s, {row['epochs']} epochs)")

    if jobs == 1:
        for a in args:
            report(run_cases(*a))
        return rows
    with worker_pool(jobs, pool_context(cfg.train.accelerator)) as pool:
        for batch in pool.map(run_cases, *zip(*args)):
            report(batch)
    return rows


def run_cases(process: Process, entry, seeds: list[int], train, network) -> list[dict]:
    """``entry`` trained on ``process`` once per training seed (as a population where it pays), on one torch
    thread: one row per seed."""
    import torch

    from ..engine.forecasters import FitContext, make_forecaster
    from ..engine.population import fit_forecasters, population_size

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        series = build_series(process_history(process), "return", ["returns"])
        split = time_split(len(series), process.lookback, 1, DataSettings.val_fraction, DataSettings.test_fraction)
        y = make_targets(series.target, split.test, 1)[:, 0]
        best = rmse(make_targets(process_innovations(process), split.test, 1)[:, 0], np.zeros_like(y))
        started = time.perf_counter()
        ctx = FitContext(series.feature_names, "return", process.lookback, 1)
        models = [make_forecaster(entry, network, replace(train, seed=s, seeds=[]), ctx, progress=False) for s in seeds]
        fit_forecasters([(m, series, split) for m in models], population_size(entry, network, train), train)
        seconds = (time.perf_counter() - started) / len(models)
        rows = []
        for seed, model in zip(seeds, models):
            p = model.predict(series, split.test)[:, 0]
            rows.append(process.to_dict() | {
                "model": entry.name, "seed": seed, "optimum_rmse": best, "rmse_over_opt": rmse(y, p) / best,
                "zero_over_opt": rmse(y, np.zeros_like(y)) / best, "r2_vs_naive": r2_oos(y, p, np.zeros_like(y)),
                "epochs": len(getattr(model, "history_", None) or []), "restarts": getattr(model, "restarts_", 0),
                "seconds": seconds})
        return rows
    finally:
        torch.set_num_threads(threads)


def family_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: the cases held to the target (lag inside the lookback; RNN: lag at most 5; never a random
    walk), how many are within 1.05 of the optimum, the median and worst ratio, and the random walks'
    largest R2 vs naive."""
    rows = []
    for model, part in frame.groupby("model", sort=False):
        held = part[part["kind"] != "rw"]
        held = held[held["lag"].fillna(0) <= (RNN_LAGS if model == "rnn" else held["lookback"])]
        rw = part[part["kind"] == "rw"]
        within = int((held["rmse_over_opt"] <= WITHIN).sum())
        rows.append({"model": model, "cases": len(held), "within": within,
                     "share_within": within / len(held) if len(held) else float("nan"),
                     "median": float(held["rmse_over_opt"].median()) if len(held) else float("nan"),
                     "worst": float(held["rmse_over_opt"].max()) if len(held) else float("nan"),
                     "rw_max_r2": float(rw["r2_vs_naive"].max()) if len(rw) else float("nan")})
    return pd.DataFrame(rows)
