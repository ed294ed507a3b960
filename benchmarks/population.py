"""Many networks as one: a population against the same networks trained one after another.

M members = folds x seeds of one network on ^GSPC (the bundled history, offline): the last
``--folds`` yearly folds of a walk-forward backtest and seeds 0..S-1, a fixed number of epochs
(``--epochs``, no early stopping, no restarts), the recipe's settings otherwise (hidden 64,
batch 64, lookback 30, position inputs). Both sides in this process with the same torch
threads: "sequential" is ``--population 1`` (each network by Lightning, as alone), "population"
is the same members trained as one (``engine.population.fit_networks``). On a GPU the
sequential side is timed on a sample of ``--sample`` members and extrapolated.

Prints one JSON object per line and cell:

    {"cell", "hidden", "members", "device", "epochs", "sequential_s", "population_s", "speedup", "max_abs_diff",
     "peak_rss_one_mb", "peak_rss_population_mb"}

``max_abs_diff`` is the largest difference of the scaled test forecasts between the two sides;
the peak memory (resident set, MB) of one training and of the population, each measured in a
fresh process, with ``--memory``.

    python benchmarks/population.py --json [--cells lstm,gru,rnn] [--hidden-sizes 16,64] [--folds 4 --seeds 3]
                                    [--device cpu|cuda] [--memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import torch


def members_of(cell: str, folds: int, seeds: int, epochs: int, device: str, hidden: int = 64):
    """``(forecasters, series, splits)``: one unfitted forecaster per (fold, seed)."""
    from forecast.config.settings import BacktestSettings, DataSettings, NetworkSettings, TrainSettings
    from forecast.data.load import load_data
    from forecast.engine.forecasters import FitContext, NetworkForecaster
    from forecast.engine.walkforward import make_folds
    from forecast.models import get_entry

    data = DataSettings(ticker="^GSPC", offline=True)
    _, series = load_data(data, lambda *_: None)
    chosen = make_folds(series, data.lookback, 1, BacktestSettings(test_start="2015-01-01"))[-folds:]
    train = TrainSettings(max_epochs=epochs, patience=epochs, restarts=0,
                          accelerator="cuda" if device == "cuda" else "cpu")
    entry = get_entry(cell)
    out = []
    for fold in chosen:
        ctx = FitContext(series.feature_names, "return", data.lookback, 1, fold.number)
        for seed in range(seeds):
            out.append((NetworkForecaster(entry, NetworkSettings(hidden_size=hidden), replace(train, seed=seed), ctx,
                                          progress=False),
                        fold.split))
    return out, series


def scaled_forecasts(model, series, split) -> np.ndarray:
    from forecast.data.windows import make_inputs

    x = torch.from_numpy(model.scaler_.transform_x(make_inputs(series.features, split.test, model.ctx.lookback)))
    with torch.no_grad():
        return model.module_.net.cpu()(x).numpy()


def run(cell: str, folds: int, seeds: int, epochs: int, device: str, sample: int, hidden: int) -> dict:
    from forecast.engine.population import Member, fit_networks

    alone, series = members_of(cell, folds, seeds, epochs, device, hidden)
    together, _ = members_of(cell, folds, seeds, epochs, device, hidden)
    timed = alone if device == "cpu" else alone[:sample]
    start = time.perf_counter()
    for model, split in timed:
        model.fit(series, split)
    sequential = (time.perf_counter() - start) * len(alone) / len(timed)
    start = time.perf_counter()
    fit_networks([Member(m, series, s) for m, s in together], len(together), torch.device(device))
    if device == "cuda":
        torch.cuda.synchronize()
    population = time.perf_counter() - start
    diff = max(float(np.abs(scaled_forecasts(a, series, s) - scaled_forecasts(b, series, s)).max())
               for (a, s), (b, _) in zip(timed, together))
    return {"cell": cell, "hidden": hidden, "members": len(together), "device": device, "epochs": epochs,
            "sequential_s": round(sequential, 2), "population_s": round(population, 2),
            "speedup": round(sequential / population, 3), "max_abs_diff": diff}


def peak_rss(cell: str, folds: int, seeds: int, epochs: int, device: str, together: bool) -> float:
    """Peak resident memory (MB) of a fresh process training one network, or all members as one population."""
    code = ("import sys, resource, torch; sys.path.insert(0, 'benchmarks'); import population as p; "
            f"m, s = p.members_of({cell!r}, {folds}, {seeds}, {epochs}, {device!r}); "
            "from forecast.engine.population import Member, fit_networks; "
            f"fit_networks([Member(a, s, b) for a, b in m], len(m), torch.device({device!r})) if {together} "
            "else m[0][0].fit(s, m[0][1]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="lstm", help="comma-separated registry names (default: lstm)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="fixed epochs per member")
    parser.add_argument("--hidden-sizes", default="64", help="comma-separated hidden sizes (default: the recipe's 64)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides (CPU)")
    parser.add_argument("--sample", type=int, default=4, help="GPU: sequential trainings timed, then extrapolated")
    parser.add_argument("--memory", action="store_true",
                        help="also the peak memory of one training and of the population")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from forecast.console import configure_output

    configure_output()
    for cell, hidden in [(c, int(h)) for c in args.cells.split(",") for h in args.hidden_sizes.split(",")]:
        row = run(cell, args.folds, args.seeds, args.epochs, args.device, args.sample, hidden)
        if args.memory:
            row["peak_rss_one_mb"] = peak_rss(cell, args.folds, args.seeds, args.epochs, args.device, False)
            row["peak_rss_population_mb"] = peak_rss(cell, args.folds, args.seeds, args.epochs, args.device, True)
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
