"""What running on Ray costs: the reference backtest with ``--executor local`` and ``--executor ray`` on this machine.

    forecast backtest --ticker ^GSPC --models rnn,lstm,gru,naive,ridge --test-start 2015-01-01 --jobs 2
    (bundled data, MLflow included: the same command as benchmarks/backtest_speed.py), once per executor

    python benchmarks/engine_overhead.py [--json] [--jobs 2] [--scaling 1,4]

Ray's start-up (the local Ray the command starts, from its own "ready in" line) is reported on its own;
the target compares the walls without it: Ray at most 1.15x the local wall. The predictions of both runs
must be byte-identical (checked). ``--scaling 1,4``: the speed-up from 1 to 4 Ray workers on a panel of
six simulated series sized to run a few minutes (for a machine with more cores than this one's two).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REFERENCE = ["backtest", "--ticker", "^GSPC", "--models", "rnn,lstm,gru,naive,ridge", "--test-start", "2015-01-01"]
PANEL = ["backtest", "--csv", "{panel}", "--models", "rnn,lstm,gru,gru-global,naive", "--refit-every", "252"]
TARGET = 1.15


def run(command: list[str], executor: str, jobs: int, folder: str, label: str = "reference") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "FORECAST_CACHE_DIR": os.path.join(folder, "cache")}
    args = [sys.executable, "-m", "forecast", *command, "--offline", "--jobs", str(jobs),
            "--executor", executor, "--out", f"out-{label}-{executor}-{jobs}"]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{executor} backtest failed: {done.stderr.strip()[-500:]}")
    ready = re.search(r"\(ready in ([0-9.]+)s\)", done.stdout)
    fitted = re.search(r"fitted \d+ model-folds in ([0-9.]+)s", done.stdout)
    startup = float(ready.group(1)) if ready else 0.0
    return {"executor": executor, "jobs": jobs, "wall_s": round(wall, 2), "startup_s": startup,
            "wall_after_startup_s": round(wall - startup, 2), "units_s": float(fitted.group(1)) if fitted else None,
            "predictions": os.path.join(folder, f"out-{label}-{executor}-{jobs}", "predictions.csv")}


def simulated_panel(folder: str) -> str:
    """Six simulated series of 5,000 days in one long CSV (a Ticker column)."""
    import numpy as np
    import pandas as pd

    days = pd.bdate_range("2000-01-03", periods=5000)
    rows = [pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Ticker": f"S{k}", "Close": 100 * np.exp(np.cumsum(
        np.random.default_rng(k).normal(0, 0.01, len(days))))}) for k in range(6)]
    path = os.path.join(folder, "panel.csv")
    pd.concat(rows).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes / local Ray CPUs (default 2)")
    parser.add_argument("--scaling", default="", help="Ray workers to compare on the panel, e.g. 1,4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        local = run(REFERENCE, "local", args.jobs, folder)
        remote = run(REFERENCE, "ray", args.jobs, folder)
        same = filecmp.cmp(local.pop("predictions"), remote.pop("predictions"), shallow=False)
        ratio = remote["wall_after_startup_s"] / local["wall_s"]
        report = {"command": "forecast " + " ".join(REFERENCE), "cores": os.cpu_count(), "local": local, "ray": remote,
                  "ray_over_local_after_startup": round(ratio, 3), "target": TARGET, "met": ratio <= TARGET,
                  "identical_predictions": same}
        if args.scaling:
            panel = [a.replace("{panel}", simulated_panel(folder)) for a in PANEL]
            runs = [run(panel, "ray", int(k), folder, "panel") for k in args.scaling.split(",")]
            for r in runs:
                r.pop("predictions")
            report["scaling"] = {"command": "forecast " + " ".join(PANEL), "runs": runs,
                                 "speedup": round(runs[0]["wall_after_startup_s"] / runs[-1]["wall_after_startup_s"], 2)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['command']}  (cores: {report['cores']})")
    for r in (local, remote):
        print(f"  --executor {r['executor']:<5}: {r['wall_s']:6.1f} s wall ({r['startup_s']:.1f} s Ray start-up), "
              f"units {r['units_s']} s")
    print(f"  ray / local after start-up: {ratio:.3f} (target <= {TARGET}: {'met' if report['met'] else 'NOT met'}); "
          f"predictions identical: {same}")
    if args.scaling:
        for r in report["scaling"]["runs"]:
            print(f"  panel, {r['jobs']} Ray worker(s): {r['wall_after_startup_s']:.1f} s after start-up")
        print(f"  speed-up: {report['scaling']['speedup']}x")


if __name__ == "__main__":
    main()
