"""A panel backtest against the single-series reference backtest, in the same run: wall time and peak memory.

The panel: ``--series`` simulated series (random walks with a known seed, ``--days`` business days
each, written as CSVs), ``rnn,lstm,gru`` local plus ``gru-global``, ``--folds`` yearly folds (the test
period starts so that that many folds of 252 days remain). The reference: the same command on the first
series alone with ``rnn,lstm,gru``. Both run as the CLI runs them (``--jobs``, MLflow off, the recipe's
settings otherwise), each in a fresh process whose peak resident memory is read.

    python benchmarks/panel_speed.py --json [--series 10 --days 5000 --folds 4 --jobs 2]

Prints one JSON object: ``{"series", "days", "folds", "single_s", "panel_s", "ratio", "single_peak_mib",
"panel_peak_mib", "trainings"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

PROBE = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def write_panel(folder: str, series: int, days: int) -> list[str]:
    dates = pd.bdate_range("2000-01-03", periods=days)
    paths = []
    for k in range(series):
        r = np.random.default_rng(1000 + k).normal(0, 0.01, days)
        path = os.path.join(folder, f"s{k:02d}.csv")
        pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": 100 * np.exp(np.cumsum(r))}).to_csv(path, index=False)
        paths.append(path)
    return paths


def run(args: list[str], folder: str) -> tuple[float, float]:
    """``(wall seconds, peak MiB of the largest process)`` of ``forecast ARGS``."""
    command = [sys.executable, "-c", PROBE, sys.executable, "-m", "forecast", *args, "--no-track"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "FORECAST_CACHE_DIR": os.path.join(folder, "cache")})
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"forecast {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--days", type=int, default=5000)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_panel(folder, args.series, args.days)
        start = pd.bdate_range("2000-01-03", periods=args.days)[-args.folds * 252 - 1]
        common = ["backtest", "--test-start", f"{start:%Y-%m-%d}", "--jobs", str(args.jobs)]
        single_s, single_peak = run([*common, "--csv", paths[0], "--models", "rnn,lstm,gru,naive", "--out", "single"],
                                    folder)
        panel_s, panel_peak = run([*common, "--csv", ",".join(paths), "--models", "rnn,lstm,gru,gru-global,naive",
                                   "--out", "panel"], folder)
    row = {"series": args.series, "days": args.days, "folds": args.folds, "jobs": args.jobs,
           "single_s": round(single_s, 1), "panel_s": round(panel_s, 1), "ratio": round(panel_s / single_s, 2),
           "single_peak_mib": round(single_peak), "panel_peak_mib": round(panel_peak),
           "trainings": {"single": 3 * args.folds, "panel": (3 * args.series + 1) * args.folds}}
    print(json.dumps(row) if args.json else row)


if __name__ == "__main__":
    main()
